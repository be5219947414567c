#pragma once
// Restoring directories from snapshots: which snapshot (the newest of that name at or before
// the target), then, before anything is written, the target path (absent or empty), the
// entries and every object they need (read and checked), then the tree itself with modes,
// owners (as root), mtimes and symlinks as recorded.

#include <optional>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/repository.h"
#include "core/timestamp.h"
#include "snapshot/snapshot_manifest.h"

namespace walvault {

// --restore-dir NAME=PATH
struct DirRestoreRequest {
  std::string name;
  fs::path path;  // absolute
};
// "NAME=PATH" -> request; throws a usage Error naming `option` when malformed.
DirRestoreRequest parse_dir_option(const std::string& text, const std::string& option);

struct PlannedDirRestore {
  SnapshotInfo snapshot;
  fs::path path;
  std::optional<int64_t> before_target_us;  // target - snapshot time, when there is a target
};

// For each request the newest snapshot of its name at or before target (nullopt: the newest).
// Throws Error(unreachable) when a name has none, saying what the repository has instead.
std::vector<PlannedDirRestore> plan_dir_restores(const std::vector<SnapshotInfo>& snapshots,
                                                 const std::vector<DirRestoreRequest>& requests,
                                                 std::optional<Timestamp> target);

// "snapshot 20261203T140000Z-data (2026-12-03T14:00:00+00:00, 5 min before the target)"
std::string describe(const PlannedDirRestore& p);

// Throws unless path is absent or an empty directory.
void check_dir_restore_target(const fs::path& path);

struct PreparedDirRestore {
  PlannedDirRestore plan;
  std::vector<SnapshotEntry> entries;
  bool path_existed = false;  // an empty directory was there: keep it when cleaning up
};

// Everything short of writing: the target is absent or empty, the entries are well formed
// (relative paths, parents before children, no path through a symlink) and every object they
// use is present and matches its checksum. Throws Error naming the first damaged file.
PreparedDirRestore prepare_dir_restore(const Repository& repo, const PlannedDirRestore& plan);

struct DirRestoreOptions {
  bool restore_owners = false;  // chown to the recorded uid/gid (needs root)
};

struct DirRestoreResult {
  uint64_t files = 0;
  uint64_t dirs = 0;
  uint64_t symlinks = 0;
  uint64_t bytes = 0;
  std::vector<std::string> inconsistent;  // files the snapshot recorded as inconsistent
};

// Writes the tree. Objects are checked again as they are decoded; on any failure whatever was
// created under the path (and the path itself, if it was absent) is removed again.
DirRestoreResult restore_dir(const Repository& repo, const PreparedDirRestore& prepared,
                             const DirRestoreOptions& options);

// Removes a restored tree again (when a later step of a larger restore fails): the path
// itself when restore_dir created it, otherwise its contents.
void remove_restored_dir(const PreparedDirRestore& prepared);

// "5 min 3 s", "2 h 10 min", "0 s"
std::string format_duration_us(int64_t us);

}  // namespace walvault

namespace walvault {

// Several --restore-dir NAME=PATH as one step of a larger restore (walvault restore restores
// them before the database; walvault snapshot --restore alone).
class DirRestoreSet {
 public:
  // Plans: the newest snapshot of each name at or before target. Throws Error(unreachable)
  // when a name has none. Damaged snapshot.json files are warned about and left out.
  DirRestoreSet(const Repository& repo, const std::vector<DirRestoreRequest>& requests,
                std::optional<Timestamp> target);
  // Or from plans made elsewhere.
  DirRestoreSet(const Repository& repo, std::vector<PlannedDirRestore> plans);

  bool empty() const { return plans_.empty(); }
  const std::vector<PlannedDirRestore>& plans() const { return plans_; }

  // [{name, path, snapshot, time, before_target_seconds, files, bytes, inconsistent}]
  Json to_json() const;
  // One line per directory: "<prefix>data -> /srv/data: snapshot ... (..., 5 min before ...)"
  std::string to_text(const std::string& prefix = "directory ") const;
  // Throws unless every restore path is absent or empty (for dry runs; prepare() checks too).
  void check_targets() const;

  // Everything short of writing (targets absent or empty, every object present and intact).
  void prepare();
  // Writes every directory (prepare() first if not done). On failure removes what it wrote.
  std::vector<DirRestoreResult> restore(const DirRestoreOptions& options);
  // Removes what restore() wrote, when a later step of the larger restore failed.
  void undo();

 private:
  const Repository& repo_;
  std::vector<PlannedDirRestore> plans_;
  std::vector<PreparedDirRestore> prepared_;
  size_t restored_ = 0;
};

}  // namespace walvault
