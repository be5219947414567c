#pragma once
// Retention: which backups, WAL, snapshots and store objects a policy lets go (the planner,
// pure: tested without a server or files), and removing them so that a crash at any moment
// leaves a consistent repository (the executor). `walvault expire` and the service (after
// each scheduled backup) call run_expire. The rules are documented in docs/retention.md.
//
// The planner's rules, in short:
//   * Only complete backups count. --retain-full N keeps the N newest (by stop time);
//     --retain-days D keeps every backup that stopped within D days of now plus the newest
//     that stopped before that, so the whole D-day window stays restorable. At least one
//     complete backup is always kept; with none, nothing is removed.
//   * The window starts at the oldest kept backup's stop time. Failed, dead ("running" with
//     no writer) and backup.json-less backup directories that started before the newest
//     complete backup (which supersedes them) are removed too; one whose writer still holds
//     its lock never is.
//   * WAL: every kept backup (and every backup still in progress) needs, on its timeline and
//     on every timeline whose history passes through its start, the WAL from its start LSN
//     on. Per timeline the files (complete and .partial alike) below the lowest such need
//     are removed; a timeline no kept backup can reach loses all its files, except the newest
//     timeline (the archiver may be writing it) and timelines whose ancestry is unknown.
//     History files are always kept. A backup in progress whose start LSN is not yet known
//     holds all WAL back for this run.
//   * Snapshots, per name: kept when taken after the window's start, or the newest at or
//     before it (a restore to the window's start uses that one), or named by a kept backup.
//   * Objects in the store: removed when no kept snapshot uses them, only while no snapshot
//     is being written (the store lock) and only when every snapshot.json could be read.

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/backup_info.h"
#include "core/json.h"
#include "core/lsn.h"
#include "core/repository.h"
#include "core/timeline_history.h"
#include "core/timestamp.h"
#include "snapshot/snapshot_manifest.h"
#include "walarchiver/archiver.h"

namespace walvault {

struct RetentionPolicy {
  enum class Kind { full_count, days };
  Kind kind = Kind::full_count;
  uint32_t full_count = 1;  // --retain-full N (N >= 1)
  double days = 0;          // --retain-days D (D > 0; fractions allowed)

  static RetentionPolicy retain_full(uint32_t n);  // usage Error for 0
  static RetentionPolicy retain_days(double d);    // usage Error for d <= 0 or not finite
  std::string describe() const;                    // "--retain-full 2", "--retain-days 7"
  Json to_json() const;                            // {"retain_full": 2} / {"retain_days": 7}
};

// A backup directory whose backup.json is missing or cannot be read.
struct UnreadableBackupDir {
  std::string id;  // the directory name
  bool has_backup_json = false;
  std::string problem;
};

// Everything the planner looks at; read_retention_input reads it from a repository, tests
// write it by hand.
struct RetentionInput {
  uint64_t segment_size_bytes = 0;
  std::vector<BackupInfo> backups;            // readable backup.json files, any status
  std::set<std::string> backups_in_progress;  // ids whose writer holds backup-<id>.lock
  std::vector<UnreadableBackupDir> unreadable_backups;
  std::map<TimelineId, TimelineHistory> histories;  // timelines whose ancestry is known
  std::set<TimelineId> unknown_ancestry;  // later timelines without a (readable) history file
  std::map<TimelineId, std::vector<WalFileEntry>> wal;           // every segment file, ascending
  std::map<TimelineId, std::vector<RecordedGap>> recorded_gaps;  // wal/<TLI>/gaps.json
  std::vector<SnapshotInfo> snapshots;                           // committed snapshots
  std::vector<std::string> snapshot_problems;                    // damaged snapshot.json files
};

struct BackupRemoval {
  std::string id;
  BackupStatus status = BackupStatus::failed;
  bool has_backup_json = true;
  std::optional<Timestamp> start_time;
  std::optional<Timestamp> stop_time;  // complete backups
  std::string reason;
};

struct WalRemoval {
  TimelineId timeline;
  std::optional<Lsn> keep_from;     // the lowest LSN a kept backup needs; nullopt: none needs any
  std::vector<WalFileEntry> files;  // ascending: removed oldest first
  size_t gaps_dropped = 0;          // gaps.json entries that lie wholly in the removed WAL
  size_t gaps_kept = 0;             // entries left in gaps.json
};

struct SnapshotRemoval {
  SnapshotInfo snapshot;
  std::string reason;
};

struct RetentionPlan {
  RetentionPolicy policy;
  Timestamp now;
  std::vector<BackupInfo> kept_backups;  // complete backups the policy keeps, oldest first
  size_t complete_backups = 0;
  std::optional<Timestamp> window_start;  // the oldest kept backup's stop time
  std::vector<BackupRemoval> backups;
  std::vector<WalRemoval> wal;  // timelines with something to remove
  std::vector<SnapshotRemoval> snapshots;
  std::vector<SnapshotInfo> kept_snapshots;
  bool expire_objects = false;     // false: the snapshots could not all be read (see notes)
  std::vector<std::string> notes;  // what was deliberately left alone, and why
  bool empty() const { return backups.empty() && wal.empty() && snapshots.empty(); }
};

RetentionPlan plan_retention(const RetentionInput& input, const RetentionPolicy& policy,
                             Timestamp now);

// Reads what plan_retention needs. Backup locks are probed before backup.json files are read,
// so a backup that starts meanwhile is seen as in progress or not at all, never as dead.
RetentionInput read_retention_input(const Repository& repo);

struct ExpireOptions {
  bool dry_run = false;          // plan and measure, remove nothing, take no lock
  std::optional<Timestamp> now;  // default: the clock
};

// One removed (or, in a dry run, removable) thing, with the bytes it occupied.
struct ExpireItem {
  std::string kind;  // "backup", "wal", "snapshot", "objects", "leftover"
  std::string what;  // id, file name, or a count
  uint64_t bytes = 0;
};

struct ExpireReport {
  RetentionPlan plan;
  bool dry_run = false;
  uint64_t backup_bytes = 0;
  uint64_t wal_files = 0;
  uint64_t wal_bytes = 0;
  uint64_t snapshot_bytes = 0;
  uint64_t objects = 0;  // store objects no kept snapshot uses
  uint64_t object_bytes = 0;
  std::vector<ExpireItem> leftovers;  // crash leftovers: temporary store files, uncommitted
                                      // snapshot directories, trash of an earlier expire
  uint64_t leftover_bytes = 0;
  std::vector<std::string> notes;  // the plan's and the executor's
  uint64_t bytes_freed() const {
    return backup_bytes + wal_bytes + snapshot_bytes + object_bytes + leftover_bytes;
  }
  Json to_json() const;
  std::string to_text() const;
};

// Takes the expire lock (one expire at a time) and tries the store lock (objects are only
// expired while no snapshot is being written), reads, plans and removes, in an order that
// keeps the repository consistent after a crash at any point:
//   1. backups: backups/<id> is renamed into REPO/trash/ (atomic, directories fsynced: from
//      then on no reader offers it), then its files are removed;
//   2. WAL, per timeline, oldest file first, the directory fsynced after each (what remains
//      is always a contiguous suffix), then gaps.json rewritten;
//   3. snapshots as backups (renamed into trash/, then removed);
//   4. store objects no kept snapshot uses, and crash leftovers.
// Throws Error when another expire runs or a removal fails (what was removed stays removed;
// running it again continues).
ExpireReport run_expire(const Repository& repo, const RetentionPolicy& policy,
                        const ExpireOptions& options = {});

// "12.0 MiB"
std::string format_bytes(uint64_t bytes);

}  // namespace walvault
