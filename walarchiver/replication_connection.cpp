#include "walarchiver/replication_connection.h"

#include <poll.h>
#include <sys/time.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/log.h"

namespace walvault {
namespace {

// Replication protocol integers are big-endian.
uint64_t get_be64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | uint8_t(p[i]);
  return v;
}

void put_be64(char* p, uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = char(v & 0xff);
    v >>= 8;
  }
}

std::string quote_identifier(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// libpq's messages span lines ("...\n\tThis probably means..."): ours stay on one.
std::string one_line(std::string message) {
  for (size_t p; (p = message.find("\n\t")) != std::string::npos;) message.replace(p, 2, " ");
  for (char& c : message) {
    if (c == '\n') c = ' ';
  }
  return message;
}

constexpr const char* kConnectHint =
    "check --dbname (a libpq connection string or URI) and that pg_hba.conf allows a "
    "replication connection for this user";

}  // namespace

uint64_t parse_pg_size(std::string_view text) {
  size_t i = 0;
  uint64_t n = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    n = n * 10 + uint64_t(text[i] - '0');
    ++i;
  }
  if (i == 0) return 0;
  std::string_view unit = text.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  if (unit.empty() || unit == "B") return n;
  if (unit == "kB") return n << 10;
  if (unit == "MB") return n << 20;
  if (unit == "GB") return n << 30;
  if (unit == "TB") return n << 40;
  return 0;
}

int64_t pg_now_us() {
  constexpr int64_t kUnixToPgEpochSeconds = 946684800;  // 2000-01-01 - 1970-01-01
  auto now = std::chrono::system_clock::now().time_since_epoch();
  return std::chrono::duration_cast<std::chrono::microseconds>(now).count() -
         kUnixToPgEpochSeconds * 1000000;
}

StreamMessage parse_stream_message(std::span<const char> message) {
  const char* buf = message.data();
  const size_t n = message.size();
  if (n == 0) throw Error("the server sent an empty replication message");
  StreamMessage m;
  if (buf[0] == 'w') {
    constexpr size_t kHeader = 1 + 8 + 8 + 8;
    if (n < kHeader) throw Error("the server sent a truncated XLogData message");
    m.kind = StreamMessage::Kind::xlog_data;
    m.data_start = Lsn(get_be64(buf + 1));
    m.wal_end = Lsn(get_be64(buf + 9));
    m.server_time_us = int64_t(get_be64(buf + 17));
    m.data = {reinterpret_cast<const std::byte*>(buf + kHeader), n - kHeader};
    return m;
  }
  if (buf[0] == 'k') {
    if (n < 1 + 8 + 8 + 1) throw Error("the server sent a truncated keepalive message");
    m.kind = StreamMessage::Kind::keepalive;
    m.wal_end = Lsn(get_be64(buf + 1));
    m.server_time_us = int64_t(get_be64(buf + 9));
    m.reply_requested = buf[17] != 0;
    return m;
  }
  throw Error(std::string("the server sent an unknown replication message type '") + buf[0] + "'");
}

ReplicationConnection ReplicationConnection::connect(const std::string& conninfo,
                                                     const std::string& application_name) {
  // Later keywords override earlier ones, and the expanded dbname overrides what precedes
  // it: a user's application_name wins over ours, replication=true always wins.
  std::vector<const char*> keys, values;
  keys.push_back("application_name");
  values.push_back(application_name.c_str());
  if (!conninfo.empty()) {
    keys.push_back("dbname");
    values.push_back(conninfo.c_str());
  }
  keys.push_back("replication");
  values.push_back("true");
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PgConnPtr conn(PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1));
  if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
    throw ConnectionLost(
        "could not connect to the server: " + one_line(pg_error_message(conn.get())), kConnectHint);
  }
  ReplicationConnection rc(std::move(conn), conninfo);
  require_supported_major(rc.server_major(), "the server");
  return rc;
}

void throw_if_wal_removed(const std::string& server_message) {
  static constexpr std::string_view kPrefix = "requested WAL segment ";
  static constexpr std::string_view kSuffix = " has already been removed";
  const size_t at = server_message.find(kPrefix);
  if (at == std::string::npos) return;
  const size_t name_at = at + kPrefix.size();
  const size_t end = server_message.find(kSuffix, name_at);
  if (end == std::string::npos) return;
  throw WalRemoved(one_line(server_message), server_message.substr(name_at, end - name_at));
}

void ReplicationConnection::throw_lost(const std::string& what) {
  throw_if_wal_removed(pg_error_message(conn_.get()));
  throw ConnectionLost(what + ": " + one_line(pg_error_message(conn_.get())),
                       "walvault reconnects by itself unless --no-loop is given");
}

PgResultPtr ReplicationConnection::exec(const std::string& command, ExecStatusType expected) {
  PgResultPtr res(PQexec(conn_.get(), command.c_str()));
  if (!res) throw_lost("could not send \"" + command + "\"");
  if (PQresultStatus(res.get()) != expected) {
    if (PQstatus(conn_.get()) != CONNECTION_OK) throw_lost("\"" + command + "\" failed");
    throw Error("\"" + command + "\" failed: " + one_line(pg_result_error(res.get())));
  }
  return res;
}

SystemInfo ReplicationConnection::identify_system() {
  PgResultPtr res = exec("IDENTIFY_SYSTEM", PGRES_TUPLES_OK);
  if (PQntuples(res.get()) != 1 || PQnfields(res.get()) < 3) {
    throw Error("IDENTIFY_SYSTEM returned an unexpected result");
  }
  SystemInfo info;
  info.system_identifier = PQgetvalue(res.get(), 0, 0);
  auto tli = parse_u32(PQgetvalue(res.get(), 0, 1));
  auto pos = Lsn::parse(PQgetvalue(res.get(), 0, 2));
  if (!tli || !pos) throw Error("IDENTIFY_SYSTEM returned an unparsable timeline or position");
  info.timeline = TimelineId(*tli);
  info.xlogpos = *pos;
  return info;
}

uint64_t ReplicationConnection::wal_segment_size() {
  PgResultPtr res = exec("SHOW wal_segment_size", PGRES_TUPLES_OK);
  const std::string text = PQntuples(res.get()) == 1 ? PQgetvalue(res.get(), 0, 0) : "";
  const uint64_t bytes = parse_pg_size(text);
  if (!is_valid_segment_size(bytes)) {
    throw Error("the server reports an invalid wal_segment_size \"" + text + "\"");
  }
  return bytes;
}

int ReplicationConnection::server_version_num() {
  return PQserverVersion(conn_.get());
}

RepoIdentity ReplicationConnection::repo_identity() {
  RepoIdentity id;
  id.system_identifier = identify_system().system_identifier;
  id.pg_version_num = server_version_num();
  id.wal_segment_size = wal_segment_size();
  return id;
}

std::string ReplicationConnection::timeline_history(TimelineId tli) {
  PgResultPtr res = exec("TIMELINE_HISTORY " + std::to_string(tli.value), PGRES_TUPLES_OK);
  if (PQntuples(res.get()) != 1 || PQnfields(res.get()) != 2) {
    throw Error("TIMELINE_HISTORY returned an unexpected result");
  }
  const std::string name = PQgetvalue(res.get(), 0, 0);
  if (name != history_file_name(tli)) {
    throw Error("TIMELINE_HISTORY " + std::to_string(tli.value) + " returned file \"" + name +
                "\"");
  }
  // The content is sent as-is (not bytea-escaped) despite the column's documented type.
  return std::string(PQgetvalue(res.get(), 0, 1), size_t(PQgetlength(res.get(), 0, 1)));
}

std::optional<ReplicationSlotInfo> ReplicationConnection::read_replication_slot(
    const std::string& slot) {
  if (!has_read_replication_slot(server_major())) return read_replication_slot_by_sql(slot);
  PgResultPtr res = exec("READ_REPLICATION_SLOT " + quote_identifier(slot), PGRES_TUPLES_OK);
  if (PQntuples(res.get()) != 1 || PQnfields(res.get()) != 3) {
    throw Error("READ_REPLICATION_SLOT returned an unexpected result");
  }
  if (PQgetisnull(res.get(), 0, 0)) return std::nullopt;  // no such slot
  ReplicationSlotInfo info;
  info.slot_type = PQgetvalue(res.get(), 0, 0);
  if (!PQgetisnull(res.get(), 0, 1)) {
    auto lsn = Lsn::parse(PQgetvalue(res.get(), 0, 1));
    if (!lsn) throw Error("READ_REPLICATION_SLOT returned an unparsable restart_lsn");
    info.restart_lsn = *lsn;
  }
  if (!PQgetisnull(res.get(), 0, 2)) {
    auto tli = parse_u32(PQgetvalue(res.get(), 0, 2));
    if (!tli) throw Error("READ_REPLICATION_SLOT returned an unparsable restart_tli");
    info.restart_tli = TimelineId(*tli);
  }
  return info;
}

std::optional<ReplicationSlotInfo> ReplicationConnection::read_replication_slot_by_sql(
    const std::string& slot) {
  // A physical replication connection runs no SQL: open an ordinary one, as the archiver
  // does for pg_ls_waldir. Same connection string, so the same server, user and password.
  std::vector<const char*> keys, values;
  if (!conninfo_.empty()) {
    keys.push_back("dbname");
    values.push_back(conninfo_.c_str());
  }
  keys.push_back("application_name");
  values.push_back("walvault");
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PgConnPtr sql(PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1));
  const std::string hint =
      "PostgreSQL " + std::to_string(server_major()) +
      " has no READ_REPLICATION_SLOT: walvault reads the slot from pg_replication_slots over an "
      "ordinary connection with the same --dbname; let that user connect to a database "
      "(name one with dbname=...)";
  if (!sql || PQstatus(sql.get()) != CONNECTION_OK) {
    throw Error("could not read replication slot \"" + slot +
                    "\": an ordinary connection failed: " + one_line(pg_error_message(sql.get())),
                hint);
  }
  const char* params[1] = {slot.c_str()};
  PgResultPtr res(PQexecParams(sql.get(),
                               "SELECT slot_type, restart_lsn FROM pg_catalog.pg_replication_slots "
                               "WHERE slot_name = $1",
                               1, nullptr, params, nullptr, nullptr, 0));
  if (!res || PQresultStatus(res.get()) != PGRES_TUPLES_OK) {
    throw Error("could not read replication slot \"" + slot + "\" from pg_replication_slots: " +
                    one_line(res ? pg_result_error(res.get()) : pg_error_message(sql.get())),
                hint);
  }
  if (PQntuples(res.get()) == 0) return std::nullopt;
  ReplicationSlotInfo info;
  info.slot_type = PQgetvalue(res.get(), 0, 0);
  if (!PQgetisnull(res.get(), 0, 1)) {
    auto lsn = Lsn::parse(PQgetvalue(res.get(), 0, 1));
    if (!lsn) throw Error("pg_replication_slots returned an unparsable restart_lsn");
    info.restart_lsn = *lsn;
  }
  return info;
}

void ReplicationConnection::create_physical_slot(const std::string& slot) {
  exec("CREATE_REPLICATION_SLOT " + quote_identifier(slot) + " PHYSICAL RESERVE_WAL",
       PGRES_TUPLES_OK);
}

void ReplicationConnection::start_streaming(const std::string& slot, Lsn start, TimelineId tli) {
  std::string cmd = "START_REPLICATION";
  if (!slot.empty()) cmd += " SLOT " + quote_identifier(slot);
  cmd += " PHYSICAL " + start.str() + " TIMELINE " + std::to_string(tli.value);
  PgResultPtr res(PQexec(conn_.get(), cmd.c_str()));
  if (!res) throw_lost("could not send \"" + cmd + "\"");
  if (PQresultStatus(res.get()) != PGRES_COPY_BOTH) {
    if (PQstatus(conn_.get()) != CONNECTION_OK) throw_lost("\"" + cmd + "\" failed");
    const std::string message = pg_result_error(res.get());
    throw_if_wal_removed(message);
    if (message.find(" is active for PID ") != std::string::npos) {
      // The walsender of a connection that just died may hold the slot for a while
      // (until it notices): worth retrying.
      throw ConnectionLost("could not start streaming WAL: " + one_line(message),
                           "another process streams from this slot; walvault retries");
    }
    throw Error("could not start streaming WAL at " + start.str() + " on timeline " +
                    std::to_string(tli.value) + ": " + pg_result_error(res.get()),
                "the server may no longer have this WAL; use a replication slot (--slot) so "
                "that it keeps what the archive has not received");
  }
  end_sent_ = false;
}

StreamMessage ReplicationConnection::next_message(int timeout_ms) {
  copy_buffer_.reset();
  for (;;) {
    char* buf = nullptr;
    const int n = PQgetCopyData(conn_.get(), &buf, /*async=*/1);
    if (n == 0) {
      // Nothing buffered: wait for the socket, then let libpq read what arrived.
      pollfd pfd{PQsocket(conn_.get()), POLLIN, 0};
      if (pfd.fd < 0) throw_lost("lost the connection to the server");
      int r = ::poll(&pfd, 1, timeout_ms);
      if (r < 0) {
        if (errno == EINTR) return StreamMessage{};
        throw errno_error("poll on the replication connection failed", errno);
      }
      if (r == 0) return StreamMessage{};
      if (PQconsumeInput(conn_.get()) == 0) throw_lost("could not receive data from the server");
      timeout_ms = 0;  // data arrived; do not wait again if it was not a whole message
      continue;
    }
    if (n == -1) {
      StreamMessage m;
      m.kind = StreamMessage::Kind::copy_done;
      return m;
    }
    if (n < 0) throw_lost("could not read the WAL stream");
    copy_buffer_.reset(buf);
    return parse_stream_message({buf, size_t(n)});
  }
}

void ReplicationConnection::send_status(Lsn write, Lsn flush, Lsn apply, bool reply_requested) {
  char msg[1 + 8 + 8 + 8 + 8 + 1];
  msg[0] = 'r';
  put_be64(msg + 1, write.value);
  put_be64(msg + 9, flush.value);
  put_be64(msg + 17, apply.value);
  put_be64(msg + 25, uint64_t(pg_now_us()));
  msg[33] = reply_requested ? 1 : 0;
  if (PQputCopyData(conn_.get(), msg, sizeof msg) <= 0 || PQflush(conn_.get()) != 0) {
    throw_lost("could not send a status update to the server");
  }
}

void ReplicationConnection::end_copy() {
  if (end_sent_) return;
  if (PQputCopyEnd(conn_.get(), nullptr) <= 0 || PQflush(conn_.get()) != 0) {
    throw_lost("could not send the end of the stream to the server");
  }
  end_sent_ = true;
}

StreamEnd ReplicationConnection::finish_streaming() {
  copy_buffer_.reset();
  StreamEnd end;
  // After the server's CopyDone libpq reports COPY_IN: we still owe ours. Then comes a result
  // set with the next timeline when the timeline ended, then the command completion. A
  // server that is shutting down may skip its CopyDone and complete the command at once.
  for (;;) {
    PgResultPtr res(PQgetResult(conn_.get()));
    if (!res) break;
    const ExecStatusType st = PQresultStatus(res.get());
    if (st == PGRES_COPY_IN) {
      end_copy();
      continue;
    }
    if (st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
      // Data still in flight after our CopyDone: drain it.
      char* buf = nullptr;
      int n;
      while ((n = PQgetCopyData(conn_.get(), &buf, 0)) > 0) PQfreemem(buf);
      if (n == -2) throw_lost("could not read the end of the WAL stream");
      continue;
    }
    if (st == PGRES_TUPLES_OK) {
      if (PQntuples(res.get()) == 1 && PQnfields(res.get()) >= 2) {
        auto tli = parse_u32(PQgetvalue(res.get(), 0, 0));
        auto lsn = Lsn::parse(PQgetvalue(res.get(), 0, 1));
        if (!tli || !lsn) throw Error("the server sent an unparsable end-of-timeline result");
        end.next_timeline = TimelineId(*tli);
        end.next_timeline_start = *lsn;
      }
      continue;
    }
    if (st == PGRES_COMMAND_OK) continue;
    if (PQstatus(conn_.get()) != CONNECTION_OK) throw_lost("the WAL stream ended with an error");
    throw_if_wal_removed(pg_result_error(res.get()));
    throw Error("the WAL stream ended with an error: " + pg_result_error(res.get()));
  }
  if (PQstatus(conn_.get()) != CONNECTION_OK) throw_lost("the WAL stream ended");
  return end;
}

}  // namespace walvault
