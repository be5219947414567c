#pragma once
// The recovery planner: for a target, which backup, which timeline path, which WAL, and the
// settings PostgreSQL needs, or one precise reason why the target cannot be reached.
// Pure: it reads what the repository holds through RepoState and a WalView, never files.

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/backup_info.h"
#include "core/repository.h"
#include "core/timeline_history.h"
#include "pitr/recovery_target.h"
#include "pitr/wal_view.h"

namespace walvault {

// What the planner knows about the repository besides the WAL itself.
struct RepoState {
  RepoIdentity identity;
  std::vector<BackupInfo> backups;                  // any status
  std::map<TimelineId, TimelineHistory> histories;  // every timeline the repository knows
  // The history of tli (a timeline alone when the repository has nothing on it).
  TimelineHistory history_of(TimelineId tli) const;
  // The newest timeline the repository knows (1 when it knows none).
  TimelineId latest_timeline() const;
};

// Where PostgreSQL's recovery will stop.
struct RecoveryStop {
  enum class Where {
    before_record,   // recovery_target_time, or an exclusive xid/lsn target
    after_record,    // inclusive xid, restore point name
    at_lsn,          // recovery_target_lsn
    at_consistency,  // recovery_target = 'immediate'
    end_of_wal,      // no target: all archived WAL
  };
  Where where = Where::end_of_wal;
  std::optional<WalEvent> record;  // the record it stops before or after
  Lsn replay_until;                // WAL must be archived up to here (exclusive)
};
std::string describe(
    const RecoveryStop& stop);  // "before commit of transaction 745 (...) at 0/..."

struct WalNeeded {
  std::string first;  // WAL file names, as PostgreSQL will ask for them
  std::string last;
  uint64_t segments = 0;
  Lsn start;  // the backup's start (redo) LSN
  Lsn end;    // replay_until
};

struct RecoveryPlan {
  BackupInfo backup;
  TimelineHistory history{TimelineId(1)};   // ancestry of the target timeline
  std::vector<TimelineSpan> timeline_path;  // the part of it recovery goes through
  WalNeeded wal;
  RecoveryTarget target;
  RecoveryStop stop;
  // In the order they are written: restore_command, recovery_target_*, ...
  std::vector<std::pair<std::string, std::string>> recovery_settings;
};

// Plans recovery to target, or throws Error(ExitCode::unreachable) saying why not.
// restore_command is written verbatim into the settings.
RecoveryPlan plan_recovery(const RepoState& repo, WalView& wal, const RecoveryTarget& target,
                           const std::string& restore_command);

// What can be restored along the ancestry of one timeline.
struct RecoverableWindow {
  struct Piece {
    std::string backup_id;
    Timestamp from_time;               // the backup's stop (consistency) time
    std::optional<Timestamp> to_time;  // newest commit/abort after its consistency point
    Lsn to_lsn;                        // replayable WAL from the backup ends here
  };
  TimelineId timeline;
  std::optional<Timestamp> from_time;  // oldest complete, restorable backup's stop time
  std::optional<Timestamp> to_time;    // newest commit/abort in WAL continuous from a backup
  std::optional<Lsn> to_lsn;           // end of WAL continuous from a backup
  std::vector<Piece> pieces;           // one per restorable backup, oldest first
};
RecoverableWindow recoverable_window(const RepoState& repo, WalView& wal, TimelineId timeline);
std::string describe(const RecoverableWindow& window);  // "2026-... to 2026-..."

}  // namespace walvault
