#include "basebackup/base_backup_client.h"

#include <poll.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <span>

#include "core/error.h"
#include "core/pg.h"
#include "core/pg_versions.h"

namespace walvault {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void fail(PGconn* conn, const std::string& what, const PGresult* res = nullptr) {
  std::string detail = res ? pg_result_error(res) : std::string();
  if (detail.empty()) detail = pg_error_message(conn);
  throw Error("base backup failed: " + what + (detail.empty() ? "" : ": " + detail),
              "see the server log for details");
}

PgResultPtr next_result(PGconn* conn, ExecStatusType expected, const char* what) {
  PgResultPtr res(PQgetResult(conn));
  if (!res) fail(conn, std::string("the server ended the command before ") + what);
  if (PQresultStatus(res.get()) != expected) fail(conn, what, res.get());
  return res;
}

std::vector<std::string> only_row(const PGresult* res, const char* what) {
  if (PQntuples(res) != 1) {
    throw Error(std::string("base backup failed: unexpected ") + what + " (" +
                std::to_string(PQntuples(res)) + " rows)");
  }
  std::vector<std::string> row;
  for (int i = 0; i < PQnfields(res); ++i) row.push_back(PQgetvalue(res, 0, i));
  return row;
}

}  // namespace

void parse_position_row(const std::vector<std::string>& row, Lsn& lsn, TimelineId& tli) {
  if (row.size() != 2) throw Error("base backup failed: unexpected position result");
  auto l = Lsn::parse(row[0]);
  auto t = parse_u32(row[1]);
  if (!l || !l->valid() || !t || *t == 0) {
    throw Error("base backup failed: unparsable position \"" + row[0] + "\" on timeline \"" +
                row[1] + "\"");
  }
  lsn = *l;
  tli = TimelineId(*t);
}

namespace {

// Reads one COPY OUT stream to its CopyDone, handing each CopyData to on_data; ticks and
// stop requests run about once a second, also while the server sends nothing.
template <typename OnData>
void receive_copy(PGconn* conn, const BaseBackupCallbacks& cb, OnData&& on_data) {
  auto next_tick = Clock::now() + std::chrono::seconds(1);
  auto check_stop = [&] {
    if (cb.stop_requested && cb.stop_requested()) {
      throw Error("base backup interrupted", "the backup is marked failed; run it again");
    }
  };
  auto maybe_tick = [&] {
    if (Clock::now() < next_tick) return;
    next_tick = Clock::now() + std::chrono::seconds(1);
    check_stop();
    if (cb.tick) cb.tick();
  };
  for (;;) {
    char* buf = nullptr;
    const int n = PQgetCopyData(conn, &buf, /*async=*/1);
    if (n > 0) {
      PqMemPtr<char> owned(buf);
      on_data(std::span<const std::byte>(reinterpret_cast<const std::byte*>(buf), size_t(n)));
      maybe_tick();
      continue;
    }
    if (n == -1) return;  // CopyDone
    if (n < -1) fail(conn, "could not read the COPY stream");
    // Nothing buffered: wait for the socket at most a second so ticks and stop requests run.
    pollfd pfd{PQsocket(conn), POLLIN, 0};
    if (pfd.fd < 0) fail(conn, "lost the connection");
    const int r = ::poll(&pfd, 1, 1000);
    if (r < 0 && errno != EINTR)
      throw errno_error("poll on the replication connection failed", errno);
    if (r > 0 && PQconsumeInput(conn) == 0) fail(conn, "could not receive data");
    check_stop();
    maybe_tick();
  }
}

// The next result that is not the CommandComplete of a finished COPY.
PgResultPtr next_result_after_copy(PGconn* conn) {
  PgResultPtr res(PQgetResult(conn));
  while (res && PQresultStatus(res.get()) == PGRES_COMMAND_OK) res.reset(PQgetResult(conn));
  return res;
}

// PostgreSQL 14: one COPY OUT per tablespace, in the order of the tablespace rows (the
// main directory has no oid), then one for the manifest. The server leaves the tar
// end-of-archive blocks to the client (pg_basebackup 14 writes them itself).
void receive_per_tablespace_streams(PGconn* conn, BaseBackupResult& result,
                                    BackupStreamDecoder& decoder, const BaseBackupCallbacks& cb) {
  static constexpr std::array<std::byte, 1024> kEndOfArchive{};
  uint64_t bytes_done = 0;
  auto on_data = [&](std::span<const std::byte> bytes) {
    decoder.data(bytes);
    bytes_done += bytes.size();
    decoder.progress(bytes_done);
  };
  for (size_t i = 0; i < result.tablespaces.size(); ++i) {
    const TablespaceRow& ts = result.tablespaces[i];
    PgResultPtr res = next_result_after_copy(conn);
    if (!res || PQresultStatus(res.get()) != PGRES_COPY_OUT) {
      fail(conn, "no COPY stream for tablespace " + (ts.oid ? std::to_string(*ts.oid) : "base"),
           res.get());
    }
    if (i == 0 && cb.started) cb.started(result);
    decoder.begin_archive(ts.oid ? std::to_string(*ts.oid) + ".tar" : "base.tar", ts.location);
    receive_copy(conn, cb, on_data);
    decoder.data(kEndOfArchive);
  }
  PgResultPtr res = next_result_after_copy(conn);
  if (!res || PQresultStatus(res.get()) != PGRES_COPY_OUT) {
    fail(conn, "the server sent no manifest", res.get());
  }
  decoder.begin_manifest();
  receive_copy(conn, cb, [&](std::span<const std::byte> bytes) { decoder.data(bytes); });
}

}  // namespace

BaseBackupResult run_base_backup(PGconn* conn, const BaseBackupOptions& options,
                                 BackupStreamSink& sink, const BaseBackupCallbacks& cb) {
  const int major = pg_major_of(PQserverVersion(conn));
  const std::string command = base_backup_command(options, major);
  if (!PQsendQuery(conn, command.c_str())) fail(conn, "could not send BASE_BACKUP");

  BaseBackupResult result;
  {
    PgResultPtr res = next_result(conn, PGRES_TUPLES_OK, "could not start the backup");
    parse_position_row(only_row(res.get(), "start position"), result.start_lsn,
                       result.start_timeline);
  }
  {
    PgResultPtr res = next_result(conn, PGRES_TUPLES_OK, "no tablespace list");
    if (PQnfields(res.get()) < 3) throw Error("base backup failed: unexpected tablespace list");
    for (int i = 0; i < PQntuples(res.get()); ++i) {
      TablespaceRow row;
      if (!PQgetisnull(res.get(), i, 0)) {
        auto oid = parse_u32(PQgetvalue(res.get(), i, 0));
        if (!oid) throw Error("base backup failed: unparsable tablespace oid");
        row.oid = *oid;
        row.location = PQgetvalue(res.get(), i, 1);
      }
      if (!PQgetisnull(res.get(), i, 2)) {
        row.size_kb = std::stoull(PQgetvalue(res.get(), i, 2));
        result.total_kb += *row.size_kb;
      }
      result.tablespaces.push_back(std::move(row));
    }
  }

  BackupStreamDecoder decoder(sink);
  if (has_new_base_backup_protocol(major)) {
    { PgResultPtr res = next_result(conn, PGRES_COPY_OUT, "no COPY stream"); }
    if (cb.started) cb.started(result);
    receive_copy(conn, cb, [&](std::span<const std::byte> m) { decoder.on_message(m); });
  } else {
    receive_per_tablespace_streams(conn, result, decoder, cb);
  }
  decoder.finish();
  {
    // The stop position follows CopyDone directly (tolerate a CommandComplete for the COPY).
    PgResultPtr res = next_result_after_copy(conn);
    if (!res) fail(conn, "the server sent no stop position");
    if (PQresultStatus(res.get()) != PGRES_TUPLES_OK) {
      fail(conn, "could not stop the backup", res.get());
    }
    parse_position_row(only_row(res.get(), "stop position"), result.stop_lsn, result.stop_timeline);
  }
  // Drain whatever follows (CommandComplete), failing on any error.
  while (PgResultPtr res{PQgetResult(conn)}) {
    const auto st = PQresultStatus(res.get());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail(conn, "after the backup", res.get());
  }
  if (!decoder.saw_manifest()) throw Error("base backup failed: the server sent no manifest");
  return result;
}

}  // namespace walvault
