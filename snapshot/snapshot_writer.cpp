#include "snapshot/snapshot_writer.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <thread>

#include "core/error.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/object_store.h"
#include "core/repo_lock.h"
#include "snapshot/snapshot_restore.h"

namespace walvault {
namespace {

int64_t stat_mtime_ns(const struct stat& st) {
  return int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}
int64_t stat_ctime_ns(const struct stat& st) {
  return int64_t(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
}
int64_t realtime_ns() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// What must not change while a file is read.
bool same_version(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size &&
         stat_mtime_ns(a) == stat_mtime_ns(b) && stat_ctime_ns(a) == stat_ctime_ns(b);
}

std::string join_rel(const std::string& parent, const std::string& name) {
  return parent == "." ? name : parent + "/" + name;
}

// Closes a DIR* (and with it the fd it was opened from).
struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};

// One file's content as read once.
struct FileRead {
  struct stat before {};
  struct stat after {};
  uint64_t bytes = 0;
  std::string sha256;
  std::vector<ChunkRef> chunks;
  int64_t read_start_ns = 0;
  int64_t read_end_ns = 0;
};

class SnapshotWriter {
 public:
  SnapshotWriter(const Repository& repo, const SnapshotRequest& request,
                 const SnapshotOptions& options)
      : repo_(repo),
        request_(request),
        options_(options),
        store_(repo.store_dir()),
        buffer_(options.chunker.max_bytes),
        owner_(repository_owner_for_writes(repo)) {
    if (owner_) store_.set_owner(owner_->uid, owner_->gid);
  }

  SnapshotInfo run();

 private:
  enum class ReadOutcome { ok, vanished };

  void claim_id();
  void check_stop() const {
    if (options_.stop_requested && options_.stop_requested()) {
      throw Error("snapshot of " + request_.name + " interrupted; nothing of it was kept");
    }
  }
  void walk(int dirfd, const std::string& rel);
  void add_directory(int parent_fd, const std::string& name, const std::string& rel);
  void add_symlink(int dirfd, const std::string& name, const std::string& rel,
                   const struct stat& st);
  void add_file(int dirfd, const std::string& name, const std::string& rel);
  ReadOutcome read_file_versioned(const std::function<int()>& open_file, const std::string& rel,
                                  SnapshotEntry& entry, FileRead& last);
  void read_content(int fd, const std::string& rel, FileRead& out);
  bool is_racy(const FileRead& r) const;
  void recheck_racy_files();
  void fill_owner(SnapshotEntry& e, const struct stat& st);
  const std::string& user_name(uid_t uid);
  const std::string& group_name(gid_t gid);

  const Repository& repo_;
  const SnapshotRequest& request_;
  const SnapshotOptions& options_;
  ObjectStore store_;
  std::vector<std::byte> buffer_;
  SnapshotInfo info_;
  std::vector<SnapshotEntry> entries_;
  std::map<std::string, uint64_t> used_objects_;  // sha256 -> stored size
  std::map<uid_t, std::string> users_;
  std::map<gid_t, std::string> groups_;
  std::vector<size_t> racy_;  // indexes into entries_
  std::optional<RepoOwner> owner_;
  struct stat repo_stat_ {};
  bool repo_stat_ok_ = false;
};

const std::string& SnapshotWriter::user_name(uid_t uid) {
  auto it = users_.find(uid);
  if (it != users_.end()) return it->second;
  struct passwd pw, *result = nullptr;
  std::vector<char> buf(16384);
  std::string name;
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &result) == 0 && result) name = pw.pw_name;
  return users_.emplace(uid, name).first->second;
}

const std::string& SnapshotWriter::group_name(gid_t gid) {
  auto it = groups_.find(gid);
  if (it != groups_.end()) return it->second;
  struct group gr, *result = nullptr;
  std::vector<char> buf(16384);
  std::string name;
  if (::getgrgid_r(gid, &gr, buf.data(), buf.size(), &result) == 0 && result) name = gr.gr_name;
  return groups_.emplace(gid, name).first->second;
}

void SnapshotWriter::fill_owner(SnapshotEntry& e, const struct stat& st) {
  e.mode = st.st_mode & 07777;
  e.uid = st.st_uid;
  e.gid = st.st_gid;
  e.user = user_name(st.st_uid);
  e.group = group_name(st.st_gid);
  e.mtime_ns = stat_mtime_ns(st);
}

void SnapshotWriter::claim_id() {
  if (!fs::exists(repo_.snapshots_dir())) {
    make_dirs(repo_.snapshots_dir());
    if (owner_ && ::chown(repo_.snapshots_dir().c_str(), owner_->uid, owner_->gid) != 0) {
      throw errno_error("could not change the owner of \"" + repo_.snapshots_dir().string() + "\"",
                        errno);
    }
  }
  const std::string base = format_compact_utc(info_.start_time) + "-" + request_.name;
  for (int n = 1;; ++n) {
    const std::string id = n == 1 ? base : base + "-" + std::to_string(n);
    const fs::path dir = snapshot_dir(repo_, id);
    if (::mkdir(dir.c_str(), kDirMode) == 0) {
      if (owner_ && ::chown(dir.c_str(), owner_->uid, owner_->gid) != 0) {
        throw errno_error("could not change the owner of \"" + dir.string() + "\"", errno);
      }
      fsync_dir(repo_.snapshots_dir());
      info_.id = id;
      return;
    }
    if (errno != EEXIST) throw errno_error("could not create \"" + dir.string() + "\"", errno);
  }
}

void SnapshotWriter::read_content(int fd, const std::string& rel, FileRead& out) {
  const ChunkerParams& params = options_.chunker;
  Sha256 whole;
  size_t filled = 0;
  bool eof = false;
  out.bytes = 0;
  out.chunks.clear();
  for (;;) {
    while (!eof && filled < buffer_.size()) {
      ssize_t n = ::read(fd, buffer_.data() + filled, buffer_.size() - filled);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw errno_error("could not read \"" + (request_.source / rel).string() + "\"", errno);
      }
      if (n == 0) eof = true;
      filled += size_t(n);
    }
    if (filled == 0) break;
    check_stop();
    const std::span<const std::byte> data(buffer_.data(), filled);
    const size_t cut = find_chunk_cut(data, params);
    const std::span<const std::byte> chunk = data.first(cut);
    whole.update(chunk);
    const PutResult put = store_.put(chunk);
    if (put.added) {
      ++info_.new_objects;
      info_.stored_bytes += put.stored_bytes;
    }
    used_objects_.emplace(put.sha256, put.stored_bytes);
    out.chunks.push_back({put.sha256, cut});
    out.bytes += cut;
    std::memmove(buffer_.data(), buffer_.data() + cut, filled - cut);
    filled -= cut;
  }
  out.sha256 = whole.hex_digest();
}

bool SnapshotWriter::is_racy(const FileRead& r) const {
  if (options_.racy_window_ms <= 0) return false;
  const int64_t window = options_.racy_window_ms * 1000000;
  const int64_t stamp = std::max(stat_mtime_ns(r.after), stat_ctime_ns(r.after));
  return stamp >= r.read_start_ns - window && stamp <= r.read_end_ns + window;
}

SnapshotWriter::ReadOutcome SnapshotWriter::read_file_versioned(
    const std::function<int()>& open_file, const std::string& rel, SnapshotEntry& entry,
    FileRead& last) {
  const fs::path full = request_.source / rel;
  for (int attempt = 1; attempt <= options_.max_read_attempts; ++attempt) {
    const int raw = open_file();
    if (raw < 0) {
      if (errno == ENOENT || errno == ELOOP || errno == ENXIO) return ReadOutcome::vanished;
      throw errno_error("could not open \"" + full.string() + "\"", errno,
                        errno == EACCES ? "run walvault snapshot as a user that can read every "
                                          "file of the directory (root, or its owner)"
                                        : "");
    }
    UniqueFd fd(raw);
    last.read_start_ns = realtime_ns();
    if (::fstat(fd.get(), &last.before) != 0) {
      throw errno_error("could not stat \"" + full.string() + "\"", errno);
    }
    if (!S_ISREG(last.before.st_mode)) return ReadOutcome::vanished;
    read_content(fd.get(), rel, last);
    if (options_.after_read) options_.after_read(rel, attempt);
    if (::fstat(fd.get(), &last.after) != 0) {
      throw errno_error("could not stat \"" + full.string() + "\"", errno);
    }
    last.read_end_ns = realtime_ns();
    entry.inconsistent =
        !(same_version(last.before, last.after) && last.bytes == uint64_t(last.after.st_size));
    if (!entry.inconsistent) break;
    log::debug("\"" + full.string() + "\" changed while it was read (attempt " +
               std::to_string(attempt) + "), reading it again");
  }
  fill_owner(entry, last.after);
  entry.size = last.bytes;
  entry.sha256 = last.sha256;
  entry.chunks = last.chunks;
  return ReadOutcome::ok;
}

void SnapshotWriter::add_file(int dirfd, const std::string& name, const std::string& rel) {
  SnapshotEntry e;
  e.path = rel;
  e.type = EntryType::file;
  FileRead last;
  auto open_file = [&] {
    return ::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  };
  if (read_file_versioned(open_file, rel, e, last) == ReadOutcome::vanished) {
    log::debug("\"" + (request_.source / rel).string() + "\" disappeared while being read");
    return;
  }
  if (!e.inconsistent && is_racy(last)) racy_.push_back(entries_.size());
  entries_.push_back(std::move(e));
}

void SnapshotWriter::add_symlink(int dirfd, const std::string& name, const std::string& rel,
                                 const struct stat& st) {
  std::string target(size_t(st.st_size > 0 ? st.st_size : 0) + 1, '\0');
  for (;;) {
    ssize_t n = ::readlinkat(dirfd, name.c_str(), target.data(), target.size());
    if (n < 0) {
      if (errno == ENOENT || errno == EINVAL) return;  // gone, or no longer a symlink
      throw errno_error("could not read symlink \"" + (request_.source / rel).string() + "\"",
                        errno);
    }
    if (size_t(n) < target.size()) {
      target.resize(size_t(n));
      break;
    }
    target.resize(target.size() * 2);
  }
  SnapshotEntry e;
  e.path = rel;
  e.type = EntryType::symlink;
  fill_owner(e, st);
  e.link_target = std::move(target);
  entries_.push_back(std::move(e));
}

void SnapshotWriter::add_directory(int parent_fd, const std::string& name, const std::string& rel) {
  const int raw =
      ::openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (raw < 0) {
    if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) return;
    throw errno_error("could not open directory \"" + (request_.source / rel).string() + "\"",
                      errno);
  }
  UniqueFd fd(raw);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    throw errno_error("could not stat \"" + (request_.source / rel).string() + "\"", errno);
  }
  if (repo_stat_ok_ && st.st_dev == repo_stat_.st_dev && st.st_ino == repo_stat_.st_ino) {
    info_.skipped.push_back({rel, "the repository itself"});
    return;
  }
  SnapshotEntry e;
  e.path = rel;
  e.type = EntryType::dir;
  fill_owner(e, st);
  entries_.push_back(std::move(e));
  walk(fd.get(), rel);
}

void SnapshotWriter::walk(int dirfd, const std::string& rel) {
  const fs::path full = request_.source / rel;
  const int dup_fd = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) throw errno_error("could not duplicate a descriptor", errno);
  std::unique_ptr<DIR, DirCloser> dir(::fdopendir(dup_fd));
  if (!dir) {
    const int e = errno;
    ::close(dup_fd);
    throw errno_error("could not list \"" + full.string() + "\"", e);
  }
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    const struct dirent* d = ::readdir(dir.get());
    if (!d) {
      if (errno != 0) throw errno_error("could not list \"" + full.string() + "\"", errno);
      break;
    }
    const std::string name = d->d_name;
    if (name == "." || name == "..") continue;
    names.push_back(name);
  }
  dir.reset();
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    check_stop();
    const std::string child = join_rel(rel, name);
    if (snapshot_path_excluded(request_.excludes, child)) continue;
    struct stat st;
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;  // removed since it was listed
      throw errno_error("could not stat \"" + (request_.source / child).string() + "\"", errno);
    }
    if (S_ISDIR(st.st_mode)) {
      add_directory(dirfd, name, child);
    } else if (S_ISREG(st.st_mode)) {
      add_file(dirfd, name, child);
    } else if (S_ISLNK(st.st_mode)) {
      add_symlink(dirfd, name, child, st);
    } else {
      const char* what = S_ISSOCK(st.st_mode)   ? "socket"
                         : S_ISFIFO(st.st_mode) ? "fifo"
                         : S_ISCHR(st.st_mode)  ? "character device"
                         : S_ISBLK(st.st_mode)  ? "block device"
                                                : "unknown file type";
      info_.skipped.push_back({child, what});
      log::warning("skipping \"" + (request_.source / child).string() + "\": " + what);
    }
  }
}

void SnapshotWriter::recheck_racy_files() {
  // Up to three rounds: a file changed since its read is read again (and may be racy again).
  for (int round = 0; round < 3 && !racy_.empty(); ++round) {
    int64_t newest = 0;
    for (size_t i : racy_) newest = std::max(newest, entries_[i].mtime_ns);
    const int64_t wait_until = std::min(newest, realtime_ns()) + options_.racy_window_ms * 1000000;
    if (const int64_t now = realtime_ns(); now < wait_until) {
      std::this_thread::sleep_for(std::chrono::nanoseconds(wait_until - now));
    }
    if (options_.before_recheck) options_.before_recheck();
    std::vector<size_t> again;
    for (size_t i : racy_) {
      SnapshotEntry& e = entries_[i];
      const fs::path full = request_.source / e.path;
      auto open_file = [&] {
        return ::open(full.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
      };
      // Compare what the file holds now with what was recorded: same content, same file.
      SnapshotEntry now_entry = e;
      FileRead now;
      if (read_file_versioned(open_file, e.path, now_entry, now) == ReadOutcome::vanished) {
        continue;  // deleted meanwhile: the recorded version was a real one
      }
      if (now_entry.sha256 == e.sha256 && now_entry.size == e.size && !now_entry.inconsistent) {
        continue;
      }
      log::debug("\"" + full.string() + "\" changed just after it was read, recording it again");
      e = std::move(now_entry);
      if (!e.inconsistent && is_racy(now)) again.push_back(i);
    }
    racy_ = std::move(again);
  }
  // Still changing after every round: say so rather than pretend it is one version.
  for (size_t i : racy_) entries_[i].inconsistent = true;
}

SnapshotInfo SnapshotWriter::run() {
  info_.name = request_.name;
  info_.source = request_.source.string();
  info_.excludes = request_.excludes;
  info_.backup_id = request_.backup_id;
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0) info_.host = host;
  repo_stat_ok_ = ::stat(repo_.root().c_str(), &repo_stat_) == 0;

  const int raw = ::open(request_.source.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (raw < 0) {
    throw errno_error("cannot snapshot \"" + request_.source.string() + "\"", errno,
                      errno == ENOTDIR ? "--dir NAME=PATH takes a directory"
                                       : "check the PATH of --dir NAME=PATH");
  }
  UniqueFd root(raw);
  info_.start_time = now();
  claim_id();
  try {
    struct stat st;
    if (::fstat(root.get(), &st) != 0) {
      throw errno_error("could not stat \"" + request_.source.string() + "\"", errno);
    }
    SnapshotEntry top;
    top.path = ".";
    top.type = EntryType::dir;
    fill_owner(top, st);
    entries_.push_back(std::move(top));
    walk(root.get(), ".");
    recheck_racy_files();

    for (const auto& e : entries_) {
      switch (e.type) {
        case EntryType::dir:
          ++info_.dirs;
          break;
        case EntryType::symlink:
          ++info_.symlinks;
          break;
        case EntryType::file:
          ++info_.files;
          info_.bytes += e.size;
          if (e.inconsistent) info_.inconsistent.push_back(e.path);
          break;
      }
    }
    // Objects first found by an attempt that was later discarded are still counted as added:
    // they are in the store. Only the ones the entries use count as used.
    std::map<std::string, uint64_t> used;
    for (const auto& e : entries_) {
      for (const auto& c : e.chunks) {
        auto it = used_objects_.find(c.sha256);
        used.emplace(c.sha256, it == used_objects_.end() ? 0 : it->second);
      }
    }
    info_.objects = used.size();
    for (const auto& [sha, size] : used) info_.referenced_bytes += size;

    store_.sync();  // every object the entries name is durable before they are committed
    save_snapshot_entries(repo_, info_, entries_, owner_);
    info_.time = now();
    const fs::path entries_path = snapshot_dir(repo_, info_.id) / info_.entries_file;
    info_.stored_bytes += fs::file_size(entries_path);
    save_snapshot_info(repo_, info_, owner_);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(snapshot_dir(repo_, info_.id), ec);
    throw;
  }
  for (const auto& p : info_.inconsistent) {
    log::warning("\"" + (request_.source / p).string() +
                 "\" kept changing while it was read; snapshot " + info_.id +
                 " records it as inconsistent (its content may mix two versions)");
  }
  return info_;
}

}  // namespace

bool snapshot_path_excluded(const std::vector<std::string>& excludes, const std::string& rel_path) {
  const size_t slash = rel_path.rfind('/');
  const std::string base = slash == std::string::npos ? rel_path : rel_path.substr(slash + 1);
  for (const auto& pattern : excludes) {
    if (pattern.find('/') == std::string::npos) {
      if (::fnmatch(pattern.c_str(), base.c_str(), 0) == 0) return true;
    } else {
      const char* p = pattern.c_str();
      while (*p == '/') ++p;
      if (::fnmatch(p, rel_path.c_str(), FNM_PATHNAME) == 0) return true;
    }
  }
  return false;
}

std::vector<SnapshotRequest> snapshot_requests(const std::vector<std::string>& dirs,
                                               const std::vector<std::string>& excludes) {
  for (const auto& g : excludes) {
    if (g.empty()) throw usage_error("--exclude needs a pattern");
  }
  std::vector<SnapshotRequest> out;
  for (const auto& item : dirs) {
    const DirRestoreRequest d = parse_dir_option(item, "--dir");
    for (const auto& r : out) {
      if (r.name == d.name) throw usage_error("snapshot name \"" + d.name + "\" is given twice");
    }
    struct stat st;
    if (::stat(d.path.c_str(), &st) != 0) {
      throw errno_error("cannot snapshot \"" + d.path.string() + "\"", errno,
                        "check the PATH of --dir " + d.name + "=PATH");
    }
    if (!S_ISDIR(st.st_mode)) {
      throw Error("cannot snapshot \"" + d.path.string() + "\": not a directory",
                  "--dir NAME=PATH takes a directory");
    }
    out.push_back({d.name, d.path, excludes, ""});
  }
  return out;
}

SnapshotInfo take_snapshot(const Repository& repo, const SnapshotRequest& request,
                           const SnapshotOptions& options) {
  if (!is_valid_snapshot_name(request.name)) {
    throw usage_error("invalid snapshot name \"" + request.name + "\"",
                      "a name has 1 to 64 letters, digits, '_', '.' or '-' and does not start "
                      "with '.' or '-'");
  }
  // Held until snapshot.json is committed: expire must not judge an object unused while this
  // snapshot may refer to it (core/repo_lock.h, kStoreLockName).
  const RepoLock store_lock =
      RepoLock::acquire_shared(repo, kStoreLockName, "walvault expire", options.stop_requested);
  SnapshotWriter writer(repo, request, options);
  return writer.run();
}

std::vector<std::string> take_backup_snapshots(const Repository& repo,
                                               const std::vector<SnapshotRequest>& requests,
                                               const std::string& backup_id,
                                               const SnapshotOptions& options) {
  std::vector<std::string> ids;
  for (SnapshotRequest r : requests) {
    r.backup_id = backup_id;
    const SnapshotInfo info = take_snapshot(repo, r, options);
    log::info(describe(info));
    ids.push_back(info.id);
  }
  return ids;
}

std::string describe(const SnapshotInfo& s) {
  std::string out =
      "snapshot " + s.id + " of " + s.name + " (" + s.source + "): " + std::to_string(s.files) +
      " files, " + std::to_string(s.dirs) + " dirs, " + std::to_string(s.symlinks) + " symlinks, " +
      std::to_string(s.bytes) + " bytes; " + std::to_string(s.new_objects) + " new of " +
      std::to_string(s.objects) + " objects, " + std::to_string(s.stored_bytes) + " bytes stored";
  if (!s.inconsistent.empty()) {
    out += "; " + std::to_string(s.inconsistent.size()) + " inconsistent";
  }
  if (!s.skipped.empty()) out += "; " + std::to_string(s.skipped.size()) + " skipped";
  return out;
}

}  // namespace walvault
