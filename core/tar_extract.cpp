#include "core/tar_extract.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "core/error.h"

namespace walvault {
namespace {

timespec to_timespec(int64_t seconds) {
  timespec ts{};
  ts.tv_sec = time_t(seconds);
  return ts;
}

}  // namespace

TarExtractor::TarExtractor(fs::path root, SymlinkTargetFn symlink_target)
    : root_(fs::absolute(root).lexically_normal()), symlink_target_(std::move(symlink_target)) {
  if (!root_.has_filename()) root_ = root_.parent_path();  // "/x/y/" -> "/x/y"
  root_fd_ = open_or_throw(root_, O_RDONLY | O_DIRECTORY);
  if (!is_absent_or_empty_dir(root_)) {
    throw Error("extraction target \"" + root_.string() + "\" is not empty");
  }
}

void TarExtractor::make_dir(const std::string& path, uint32_t mode, int64_t mtime,
                            bool from_member) {
  // Owner rwx while extracting; the stored mode is applied in end_archive().
  if (::mkdirat(root_fd_.get(), path.c_str(), 0700) != 0) {
    throw errno_error("could not create directory \"" + full(path).string() + "\"", errno);
  }
  created_[path] = TarEntryType::directory;
  dir_index_[path] = dirs_.size();
  dirs_.push_back({path, mode, mtime, from_member});
}

void TarExtractor::ensure_parents(const std::string& path) {
  size_t pos = 0;
  while ((pos = path.find('/', pos)) != std::string::npos) {
    const std::string parent = path.substr(0, pos);
    ++pos;
    auto it = created_.find(parent);
    if (it == created_.end()) {
      make_dir(parent, 0700, 0, false);
    } else if (it->second != TarEntryType::directory) {
      throw Error("tar member \"" + path + "\" lies below \"" + parent + "\", which is a " +
                      std::string(to_string(it->second)),
                  "the archive is damaged or was not made by PostgreSQL; refusing to extract it");
    }
  }
}

void TarExtractor::begin_entry(const TarEntry& e) {
  if (e.path.empty()) return;  // "./": the root itself, which the caller created
  ensure_parents(e.path);
  auto existing = created_.find(e.path);
  if (existing != created_.end()) {
    // A directory implied by an earlier member and listed later is fine; anything else
    // appearing twice is not something PostgreSQL writes.
    if (existing->second == TarEntryType::directory && e.type == TarEntryType::directory) {
      DirFixup& d = dirs_[dir_index_.at(e.path)];
      d.mode = e.mode;
      d.mtime = e.mtime;
      d.from_member = true;
      return;
    }
    throw Error("tar member \"" + e.path + "\" appears twice in the archive",
                "the archive is damaged or was not made by PostgreSQL; refusing to extract it");
  }
  const fs::path path = full(e.path);
  switch (e.type) {
    case TarEntryType::directory:
      make_dir(e.path, e.mode, e.mtime, true);
      return;
    case TarEntryType::file: {
      int fd = ::openat(root_fd_.get(), e.path.c_str(),
                        O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd < 0) throw errno_error("could not create \"" + path.string() + "\"", errno);
      current_fd_.reset(fd);
      current_ = e;
      created_[e.path] = TarEntryType::file;
      return;
    }
    case TarEntryType::symlink: {
      const std::string target = symlink_target_ ? symlink_target_(e) : e.link_target;
      if (::symlinkat(target.c_str(), root_fd_.get(), e.path.c_str()) != 0) {
        throw errno_error("could not create symbolic link \"" + path.string() + "\"", errno);
      }
      created_[e.path] = TarEntryType::symlink;
      return;
    }
    case TarEntryType::hardlink: {
      auto target = created_.find(e.link_target);
      if (target == created_.end() || target->second != TarEntryType::file) {
        throw Error("tar member \"" + e.path + "\" is a hard link to \"" + e.link_target +
                        "\", which is not a file extracted before it",
                    "the archive is damaged or was not made by PostgreSQL; refusing to extract it");
      }
      if (::linkat(root_fd_.get(), e.link_target.c_str(), root_fd_.get(), e.path.c_str(), 0) != 0) {
        throw errno_error("could not create hard link \"" + path.string() + "\"", errno);
      }
      created_[e.path] = TarEntryType::hardlink;
      return;
    }
  }
}

void TarExtractor::entry_data(std::span<const std::byte> data) {
  if (!current_fd_.valid()) return;
  write_all(current_fd_.get(), data, full(current_.path));
  bytes_ += data.size();
}

void TarExtractor::end_entry() {
  if (!current_fd_.valid()) return;
  const fs::path path = full(current_.path);
  const int fd = current_fd_.get();
  // Set-id bits are dropped: nothing in a data directory has them, and a restore running
  // as root must not create set-id files from archive contents.
  if (::fchmod(fd, current_.mode & 0777) != 0) {
    throw errno_error("could not set the mode of \"" + path.string() + "\"", errno);
  }
  const timespec times[2] = {to_timespec(current_.mtime), to_timespec(current_.mtime)};
  if (::futimens(fd, times) != 0) {
    throw errno_error("could not set the time of \"" + path.string() + "\"", errno);
  }
  // Start writeback now so that the fsync pass at the end finds little left to do.
  (void)::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
  current_fd_.reset();
  written_files_.push_back(current_.path);
  ++files_;
}

void TarExtractor::end_archive() {
  for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
    if (!it->from_member) continue;
    const fs::path path = full(it->path);
    if (::fchmodat(root_fd_.get(), it->path.c_str(), it->mode & 0777, 0) != 0) {
      throw errno_error("could not set the mode of \"" + path.string() + "\"", errno);
    }
    const timespec times[2] = {to_timespec(it->mtime), to_timespec(it->mtime)};
    if (::utimensat(root_fd_.get(), it->path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
      throw errno_error("could not set the time of \"" + path.string() + "\"", errno);
    }
  }
}

void TarExtractor::sync() {
  auto sync_at = [&](const std::string& rel, int flags) {
    int fd = ::openat(root_fd_.get(), rel.c_str(), flags | O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) throw errno_error("could not open \"" + full(rel).string() + "\"", errno);
    UniqueFd owned(fd);
    fsync_fd(fd, full(rel));
  };
  for (const auto& f : written_files_) sync_at(f, 0);
  for (const auto& d : dirs_) sync_at(d.path, O_DIRECTORY);
  fsync_fd(root_fd_.get(), root_);
  fsync_dir(root_.parent_path().empty() ? fs::path(".") : root_.parent_path());
}

}  // namespace walvault
