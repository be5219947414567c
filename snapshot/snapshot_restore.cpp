#include "snapshot/snapshot_restore.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <set>

#include "core/error.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/object_store.h"

namespace walvault {
namespace {

struct timespec to_timespec(int64_t ns) {
  struct timespec ts;
  ts.tv_sec = time_t(ns / 1000000000);
  ts.tv_nsec = long(ns % 1000000000);
  if (ts.tv_nsec < 0) {
    ts.tv_nsec += 1000000000;
    ts.tv_sec -= 1;
  }
  return ts;
}

// A relative path of normal components: no "", ".", ".." and no leading '/'.
bool is_clean_relative(const std::string& p) {
  if (p.empty() || p.front() == '/' || p.back() == '/') return false;
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string::npos) end = p.size();
    const std::string_view part(p.data() + start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return p.find('\0') == std::string::npos;
}

std::string parent_of(const std::string& p) {
  const size_t slash = p.rfind('/');
  return slash == std::string::npos ? "." : p.substr(0, slash);
}

// The entries must describe a tree that restore can write without ever leaving the target:
// the root first, then every entry below a directory listed before it, each path once.
void check_entries(const SnapshotInfo& info, const std::vector<SnapshotEntry>& entries) {
  auto bad = [&](const std::string& why) {
    return Error(
        "snapshot " + info.id + " cannot be restored: its entries are invalid (" + why + ")",
        "run walvault verify on the repository; choose an older snapshot");
  };
  if (entries.empty() || entries.front().path != "." || entries.front().type != EntryType::dir) {
    throw bad("the first entry is not the root directory");
  }
  std::set<std::string> dirs{"."};
  std::set<std::string> seen{"."};
  for (size_t i = 1; i < entries.size(); ++i) {
    const SnapshotEntry& e = entries[i];
    if (!is_clean_relative(e.path)) throw bad("path \"" + e.path + "\"");
    if (!dirs.count(parent_of(e.path))) throw bad("\"" + e.path + "\" comes before its directory");
    if (!seen.insert(e.path).second) throw bad("\"" + e.path + "\" is listed twice");
    if (e.type == EntryType::dir) dirs.insert(e.path);
  }
}

void remove_tree(const fs::path& path, bool keep_top) {
  std::error_code ec;
  // Directories restored with a read-only mode would stop the removal: open them up first.
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) {
      fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
    }
  }
  if (keep_top) {
    for (const auto& child : fs::directory_iterator(path, ec)) fs::remove_all(child.path(), ec);
  } else {
    fs::remove_all(path, ec);
  }
}

// Missing parents of a restore path are created 0755 whatever the umask: the service that
// will use the restored directory must be able to reach it.
void make_parents(const fs::path& dir) {
  if (dir.empty() || fs::exists(dir)) return;
  make_parents(dir.parent_path());
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    throw errno_error("could not create directory \"" + dir.string() + "\"", errno);
  }
  ::chmod(dir.c_str(), 0755);
}

class TreeWriter {
 public:
  TreeWriter(const Repository& repo, const PreparedDirRestore& prepared,
             const DirRestoreOptions& options)
      : store_(repo.store_dir()), prepared_(prepared), options_(options) {}

  DirRestoreResult run();

 private:
  fs::path full(const SnapshotEntry& e) const {
    return e.path == "." ? prepared_.plan.path : prepared_.plan.path / e.path;
  }
  void write_file(const SnapshotEntry& e);
  void write_symlink(const SnapshotEntry& e);
  void finish_dir(const SnapshotEntry& e);
  [[noreturn]] void damaged(const SnapshotEntry& e, const std::string& what);

  ObjectStore store_;
  const PreparedDirRestore& prepared_;
  const DirRestoreOptions& options_;
  std::vector<std::byte> chunk_;
  DirRestoreResult result_;
};

void TreeWriter::damaged(const SnapshotEntry& e, const std::string& what) {
  throw Error("could not restore \"" + e.path + "\" of snapshot " + prepared_.plan.snapshot.id +
                  ": " + what,
              "run walvault verify on the repository; choose an older snapshot");
}

void TreeWriter::write_file(const SnapshotEntry& e) {
  const fs::path path = full(e);
  UniqueFd fd = open_or_throw(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW);
  Sha256 whole;
  for (const auto& c : e.chunks) {
    try {
      store_.get(c.sha256, chunk_);
    } catch (const Error& err) {
      damaged(e, err.what());
    }
    if (chunk_.size() != c.bytes) damaged(e, "object " + c.sha256 + " has an unexpected size");
    whole.update(chunk_);
    write_all(fd.get(), chunk_, path);
  }
  if (whole.hex_digest() != e.sha256) damaged(e, "its content does not match its SHA-256");
  if (options_.restore_owners && ::fchown(fd.get(), e.uid, e.gid) != 0) {
    throw errno_error("could not change the owner of \"" + path.string() + "\"", errno);
  }
  // After chown, which clears setuid/setgid.
  if (::fchmod(fd.get(), e.mode) != 0) {
    throw errno_error("could not set the mode of \"" + path.string() + "\"", errno);
  }
  const struct timespec times[2] = {{0, UTIME_NOW}, to_timespec(e.mtime_ns)};
  if (::futimens(fd.get(), times) != 0) {
    throw errno_error("could not set the mtime of \"" + path.string() + "\"", errno);
  }
  ++result_.files;
  result_.bytes += e.size;
  if (e.inconsistent) result_.inconsistent.push_back(e.path);
}

void TreeWriter::write_symlink(const SnapshotEntry& e) {
  const fs::path path = full(e);
  if (::symlink(e.link_target.c_str(), path.c_str()) != 0) {
    throw errno_error("could not create symlink \"" + path.string() + "\"", errno);
  }
  if (options_.restore_owners &&
      ::fchownat(AT_FDCWD, path.c_str(), e.uid, e.gid, AT_SYMLINK_NOFOLLOW) != 0) {
    throw errno_error("could not change the owner of \"" + path.string() + "\"", errno);
  }
  const struct timespec times[2] = {{0, UTIME_NOW}, to_timespec(e.mtime_ns)};
  if (::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
    throw errno_error("could not set the mtime of \"" + path.string() + "\"", errno);
  }
  ++result_.symlinks;
}

void TreeWriter::finish_dir(const SnapshotEntry& e) {
  const fs::path path = full(e);
  if (options_.restore_owners && ::chown(path.c_str(), e.uid, e.gid) != 0) {
    throw errno_error("could not change the owner of \"" + path.string() + "\"", errno);
  }
  if (::chmod(path.c_str(), e.mode) != 0) {
    throw errno_error("could not set the mode of \"" + path.string() + "\"", errno);
  }
  const struct timespec times[2] = {{0, UTIME_NOW}, to_timespec(e.mtime_ns)};
  if (::utimensat(AT_FDCWD, path.c_str(), times, 0) != 0) {
    throw errno_error("could not set the mtime of \"" + path.string() + "\"", errno);
  }
  ++result_.dirs;
}

DirRestoreResult TreeWriter::run() {
  const fs::path& root = prepared_.plan.path;
  if (!prepared_.path_existed) {
    make_parents(root.parent_path());
    if (::mkdir(root.c_str(), kDirMode) != 0) {
      throw errno_error("could not create \"" + root.string() + "\"", errno);
    }
  }
  try {
    for (size_t i = 1; i < prepared_.entries.size(); ++i) {
      const SnapshotEntry& e = prepared_.entries[i];
      switch (e.type) {
        case EntryType::dir:
          if (::mkdir(full(e).c_str(), kDirMode) != 0) {
            throw errno_error("could not create \"" + full(e).string() + "\"", errno);
          }
          break;
        case EntryType::file:
          write_file(e);
          break;
        case EntryType::symlink:
          write_symlink(e);
          break;
      }
    }
    // Directories last, children before parents: their modes may forbid writing into them
    // and every entry created inside changed their mtime.
    for (size_t i = prepared_.entries.size(); i-- > 0;) {
      if (prepared_.entries[i].type == EntryType::dir) finish_dir(prepared_.entries[i]);
    }
    // One syncfs for the whole tree instead of an fsync per file.
    UniqueFd fd = open_or_throw(root, O_RDONLY | O_DIRECTORY);
    if (::syncfs(fd.get()) != 0) {
      throw errno_error("could not sync the file system of \"" + root.string() + "\"", errno);
    }
    fsync_dir(root.parent_path());
  } catch (...) {
    remove_tree(root, prepared_.path_existed);
    throw;
  }
  return result_;
}

}  // namespace

DirRestoreRequest parse_dir_option(const std::string& text, const std::string& option) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 >= text.size()) {
    throw usage_error("invalid " + option + " \"" + text + "\"", "write " + option + " NAME=PATH");
  }
  DirRestoreRequest r;
  r.name = text.substr(0, eq);
  if (!is_valid_snapshot_name(r.name)) {
    throw usage_error("invalid snapshot name \"" + r.name + "\" in " + option,
                      "a name has 1 to 64 letters, digits, '_', '.' or '-' and does not start "
                      "with '.' or '-'");
  }
  r.path = fs::absolute(text.substr(eq + 1)).lexically_normal();
  if (r.path.has_filename() == false && r.path != r.path.root_path()) {
    r.path = r.path.parent_path();  // "/srv/data/" -> "/srv/data"
  }
  return r;
}

std::string format_duration_us(int64_t us) {
  const bool negative = us < 0;
  uint64_t s = uint64_t(negative ? -us : us) / 1000000;
  std::string out;
  if (s >= 86400) {
    out = std::to_string(s / 86400) + " d " + std::to_string(s % 86400 / 3600) + " h";
  } else if (s >= 3600) {
    out = std::to_string(s / 3600) + " h " + std::to_string(s % 3600 / 60) + " min";
  } else if (s >= 60) {
    out = std::to_string(s / 60) + " min " + std::to_string(s % 60) + " s";
  } else {
    out = std::to_string(s) + " s";
  }
  return negative ? "-" + out : out;
}

std::vector<PlannedDirRestore> plan_dir_restores(const std::vector<SnapshotInfo>& snapshots,
                                                 const std::vector<DirRestoreRequest>& requests,
                                                 std::optional<Timestamp> target) {
  std::vector<PlannedDirRestore> out;
  std::set<std::string> names, paths;
  for (const auto& r : requests) {
    if (!names.insert(r.name).second) {
      throw usage_error("snapshot name \"" + r.name + "\" is given twice");
    }
    if (!paths.insert(r.path.string()).second) {
      throw usage_error("\"" + r.path.string() + "\" is given twice as a restore path");
    }
    auto chosen = newest_snapshot_at_or_before(snapshots, r.name, target);
    if (!chosen) {
      auto any = newest_snapshot_at_or_before(snapshots, r.name, std::nullopt);
      if (!any) {
        std::set<std::string> have;
        for (const auto& s : snapshots) have.insert(s.name);
        std::string list;
        for (const auto& n : have) list += (list.empty() ? "" : ", ") + n;
        throw unreachable_error("the repository has no snapshot named \"" + r.name + "\"",
                                have.empty()
                                    ? "take one with walvault snapshot --dir " + r.name + "=PATH"
                                    : "its snapshots are named: " + list);
      }
      const SnapshotInfo* oldest = nullptr;
      for (const auto& s : snapshots) {
        if (s.name == r.name && (!oldest || s.time < oldest->time)) oldest = &s;
      }
      throw unreachable_error(
          "no snapshot of \"" + r.name + "\" was taken at or before " + format_iso8601_utc(*target),
          "its oldest snapshot is " + oldest->id + " (" + format_iso8601_utc(oldest->time) +
              "); choose a later target, or restore without " + r.name);
    }
    PlannedDirRestore p;
    p.snapshot = std::move(*chosen);
    p.path = r.path;
    if (target) p.before_target_us = target->unix_us - p.snapshot.time.unix_us;
    out.push_back(std::move(p));
  }
  // One restore path inside another would mix two trees.
  for (const auto& a : out) {
    for (const auto& b : out) {
      if (&a == &b) continue;
      const std::string pa = a.path.string() + "/";
      if (b.path.string().starts_with(pa)) {
        throw usage_error("restore path \"" + b.path.string() + "\" is inside \"" +
                          a.path.string() + "\"");
      }
    }
  }
  return out;
}

std::string describe(const PlannedDirRestore& p) {
  std::string out = "snapshot " + p.snapshot.id + " (" + format_iso8601_utc(p.snapshot.time);
  if (p.before_target_us) {
    out += ", " + format_duration_us(*p.before_target_us) + " before the target";
  } else {
    out += ", the newest";
  }
  return out + ")";
}

void check_dir_restore_target(const fs::path& path) {
  std::error_code ec;
  const auto st = fs::symlink_status(path, ec);
  if (!ec && st.type() != fs::file_type::not_found) {
    if (st.type() != fs::file_type::directory) {
      throw Error("restore path \"" + path.string() + "\" exists and is not a directory",
                  "give an absent path or an empty directory");
    }
    if (!is_absent_or_empty_dir(path)) {
      throw Error("restore path \"" + path.string() + "\" is not empty",
                  "walvault restores into an absent path or an empty directory only; move the "
                  "current contents aside first");
    }
  }
}

PreparedDirRestore prepare_dir_restore(const Repository& repo, const PlannedDirRestore& plan) {
  check_dir_restore_target(plan.path);
  PreparedDirRestore p;
  p.plan = plan;
  p.path_existed = fs::exists(fs::symlink_status(plan.path));
  p.entries = load_snapshot_entries(repo, plan.snapshot);
  check_entries(plan.snapshot, p.entries);
  // Each object once; the first file that uses it names it in a message.
  ObjectStore store(repo.store_dir());
  std::map<std::string, const SnapshotEntry*> objects;
  for (const auto& e : p.entries) {
    for (const auto& c : e.chunks) objects.emplace(c.sha256, &e);
  }
  std::vector<std::string> problems;
  for (const auto& [sha, entry] : objects) {
    const ObjectCheck c = store.check(sha);
    if (!c.ok) {
      problems.push_back("\"" + entry->path + "\" (object " + store.object_path(sha).string() +
                         " is " + c.problem + ")");
    }
  }
  if (!problems.empty()) {
    std::string more = problems.size() > 1 ? " and " + std::to_string(problems.size() - 1) + " more"
                                           : std::string();
    throw Error("snapshot " + plan.snapshot.id + " cannot be restored: " + problems.front() + more,
                "nothing was written; run walvault verify --repo " + repo.root().string() +
                    " for the full list, or choose an earlier target");
  }
  return p;
}

DirRestoreResult restore_dir(const Repository& repo, const PreparedDirRestore& prepared,
                             const DirRestoreOptions& options) {
  TreeWriter writer(repo, prepared, options);
  DirRestoreResult r = writer.run();
  for (const auto& path : r.inconsistent) {
    log::warning("\"" + (prepared.plan.path / path).string() + "\" was restored from snapshot " +
                 prepared.plan.snapshot.id +
                 ", which recorded it as inconsistent (it kept changing while read)");
  }
  return r;
}

void remove_restored_dir(const PreparedDirRestore& prepared) {
  remove_tree(prepared.plan.path, prepared.path_existed);
}

}  // namespace walvault

namespace walvault {

DirRestoreSet::DirRestoreSet(const Repository& repo, const std::vector<DirRestoreRequest>& requests,
                             std::optional<Timestamp> target)
    : repo_(repo) {
  if (requests.empty()) return;
  std::vector<std::string> problems;
  const std::vector<SnapshotInfo> all = load_snapshots(repo, &problems);
  for (const auto& p : problems) log::warning(p);
  plans_ = plan_dir_restores(all, requests, target);
}

DirRestoreSet::DirRestoreSet(const Repository& repo, std::vector<PlannedDirRestore> plans)
    : repo_(repo), plans_(std::move(plans)) {}

Json DirRestoreSet::to_json() const {
  Json out = Json::array();
  for (const auto& p : plans_) {
    Json j;
    j["name"] = p.snapshot.name;
    j["path"] = p.path.string();
    j["snapshot"] = p.snapshot.id;
    j["time"] = format_iso8601_utc(p.snapshot.time);
    j["before_target_seconds"] =
        p.before_target_us ? Json(double(*p.before_target_us) / 1e6) : Json(nullptr);
    j["files"] = p.snapshot.files;
    j["bytes"] = p.snapshot.bytes;
    j["inconsistent"] = p.snapshot.inconsistent.size();
    out.push_back(std::move(j));
  }
  return out;
}

void DirRestoreSet::check_targets() const {
  for (const auto& p : plans_) check_dir_restore_target(p.path);
}

std::string DirRestoreSet::to_text(const std::string& prefix) const {
  std::string out;
  for (const auto& p : plans_) {
    out += prefix + p.snapshot.name + " -> " + p.path.string() + ": " + describe(p) + ", " +
           std::to_string(p.snapshot.files) + " files, " + std::to_string(p.snapshot.bytes) +
           " bytes";
    if (!p.snapshot.inconsistent.empty()) {
      out += ", " + std::to_string(p.snapshot.inconsistent.size()) + " recorded inconsistent";
    }
    out += "\n";
  }
  return out;
}

void DirRestoreSet::prepare() {
  if (prepared_.size() == plans_.size()) return;
  prepared_.clear();
  for (const auto& p : plans_) prepared_.push_back(prepare_dir_restore(repo_, p));
}

std::vector<DirRestoreResult> DirRestoreSet::restore(const DirRestoreOptions& options) {
  prepare();
  std::vector<DirRestoreResult> results;
  try {
    for (; restored_ < prepared_.size(); ++restored_) {
      results.push_back(restore_dir(repo_, prepared_[restored_], options));
    }
  } catch (...) {
    undo();
    throw;
  }
  return results;
}

void DirRestoreSet::undo() {
  for (size_t i = 0; i < restored_; ++i) remove_restored_dir(prepared_[i]);
  restored_ = 0;
}

}  // namespace walvault
