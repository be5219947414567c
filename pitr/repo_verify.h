#pragma once
// walvault verify: re-reads the whole repository and names every damaged file, one line each.
//
//   walvault.json      parses; its system identifier agrees with the WAL and the backups
//   wal/<TLI>.history  parses; agrees with its parent's history; every timeline after the
//                      first that has WAL has one
//   wal/<TLI>/...      every complete segment: one lz4 frame (block and content checksums)
//                      holding exactly one segment whose page headers carry their own address,
//                      the database system and the timeline (or an ancestor), and whose records
//                      have valid lengths, back links and CRC-32Cs (records crossing into the
//                      next segment included); a `.partial`: the same for its verified prefix;
//                      a torn tail (the last write cut by a crash) is a warning, bytes that fail
//                      with more written after them are damage; holes between archived WAL
//                      (not recorded in gaps.json as lost on the server) name the missing files
//   backups/<id>/      backup.json parses; every stored file is there with its size and
//                      SHA-256; archives are valid lz4 frames holding a whole tar archive of the
//                      recorded size; backup_manifest parses and matches its own checksum; the
//                      WAL from the backup's start to its stop LSN is archived and intact
//   snapshots/, store/ every snapshot's entries and every object they use (snapshot_verify.h)
//   lock/              reported (held or not); a stale lock file is no damage
//
// Files are streamed (a .partial, at most one segment, is read whole); work is spread over
// `jobs` threads: the large archives first, then runs of WAL segments, then the snapshots.

#include <optional>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/repo_lock.h"
#include "core/repository.h"
#include "snapshot/snapshot_verify.h"

namespace walvault {

struct VerifyFinding {
  enum class Severity { damaged, warning };
  Severity severity = Severity::damaged;
  std::string path;     // the file (or directory) concerned
  std::string problem;  // what is wrong with it
  std::string text;     // the line to print, when it is not "<path>: <problem>"
  std::string line() const { return text.empty() ? path + ": " + problem : text; }
};

struct LockFileState {
  std::string path;
  std::optional<LockHolder> holder;  // nullopt: nobody holds it (a stale file is harmless)
};

struct RepoVerifyReport {
  std::string root;
  std::optional<RepoIdentity> identity;
  bool identity_from_wal = false;  // walvault.json was unusable; the WAL's page headers told
  uint64_t timelines = 0;
  uint64_t history_files = 0;
  uint64_t wal_segments = 0;  // complete segment files
  uint64_t partial_files = 0;
  uint64_t wal_bytes = 0;         // WAL decoded
  uint64_t wal_stored_bytes = 0;  // bytes read from WAL files
  uint64_t backups = 0;
  uint64_t backup_files = 0;
  uint64_t backup_stored_bytes = 0;
  SnapshotVerifyReport snapshots;
  std::vector<LockFileState> locks;
  std::vector<VerifyFinding> findings;  // damage first, then warnings; each by path

  size_t damaged() const;
  size_t warnings() const;
  bool ok() const { return damaged() == 0; }
  Json to_json() const;
  std::string to_text() const;
};

struct RepoVerifyOptions {
  unsigned jobs = 0;  // threads; 0: as many as there are cores, at most 2
};

// Throws Error only when `root` is no directory at all; everything else is a finding.
RepoVerifyReport verify_repository(const fs::path& root, const RepoVerifyOptions& options = {});

}  // namespace walvault
