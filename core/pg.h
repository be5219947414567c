#pragma once
// RAII owners for libpq handles.

#include <libpq-fe.h>

#include <memory>
#include <string>

namespace walvault {

struct PgConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
struct PqFreeDeleter {
  void operator()(void* p) const { PQfreemem(p); }
};

using PgConnPtr = std::unique_ptr<PGconn, PgConnDeleter>;
using PgResultPtr = std::unique_ptr<PGresult, PgResultDeleter>;
template <typename T>
using PqMemPtr = std::unique_ptr<T, PqFreeDeleter>;

// libpq's message for a connection, trimmed of its trailing newline.
std::string pg_error_message(const PGconn* conn);
std::string pg_result_error(const PGresult* res);

}  // namespace walvault
