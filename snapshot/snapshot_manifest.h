#pragma once
// What a snapshot records (docs/repository-format.md, "Snapshots"):
//   snapshots/<id>/entries.jsonl.lz4  one JSON object per line: every directory, regular file
//                                     and symlink of the tree, parents before children
//   snapshots/<id>/snapshot.json      summary, and the SHA-256 of the entries file; written
//                                     last: the snapshot's commit point
// The snapshot writer writes these, restore / info / verify read them.

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/repository.h"
#include "core/timestamp.h"

namespace walvault {

enum class EntryType { dir, file, symlink };
std::string_view to_string(EntryType t);

struct ChunkRef {
  std::string sha256;  // the object's name
  uint64_t bytes = 0;  // uncompressed
  friend bool operator==(const ChunkRef&, const ChunkRef&) = default;
};

struct SnapshotEntry {
  std::string path;  // relative to the snapshot's root, '/'-separated; "." is the root; bytes
  EntryType type = EntryType::file;
  uint32_t mode = 0;  // permission bits with setuid/setgid/sticky (07777)
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string user;  // name of uid where the snapshot was taken ("" when it had none)
  std::string group;
  int64_t mtime_ns = 0;
  // Regular files:
  uint64_t size = 0;
  std::string sha256;  // of the whole content
  std::vector<ChunkRef> chunks;
  bool inconsistent = false;  // it kept changing while read: content may mix two versions
  // Symlinks:
  std::string link_target;  // bytes, as readlink returns them
  friend bool operator==(const SnapshotEntry&, const SnapshotEntry&) = default;
};

struct SkippedEntry {
  std::string path;
  std::string reason;  // "socket", "fifo", "device", "the repository itself", ...
};

struct SnapshotInfo {
  std::string id;      // "20261203T140500Z-data": also the directory name
  std::string name;    // the NAME of --dir NAME=PATH
  std::string source;  // the PATH, absolute
  std::string host;
  Timestamp start_time;
  Timestamp time;         // when the last file had been read: the tree as of this moment or earlier
  std::string backup_id;  // set when taken by walvault backup
  std::vector<std::string> excludes;
  uint64_t files = 0;
  uint64_t dirs = 0;
  uint64_t symlinks = 0;
  uint64_t bytes = 0;                     // file content, uncompressed
  uint64_t objects = 0;                   // distinct objects the snapshot uses
  uint64_t new_objects = 0;               // of which this snapshot added to the store
  uint64_t stored_bytes = 0;              // bytes this snapshot added to the repository
  uint64_t referenced_bytes = 0;          // stored size of all distinct objects it uses
  std::vector<std::string> inconsistent;  // paths of files that kept changing while read
  std::vector<SkippedEntry> skipped;
  // The entries file.
  std::string entries_file = "entries.jsonl.lz4";
  std::string entries_sha256;  // of the stored (compressed) file
  uint64_t entries_count = 0;
};

Json to_json(const SnapshotInfo& s);
SnapshotInfo snapshot_info_from_json(const Json& j);  // throws Error / Json::exception

Json to_json(const SnapshotEntry& e);
SnapshotEntry snapshot_entry_from_json(const Json& j);

// JSON strings must be UTF-8; file names need not be. Valid UTF-8 is written as `key`, other
// bytes as `key_hex` (lower-case hex).
void set_bytes_field(Json& j, const std::string& key, const std::string& value);
std::string get_bytes_field(const Json& j, const std::string& key);

// Snapshot names: 1 to 64 of [A-Za-z0-9_.-], not starting with '.' or '-'.
bool is_valid_snapshot_name(std::string_view name);

fs::path snapshot_dir(const Repository& repo, const std::string& id);

// Who new repository files should belong to: when root writes into a repository owned by
// another user (normally postgres, which runs archive and wal-get), that user; else nullopt.
struct RepoOwner {
  uid_t uid = 0;
  gid_t gid = 0;
};
std::optional<RepoOwner> repository_owner_for_writes(const Repository& repo);

// Writes the entries file durably and sets info.entries_sha256 / entries_count.
void save_snapshot_entries(const Repository& repo, SnapshotInfo& info,
                           const std::vector<SnapshotEntry>& entries,
                           const std::optional<RepoOwner>& owner = std::nullopt);
// Writes snapshot.json durably: the commit point.
void save_snapshot_info(const Repository& repo, const SnapshotInfo& info,
                        const std::optional<RepoOwner>& owner = std::nullopt);

// Every committed snapshot (snapshots/*/snapshot.json), oldest first (by time, then id).
// Directories without snapshot.json are snapshots that never completed and are ignored.
// A damaged snapshot.json is an Error naming it, or, when problems is given, described there
// and left out.
std::vector<SnapshotInfo> load_snapshots(const Repository& repo,
                                         std::vector<std::string>* problems = nullptr);

// The entries of a snapshot, checked against entries_sha256. Throws Error when missing or
// damaged.
std::vector<SnapshotEntry> load_snapshot_entries(const Repository& repo, const SnapshotInfo& info);

// The newest snapshot of `name` whose time is at or before `target` (any when nullopt).
std::optional<SnapshotInfo> newest_snapshot_at_or_before(const std::vector<SnapshotInfo>& all,
                                                         const std::string& name,
                                                         std::optional<Timestamp> target);

// "0644"
std::string format_mode(uint32_t mode);

}  // namespace walvault
