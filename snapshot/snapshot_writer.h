#pragma once
// `walvault snapshot` as a library function: walks a directory tree and records it as a
// snapshot (snapshot/snapshot_manifest.h) whose file contents go to the content-addressed
// store (core/object_store.h), chunked by content (core/chunker.h).
//
// Each file is recorded as it was at one moment: fstat before and after reading (size,
// mtime, ctime, inode) must agree, otherwise it is read again. A file whose timestamps are
// within racy_window of the read may have been changed in the same clock tick without a
// visible timestamp change; such files are read a second time once the clock has moved on
// and their content compared. A file that keeps changing through every attempt is recorded
// as `inconsistent` (its last read) and named in a warning: never silently half-old half-new.
//
// The snapshot is a set of per-file consistent reads taken between start_time and time, not
// an atomic image of the whole tree (that needs a file-system snapshot underneath).

#include <functional>
#include <string>
#include <vector>

#include "core/chunker.h"
#include "core/repository.h"
#include "snapshot/snapshot_manifest.h"

namespace walvault {

struct SnapshotRequest {
  std::string name;                   // NAME of --dir NAME=PATH
  fs::path source;                    // PATH, absolute
  std::vector<std::string> excludes;  // --exclude GLOB
  std::string backup_id;              // set when taken as part of walvault backup
};

struct SnapshotOptions {
  ChunkerParams chunker;
  int max_read_attempts = 5;  // per file, before it is recorded as inconsistent
  int64_t racy_window_ms = 1000;
  // Checked between files and chunks (SIGINT/SIGTERM): ends the snapshot with an Error and
  // nothing of it left behind.
  std::function<bool()> stop_requested;
  // Test hooks. after_read: a file's content has been read (attempt counts from 1), before
  // its second fstat. before_recheck: racy files are about to be read a second time.
  std::function<void(const std::string& path, int attempt)> after_read;
  std::function<void()> before_recheck;
};

// --dir NAME=PATH ... and --exclude GLOB ... as requests: names valid and distinct, each PATH a
// directory (checked now, so that walvault backup fails before it connects). Usage Error or
// Error otherwise.
std::vector<SnapshotRequest> snapshot_requests(const std::vector<std::string>& dirs,
                                               const std::vector<std::string>& excludes);

// Takes one snapshot and commits it (snapshot.json written last). On failure nothing of the
// snapshot remains except objects in the store that nothing refers to yet.
SnapshotInfo take_snapshot(const Repository& repo, const SnapshotRequest& request,
                           const SnapshotOptions& options = {});

// walvault backup --dir: each request as a snapshot recorded as taken with backup_id (logged
// one line each); returns their ids.
std::vector<std::string> take_backup_snapshots(const Repository& repo,
                                               const std::vector<SnapshotRequest>& requests,
                                               const std::string& backup_id,
                                               const SnapshotOptions& options = {});

// --exclude semantics: a pattern without '/' matches an entry's name at any depth; a pattern
// with '/' matches its path relative to the snapshot's root (fnmatch, '*' stops at '/'). An
// excluded directory is skipped with everything below it.
bool snapshot_path_excluded(const std::vector<std::string>& excludes, const std::string& rel_path);

// A one-line description for the CLI: "snapshot ID of NAME (PATH): N files, ...".
std::string describe(const SnapshotInfo& info);

}  // namespace walvault
