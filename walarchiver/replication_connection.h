#pragma once
// A physical replication connection (libpq, replication=true): the commands of the
// streaming replication protocol and the COPY BOTH stream of START_REPLICATION.
// Reused by basebackup/ for BASE_BACKUP through raw().

#include <cstdint>
#include <string>

#include "core/pg.h"
#include "core/pg_versions.h"
#include "core/repository.h"
#include "walarchiver/replication_source.h"

namespace walvault {

class ReplicationConnection final : public ReplicationSource {
 public:
  // conninfo: libpq connection string or URI (as --dbname; may be empty); adds
  // replication=true (physical) and application_name (default "walvault"; an
  // application_name inside conninfo wins). PG* env vars and ~/.pgpass apply as usual.
  // Throws Error "could not connect to the server: <libpq message>" with a hint, and refuses
  // server majors outside kMinServerMajor..kMaxServerMajor (core/pg_versions.h).
  static ReplicationConnection connect(const std::string& conninfo,
                                       const std::string& application_name = "walvault");

  ReplicationConnection(ReplicationConnection&&) noexcept = default;
  ReplicationConnection& operator=(ReplicationConnection&&) noexcept = default;

  SystemInfo identify_system() override;
  uint64_t wal_segment_size();  // SHOW wal_segment_size, parsed ("1MB", "16MB", "1GB")
  int server_version_num();     // PQserverVersion, e.g. 150018
  int server_major() { return pg_major_of(server_version_num()); }
  RepoIdentity repo_identity();  // identify_system + segment size + version
  std::string timeline_history(TimelineId tli) override;  // TIMELINE_HISTORY content
  // READ_REPLICATION_SLOT (PostgreSQL 15 and later). PostgreSQL 14 has no such command: the
  // slot is looked up in pg_replication_slots over an ordinary (non-replication) connection
  // with the same connection string; restart_tli is then left unset (0) and the caller
  // finds it from the server's timeline history.
  std::optional<ReplicationSlotInfo> read_replication_slot(const std::string& slot) override;
  void create_physical_slot(const std::string& slot) override;
  PGconn* raw() { return conn_.get(); }

  void start_streaming(const std::string& slot, Lsn start, TimelineId tli) override;
  StreamMessage next_message(int timeout_ms) override;
  void send_status(Lsn write, Lsn flush, Lsn apply, bool reply_requested) override;
  void end_copy() override;
  StreamEnd finish_streaming() override;

  // Runs a replication command that returns rows (or none); throws on error.
  PgResultPtr exec(const std::string& command, ExecStatusType expected);

 private:
  ReplicationConnection(PgConnPtr conn, std::string conninfo)
      : conn_(std::move(conn)), conninfo_(std::move(conninfo)) {}
  [[noreturn]] void throw_lost(const std::string& what);
  std::optional<ReplicationSlotInfo> read_replication_slot_by_sql(const std::string& slot);

  PgConnPtr conn_;
  std::string conninfo_;        // as given (without replication=true), for the SQL fallback
  PqMemPtr<char> copy_buffer_;  // the last CopyData message, kept until the next call
  bool end_sent_ = false;
};

// "1MB" / "16MB" / "1GB" / "1024kB" as PostgreSQL prints GUC sizes -> bytes; 0 if invalid.
uint64_t parse_pg_size(std::string_view text);

// Microseconds since 2000-01-01 00:00:00 UTC, PostgreSQL's timestamp epoch.
int64_t pg_now_us();

}  // namespace walvault
