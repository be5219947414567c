// Reading the retention input from a repository and carrying out a plan (pitr/retention.h).

#include "pitr/retention.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "core/backup_info.h"
#include "core/error.h"
#include "core/log.h"
#include "core/object_store.h"
#include "core/repo_lock.h"
#include "snapshot/snapshot_verify.h"

namespace walvault {
namespace {

// Sum of the sizes of the regular files under path (or of path itself).
uint64_t tree_bytes(const fs::path& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return 0;
  if (!S_ISDIR(st.st_mode)) return S_ISREG(st.st_mode) ? uint64_t(st.st_size) : 0;
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(path, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) total += uint64_t(st.st_size);
  }
  return total;
}

void remove_tree(const fs::path& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) throw Error("could not remove \"" + path.string() + "\": " + ec.message());
}

// Removes a file; false when it was already gone.
bool unlink_file(const fs::path& path) {
  if (::unlink(path.c_str()) == 0) return true;
  if (errno == ENOENT) return false;
  throw errno_error("could not remove \"" + path.string() + "\"", errno);
}

fs::path trash_dir(const Repository& repo) {
  return repo.root() / "trash";
}

// REPO/trash, given to the repository's owner when root creates it there (as the store does).
void ensure_trash(const Repository& repo) {
  const fs::path dir = trash_dir(repo);
  if (fs::exists(dir)) return;
  make_dirs(dir);
  if (auto owner = repository_owner_for_writes(repo)) {
    if (::chown(dir.c_str(), owner->uid, owner->gid) != 0) {
      throw errno_error("could not change the owner of \"" + dir.string() + "\"", errno);
    }
  }
}

// Moves dir into REPO/trash (the moment it stops being part of the repository), then removes
// it there. A crash in between leaves it in trash/, which the next expire empties.
void remove_through_trash(const Repository& repo, const fs::path& dir, const std::string& name) {
  ensure_trash(repo);
  const fs::path dst = trash_dir(repo) / name;
  if (fs::exists(dst)) remove_tree(dst);
  rename_durable(dir, dst);
  remove_tree(dst);
  fsync_dir(trash_dir(repo));
}

std::string wal_name(const WalFileEntry& f) {
  return f.path.filename().string();
}

}  // namespace

std::string format_bytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  }
  return buf;
}

RetentionInput read_retention_input(const Repository& repo) {
  RetentionInput in;
  in.segment_size_bytes = repo.segment_size();

  // Backups: locks first (see the header), then backup.json.
  std::vector<std::string> dirs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(repo.backups_dir(), ec)) {
    if (!e.is_directory()) continue;
    const std::string id = e.path().filename().string();
    dirs.push_back(id);
    if (backup_in_progress(repo, id)) in.backups_in_progress.insert(id);
  }
  in.backups = load_backups(repo);
  std::set<std::string> loaded;
  for (const auto& b : in.backups) loaded.insert(b.id);
  for (const auto& id : dirs) {
    if (loaded.count(id)) continue;
    UnreadableBackupDir u;
    u.id = id;
    u.has_backup_json = fs::exists(backup_dir(repo, id) / "backup.json");
    u.problem = u.has_backup_json ? "its backup.json cannot be read" : "it has no backup.json";
    in.unreadable_backups.push_back(std::move(u));
  }

  // Timelines: WAL directories, history files, backups.
  std::set<TimelineId> timelines;
  for (TimelineId t : repo.wal_timelines()) {
    timelines.insert(t);
    in.wal[t] = repo.list_wal(t);
  }
  for (const auto& e : fs::directory_iterator(repo.wal_root(), ec)) {
    if (auto t = parse_history_file_name(e.path().filename().string())) timelines.insert(*t);
  }
  for (const auto& b : in.backups) {
    if (b.timeline.value) timelines.insert(b.timeline);
    if (b.stop_timeline.value) timelines.insert(b.stop_timeline);
  }
  for (TimelineId t : timelines) {
    try {
      LoadedHistory h = load_timeline_history(repo, t);
      if (t.value == 1 || h.has_file) {
        in.histories.emplace(t, h.history);
      } else {
        in.unknown_ancestry.insert(t);
      }
    } catch (const Error& e) {
      log::warning(e.what());
      in.unknown_ancestry.insert(t);
    }
    try {
      auto gaps = recorded_gaps(repo, t);
      if (!gaps.empty()) in.recorded_gaps[t] = std::move(gaps);
    } catch (const std::exception& e) {
      // A damaged gaps.json is left alone (and its timeline's gaps are not touched).
      log::warning("wal/" + t.hex() + "/gaps.json cannot be read (" + e.what() +
                   "); it is left as it is");
    }
  }

  in.snapshots = load_snapshots(repo, &in.snapshot_problems);
  return in;
}

ExpireReport run_expire(const Repository& repo, const RetentionPolicy& policy,
                        const ExpireOptions& options) {
  ExpireReport report;
  report.dry_run = options.dry_run;
  std::optional<RepoLock> expire_lock;
  std::optional<RepoLock> store_lock;
  bool snapshot_running = false;
  if (options.dry_run) {
    snapshot_running = lock_held(repo, kStoreLockName);
  } else {
    expire_lock.emplace(RepoLock::acquire(repo, kExpireLockName, "walvault expire"));
    store_lock = RepoLock::try_acquire(repo, kStoreLockName);
    snapshot_running = !store_lock;
  }

  const RetentionInput input = read_retention_input(repo);
  report.plan = plan_retention(input, policy, options.now.value_or(now()));
  const RetentionPlan& plan = report.plan;
  report.notes = plan.notes;
  const bool remove = !options.dry_run;

  // 0. What an interrupted expire left in trash/ (only expire writes there; we hold its lock).
  {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(trash_dir(repo), ec)) {
      const uint64_t bytes = tree_bytes(e.path());
      report.leftovers.push_back({"leftover", "trash/" + e.path().filename().string(), bytes});
      report.leftover_bytes += bytes;
      if (remove) remove_tree(e.path());
    }
    if (remove && !ec && !report.leftovers.empty()) fsync_dir(trash_dir(repo));
  }

  // 1. Backups.
  for (const auto& b : plan.backups) {
    const fs::path dir = backup_dir(repo, b.id);
    if (!fs::exists(dir)) continue;
    // A backup.json-less or dead backup could only be one that started since we looked if
    // its writer took the lock meanwhile: look again.
    if (b.status != BackupStatus::complete && backup_in_progress(repo, b.id)) {
      report.notes.push_back("backup " + b.id + " is in progress after all: left alone");
      continue;
    }
    report.backup_bytes += tree_bytes(dir);
    if (remove) {
      remove_through_trash(repo, dir, "backup-" + b.id);
      // The lock file of a backup that died (nobody holds it: just checked).
      if (b.status != BackupStatus::complete) {
        (void)unlink_file(lock_file_path(repo, backup_lock_name(b.id)));
      }
      log::info("removed backup " + b.id);
    }
  }

  // 2. WAL, oldest first, each removal durable before the next.
  for (const auto& w : plan.wal) {
    for (const auto& f : w.files) {
      struct stat st;
      if (::stat(f.path.c_str(), &st) != 0) continue;
      report.wal_bytes += uint64_t(st.st_size);
      ++report.wal_files;
      if (remove && unlink_file(f.path)) fsync_dir(f.path.parent_path());
    }
    if (remove && w.gaps_dropped) {
      const std::optional<Lsn> keep_start =
          w.keep_from ? std::optional<Lsn>(segment_start(
                            segment_of(*w.keep_from, repo.segment_size()), repo.segment_size()))
                      : std::nullopt;
      drop_recorded_gaps(repo, w.timeline, keep_start);
    }
    if (remove && !w.files.empty()) {
      log::info("removed " + std::to_string(w.files.size()) + " WAL files of timeline " +
                std::to_string(w.timeline.value));
    }
  }

  // 3. Snapshots.
  for (const auto& s : plan.snapshots) {
    const fs::path dir = snapshot_dir(repo, s.snapshot.id);
    if (!fs::exists(dir)) continue;
    report.snapshot_bytes += tree_bytes(dir);
    if (remove) {
      remove_through_trash(repo, dir, "snapshot-" + s.snapshot.id);
      log::info("removed snapshot " + s.snapshot.id);
    }
  }

  // 4. Store objects and crash leftovers of snapshot writers: only while none runs.
  if (snapshot_running) {
    report.notes.push_back(
        "a snapshot is being written: store objects are not examined by this run (the next one "
        "removes those no kept snapshot uses)");
  } else if (plan.complete_backups > 0 && plan.expire_objects) {
    std::set<std::string> in_use;
    bool known = true;
    try {
      in_use = objects_in_use(repo, plan.kept_snapshots);
    } catch (const Error& e) {
      known = false;
      report.notes.push_back(std::string("no store object is removed: ") + e.what());
    }
    if (known) {
      ObjectStore store(repo.store_dir());
      std::set<fs::path> touched;
      for (const auto& name : store.list()) {
        if (in_use.count(name)) continue;
        const fs::path path = store.object_path(name);
        ++report.objects;
        report.object_bytes += store.stored_size(name).value_or(0);
        if (remove && unlink_file(path)) touched.insert(path.parent_path());
      }
      // Temporary objects of a snapshot writer that died.
      std::error_code ec;
      for (const auto& sub : fs::directory_iterator(repo.store_dir(), ec)) {
        if (!sub.is_directory()) continue;
        std::error_code ec2;
        for (const auto& e : fs::directory_iterator(sub.path(), ec2)) {
          if (!e.path().filename().string().starts_with(".tmp.")) continue;
          const uint64_t bytes = tree_bytes(e.path());
          report.leftovers.push_back(
              {"leftover",
               "store/" + sub.path().filename().string() + "/" + e.path().filename().string(),
               bytes});
          report.leftover_bytes += bytes;
          if (remove && unlink_file(e.path())) touched.insert(sub.path());
        }
      }
      for (const auto& d : touched) fsync_dir(d);
    }
    // Snapshot directories without snapshot.json: writers that died before committing.
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(repo.snapshots_dir(), ec)) {
      if (!e.is_directory() || fs::exists(e.path() / "snapshot.json")) continue;
      const uint64_t bytes = tree_bytes(e.path());
      report.leftovers.push_back({"leftover", "snapshots/" + e.path().filename().string(), bytes});
      report.leftover_bytes += bytes;
      if (remove) remove_through_trash(repo, e.path(), "snapshot-" + e.path().filename().string());
    }
  }
  if (remove) {
    log::info("expire (" + policy.describe() + ") freed " + format_bytes(report.bytes_freed()));
  }
  return report;
}

Json ExpireReport::to_json() const {
  Json j;
  j["dry_run"] = dry_run;
  j["policy"] = plan.policy.to_json();
  j["now"] = format_iso8601_utc(plan.now);
  j["complete_backups"] = plan.complete_backups;
  j["kept_backups"] = Json::array();
  for (const auto& b : plan.kept_backups) j["kept_backups"].push_back(b.id);
  j["window_start"] = plan.window_start ? Json(format_iso8601_utc(*plan.window_start)) : Json();
  Json removed;
  removed["backups"] = Json::array();
  for (const auto& b : plan.backups) {
    Json jb;
    jb["id"] = b.id;
    jb["status"] = b.has_backup_json ? std::string(to_string(b.status)) : "no backup.json";
    jb["start_time"] = b.start_time ? Json(format_iso8601_utc(*b.start_time)) : Json();
    jb["stop_time"] = b.stop_time ? Json(format_iso8601_utc(*b.stop_time)) : Json();
    jb["reason"] = b.reason;
    removed["backups"].push_back(std::move(jb));
  }
  removed["wal"] = Json::array();
  for (const auto& w : plan.wal) {
    Json jw;
    jw["timeline"] = w.timeline.value;
    jw["keep_from_lsn"] = w.keep_from ? Json(w.keep_from->str()) : Json();
    jw["files"] = Json::array();
    for (const auto& f : w.files) jw["files"].push_back(wal_name(f));
    jw["gaps_dropped"] = w.gaps_dropped;
    removed["wal"].push_back(std::move(jw));
  }
  removed["snapshots"] = Json::array();
  for (const auto& s : plan.snapshots) {
    removed["snapshots"].push_back({{"id", s.snapshot.id},
                                    {"name", s.snapshot.name},
                                    {"time", format_iso8601_utc(s.snapshot.time)},
                                    {"reason", s.reason}});
  }
  removed["objects"] = objects;
  removed["leftovers"] = Json::array();
  for (const auto& l : leftovers) {
    removed["leftovers"].push_back({{"path", l.what}, {"bytes", l.bytes}});
  }
  j["removed"] = std::move(removed);
  j["bytes"] = {{"backups", backup_bytes},     {"wal", wal_bytes},
                {"snapshots", snapshot_bytes}, {"objects", object_bytes},
                {"leftovers", leftover_bytes}, {"total", bytes_freed()}};
  j["wal_files"] = wal_files;
  j["notes"] = notes;
  return j;
}

std::string ExpireReport::to_text() const {
  const std::string verb = dry_run ? "would remove" : "removed";
  std::string out;
  out += "policy " + plan.policy.describe() + ": ";
  if (plan.kept_backups.empty()) {
    out += "no complete backup\n";
  } else {
    out += "keeps " + std::to_string(plan.kept_backups.size()) + " of " +
           std::to_string(plan.complete_backups) + " complete backups (";
    for (size_t i = 0; i < plan.kept_backups.size(); ++i) {
      out += (i ? ", " : "") + plan.kept_backups[i].id;
    }
    out += "); restorable from " + format_iso8601_utc(*plan.window_start) + "\n";
  }
  for (const auto& b : plan.backups) {
    out += verb + " backup " + b.id + ": " + b.reason + "\n";
  }
  for (const auto& w : plan.wal) {
    if (!w.files.empty()) {
      out += verb + " WAL of timeline " + std::to_string(w.timeline.value) + ": " +
             std::to_string(w.files.size()) + " files, " + wal_name(w.files.front());
      if (w.files.size() > 1) out += " .. " + wal_name(w.files.back());
      out += w.keep_from ? " (kept from " + w.keep_from->str() + " on)"
                         : " (no kept backup reaches this timeline)";
      out += "\n";
    }
    if (w.gaps_dropped) {
      out += verb + " " + std::to_string(w.gaps_dropped) + " gap record(s) of timeline " +
             std::to_string(w.timeline.value) + " that lie in removed WAL\n";
    }
  }
  for (const auto& s : plan.snapshots) {
    out += verb + " snapshot " + s.snapshot.id + ": " + s.reason + "\n";
  }
  if (objects) {
    out += verb + " " + std::to_string(objects) + " store objects no kept snapshot uses (" +
           format_bytes(object_bytes) + ")\n";
  }
  for (const auto& l : leftovers) {
    out += verb + " " + l.what + " (left by an interrupted command)\n";
  }
  for (const auto& n : notes) out += "note: " + n + "\n";
  if (bytes_freed() == 0 && plan.empty() && leftovers.empty() && objects == 0) {
    out += "nothing to expire\n";
  } else {
    out += (dry_run ? "would free " : "freed ") + format_bytes(bytes_freed()) + " (backups " +
           format_bytes(backup_bytes) + ", WAL " + format_bytes(wal_bytes) + " in " +
           std::to_string(wal_files) + " files, snapshots " + format_bytes(snapshot_bytes) +
           ", objects " + format_bytes(object_bytes) + ")\n";
  }
  return out;
}

}  // namespace walvault
