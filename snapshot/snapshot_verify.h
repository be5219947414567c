#pragma once
// Verifying snapshots: every snapshot's entries file against its checksum, and every object
// the entries use read back, decoded and compared with its SHA-256 name (each object once,
// however many snapshots share it). Used by `walvault verify`; restore checks the objects of
// the snapshots it restores the same way before writing anything.

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/repository.h"
#include "snapshot/snapshot_manifest.h"

namespace walvault {

struct SnapshotProblem {
  std::string snapshot_id;
  std::string path;    // the file whose content is affected ("" for the snapshot as a whole)
  std::string object;  // the object file ("" when the problem is not an object)
  std::string problem;
  std::string describe() const;
};

struct SnapshotVerifyReport {
  uint64_t snapshots = 0;
  uint64_t objects = 0;       // distinct objects read
  uint64_t bytes = 0;         // their decoded size
  uint64_t stored_bytes = 0;  // their size in the store
  std::vector<SnapshotProblem> problems;
  bool ok() const { return problems.empty(); }
  Json to_json() const;
};

SnapshotVerifyReport verify_snapshots(const Repository& repo,
                                      const std::vector<SnapshotInfo>& snapshots);

// Every object the given snapshots use (their entries read and checked). For expiry: an
// object outside this set for the kept snapshots may be removed, one inside it never. Throws
// Error when an entries file cannot be read, so that no object is ever judged unused on
// incomplete information.
std::set<std::string> objects_in_use(const Repository& repo, const std::vector<SnapshotInfo>& kept);

}  // namespace walvault
