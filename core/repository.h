#pragma once
// The only code that knows paths inside a repository (docs/repository-format.md).
//
//   REPO/walvault.json                      format version, system identifier, PG version,
//                                            WAL segment size
//   REPO/wal/<TLI>/<walfile>[.lz4][.partial] segments per timeline
//   REPO/wal/<TLI>.history                   timeline history files
//   REPO/backups/<id>/...                    base backups
//   REPO/snapshots/<id>/snapshot.json        volume snapshots
//   REPO/store/<ab>/<sha256>.lz4             content-addressed objects (snapshot contents)
//   REPO/lock/                               lock files

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/fs.h"
#include "core/lsn.h"

namespace walvault {

constexpr int kRepoFormatVersion = 1;

struct RepoIdentity {
  std::string system_identifier;  // decimal, as IDENTIFY_SYSTEM prints it
  int pg_version_num = 0;         // server_version_num, e.g. 150018
  uint64_t wal_segment_size = 0;
};

enum class Compression { none, lz4 };
std::string_view compression_suffix(Compression c);  // "" or ".lz4"
std::optional<Compression> parse_compression(std::string_view text);

struct WalFileEntry {
  TimelineId timeline;
  SegmentNo segno;
  Compression compression = Compression::none;
  bool partial = false;
  fs::path path;
};

// Parses the text of walvault.json (file names it in errors). Throws Error when it is not a
// valid identity of this format version.
RepoIdentity parse_repo_identity(std::string_view text, const fs::path& file);

class Repository {
 public:
  // For reading commands: the directory must exist and hold walvault.json.
  static Repository open(const fs::path& root);
  // For archive, backup, snapshot: creates the repository in an absent or empty directory,
  // otherwise opens it and refuses a server of another database system.
  static Repository open_or_create(const fs::path& root, const RepoIdentity& server);
  // For `verify` of a repository whose walvault.json is damaged: the identity comes from
  // elsewhere (the WAL's page headers). Nothing else may use it.
  static Repository with_identity(const fs::path& root, RepoIdentity identity) {
    return Repository(root, std::move(identity));
  }

  const fs::path& root() const { return root_; }
  const RepoIdentity& identity() const { return identity_; }
  uint64_t segment_size() const { return identity_.wal_segment_size; }

  fs::path wal_root() const { return root_ / "wal"; }
  fs::path wal_dir(TimelineId tli) const { return wal_root() / tli.hex(); }
  fs::path history_path(TimelineId tli) const { return wal_root() / history_file_name(tli); }
  fs::path segment_path(TimelineId tli, SegmentNo segno, Compression c, bool partial) const;
  fs::path backups_dir() const { return root_ / "backups"; }
  fs::path lock_dir() const { return root_ / "lock"; }
  // Volume snapshots (snapshot/): one directory per snapshot, and the content-addressed
  // store their files' contents live in (core/object_store.h).
  fs::path snapshots_dir() const { return root_ / "snapshots"; }
  fs::path store_dir() const { return root_ / "store"; }

  // Timelines that have a wal/<TLI> directory, ascending.
  std::vector<TimelineId> wal_timelines() const;
  // Segment files of one timeline, ascending by segment number (a complete file and a
  // .partial of the same segment may both be listed; the complete one first).
  std::vector<WalFileEntry> list_wal(TimelineId tli) const;
  // The complete segment if archived, otherwise nullopt.
  std::optional<WalFileEntry> find_complete_segment(TimelineId tli, SegmentNo segno) const;

 private:
  Repository(fs::path root, RepoIdentity identity)
      : root_(std::move(root)), identity_(std::move(identity)) {}
  static RepoIdentity read_identity(const fs::path& root);

  fs::path root_;
  RepoIdentity identity_;
};

}  // namespace walvault
