#pragma once
// walvault restore: plan, then (unless a dry run) unpack the backup, write the recovery
// settings and hand the directory to the PostgreSQL user. Nothing is written before the plan
// is complete and the target directory has been found absent or empty.

#include <map>
#include <optional>
#include <string>

#include "core/json.h"
#include "pitr/catalog.h"
#include "pitr/planner.h"
#include "pitr/restore_builder.h"

namespace walvault {

struct RestoreRequest {
  fs::path target_dir;  // absolute
  RecoveryTarget target;
  std::optional<std::string> owner;
  std::map<uint32_t, fs::path> tablespace_dirs;   // --tablespace-dir: oid -> where to restore it
  std::map<fs::path, fs::path> tablespace_paths;  // --tablespace: original path -> new path
  // --restore-dir: the directories restored with the database from snapshots, as
  // plan_to_json ("snapshots") and plan_to_text show them (the caller fills these in from
  // snapshot/snapshot_restore.h's DirRestoreSet).
  Json snapshots = Json::array();
  std::string snapshots_text;
  // check_plan_inputs has passed for this plan: execute_restore does not read it all again.
  bool inputs_checked = false;
};

struct RestoreResult {
  uint64_t files = 0;
  uint64_t bytes = 0;
};

// Where each tablespace of the backup goes: --tablespace-dir by oid, else --tablespace by
// original location, else the original location. A mapping that names no tablespace of the
// backup, or a tablespace mapped twice, is a usage Error (before anything is written).
std::map<uint32_t, fs::path> tablespace_targets(const BackupInfo& backup,
                                                const RestoreRequest& request);

// Plans the restore (throws Error(unreachable) with the reason when it cannot be done).
RecoveryPlan plan_restore(Catalog& catalog, const RecoveryTarget& target);

// Reads and checks everything the plan needs before anything is written (contract 4): the
// backup's files against backup.json, and every WAL segment from the backup's start to where
// recovery stops (pitr/wal_check.h: frames, sizes, page headers, record checksums), the two
// side by side. Throws Error naming the first damaged or missing file.
void check_plan_inputs(const Repository& repo, const RecoveryPlan& plan);

// Executes a plan: unpacks the backup (its files' checksums are verified first), writes
// recovery.signal and the settings, chowns to the owner. On failure, whatever it created in
// the target directory is removed again.
RestoreResult execute_restore(const Repository& repo, const RecoveryPlan& plan,
                              const RestoreRequest& request, const RestoreOwner& owner);

Json plan_to_json(const RecoveryPlan& plan, const RestoreRequest& request,
                  const RestoreOwner& owner);
std::string plan_to_text(const RecoveryPlan& plan, const RestoreRequest& request,
                         const RestoreOwner& owner);

}  // namespace walvault
