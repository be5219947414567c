#include "core/pg.h"

#include "core/secrets.h"

namespace walvault {
namespace {
std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}
}  // namespace

// libpq quotes pieces of a malformed connection string back in its messages.
std::string pg_error_message(const PGconn* conn) {
  return redact_secrets(trim(conn ? PQerrorMessage(conn) : "out of memory"));
}
std::string pg_result_error(const PGresult* res) {
  return redact_secrets(trim(res ? PQresultErrorMessage(res) : "no result"));
}

}  // namespace walvault
