#include "core/pg.h"

namespace walvault {
namespace {
std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}
}  // namespace

std::string pg_error_message(const PGconn* conn) {
  return trim(conn ? PQerrorMessage(conn) : "out of memory");
}
std::string pg_result_error(const PGresult* res) {
  return trim(res ? PQresultErrorMessage(res) : "no result");
}

}  // namespace walvault
