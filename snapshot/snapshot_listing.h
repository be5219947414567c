#pragma once
// Snapshots as `walvault info` and `walvault snapshot --list` show them.

#include <string>
#include <vector>

#include "core/json.h"
#include "snapshot/snapshot_manifest.h"

namespace walvault {

// Each {id, name, time, files, bytes, stored_bytes} (the contract of info --json), then
// start_time, source, backup (when taken by walvault backup) and the inconsistent files.
Json snapshots_to_json(const std::vector<SnapshotInfo>& snapshots);

// A table, one line per snapshot, oldest first ("no snapshots" when there are none).
std::string snapshots_to_text(const std::vector<SnapshotInfo>& snapshots);

// One line per name (for info, where hourly snapshots would make a long table): how many,
// from when to when, and the newest.
std::string snapshots_summary_text(const std::vector<SnapshotInfo>& snapshots);

}  // namespace walvault
