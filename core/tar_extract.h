#pragma once
// A TarSink that writes the members into a directory: regular files, directories,
// symbolic links and hard links, with their permission bits and modification times.
//
// Safety: names are already relative and free of ".." (TarReader checks them); on top of
// that nothing is ever written through a symbolic link: every parent of a member must be
// a directory this extractor created itself (the root has to start empty), so a symlink
// member followed by "link/file" is refused instead of escaping the root.
//
// Durability: nothing is fsynced while extracting (writeback is only started when a file
// is closed); sync() then fsyncs every file and directory once, at the end — one pass, as
// initdb and pg_basebackup do, instead of a stall per file.

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/fs.h"
#include "core/tar.h"
#include "core/unique_fd.h"

namespace walvault {

class TarExtractor : public TarSink {
 public:
  // Returns the target to give a symlink member (default: the target as stored).
  using SymlinkTargetFn = std::function<std::string(const TarEntry&)>;

  // root must exist and be empty.
  explicit TarExtractor(fs::path root, SymlinkTargetFn symlink_target = {});

  void begin_entry(const TarEntry& entry) override;
  void entry_data(std::span<const std::byte> data) override;
  void end_entry() override;
  // Applies directory modes and times (deferred so read-only directories can be filled).
  void end_archive() override;

  // fsyncs every file and directory written, the root, and the root's parent.
  void sync();

  uint64_t files() const { return files_; }
  uint64_t bytes() const { return bytes_; }

 private:
  struct DirFixup {
    std::string path;
    uint32_t mode;
    int64_t mtime;
    bool from_member;
  };

  void ensure_parents(const std::string& path);
  void make_dir(const std::string& path, uint32_t mode, int64_t mtime, bool from_member);
  fs::path full(const std::string& rel) const { return root_ / rel; }

  fs::path root_;
  UniqueFd root_fd_;
  SymlinkTargetFn symlink_target_;
  std::unordered_map<std::string, TarEntryType> created_;
  std::unordered_map<std::string, size_t> dir_index_;  // path -> index in dirs_
  std::vector<DirFixup> dirs_;
  std::vector<std::string> written_files_;

  TarEntry current_;
  UniqueFd current_fd_;
  uint64_t files_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace walvault
