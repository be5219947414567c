#pragma once
// `walvault check`: is continuous archiving healthy right now? Asks the server (connection,
// replication privilege, slot state, how far it is ahead of the archive) and the repository
// (age of the newest complete backup and of the newest snapshot of each name), compares with
// the limits given and says, one line per failing check, what is wrong. For cron and
// Nagios-style monitors; the rules are in docs/usage.md ("Monitoring").

#include <optional>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/lsn.h"
#include "core/repository.h"
#include "core/timestamp.h"

namespace walvault {

// A limit left unset is not checked (its value is still measured and reported).
struct HealthLimits {
  std::optional<double> max_backup_age_hours;
  std::optional<double> max_snapshot_age_hours;
  std::optional<uint64_t> max_lag_bytes;
  std::optional<double> max_lag_seconds;
  std::string slot;  // empty: no slot is checked
};

struct HealthCheck {
  std::string name;  // "connection", "replication", "slot", "lag_bytes", "lag_seconds", ...
  enum class State { ok, failed, skipped } state = State::ok;
  std::string message;  // what was found ("" when ok and nothing worth saying)
};

struct HealthReport {
  Timestamp now;
  std::vector<HealthCheck> checks;  // in a fixed order
  // What was measured (absent when it could not be).
  std::optional<Lsn> server_lsn;
  std::optional<TimelineId> server_timeline;
  std::optional<Lsn> archive_end_lsn;
  std::optional<uint64_t> lag_bytes;
  std::optional<double> lag_seconds;
  std::optional<std::string> slot_wal_status;
  std::optional<bool> slot_active;
  std::optional<std::string> newest_backup_id;
  std::optional<Timestamp> newest_backup_stop;
  struct SnapshotAge {
    std::string name;
    std::string id;
    Timestamp time;
  };
  std::vector<SnapshotAge> newest_snapshots;  // one per name

  bool healthy() const;
  // One line per failing check ("CRITICAL lag_bytes: ..."), or one "OK: ..." line.
  std::string to_text() const;
  Json to_json() const;
};

// Never throws for what it checks (a server that cannot be reached is a failing check); throws
// Error only when the repository cannot be read at all.
HealthReport run_health_check(const Repository& repo, const std::string& conninfo,
                              const HealthLimits& limits);

}  // namespace walvault
