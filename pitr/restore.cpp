#include "pitr/restore.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <cerrno>

#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "basebackup/backup_extract.h"
#include "core/error.h"
#include "core/log.h"
#include "pitr/wal_check.h"
#include "pitr/wal_files.h"

namespace walvault {
namespace {

// Removes what a failed restore created: the directory itself when it did not exist, its
// contents when it was empty.
class Cleanup {
 public:
  void watch(const fs::path& dir) {
    std::error_code ec;
    dirs_.push_back({dir, fs::exists(dir, ec)});
  }
  void watch(const fs::path& dir, bool existed) { dirs_.push_back({dir, existed}); }
  void disarm() { armed_ = false; }
  ~Cleanup() {
    if (!armed_) return;
    for (const auto& d : dirs_) {
      std::error_code ec;
      if (!d.existed) {
        fs::remove_all(d.path, ec);
      } else {
        for (const auto& e : fs::directory_iterator(d.path, ec)) fs::remove_all(e.path(), ec);
      }
    }
  }

 private:
  struct Dir {
    fs::path path;
    bool existed;
  };
  std::vector<Dir> dirs_;
  bool armed_ = true;
};

// Two restores into the same directory must not interleave (nor one clean up the other's
// files): the target is created here (0700) and held with flock(2) for the whole restore,
// then checked empty again under the lock.
UniqueFd claim_target_dir(const fs::path& dir, bool& created) {
  created = ::mkdir(dir.c_str(), 0700) == 0;
  if (!created && errno != EEXIST) {
    throw errno_error("could not create target directory \"" + dir.string() + "\"", errno);
  }
  UniqueFd fd = open_or_throw(dir, O_RDONLY | O_DIRECTORY);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    throw usage_error(
        "target directory \"" + dir.string() + "\" is being written by another restore",
        "restore into an absent or empty directory; walvault never overwrites one");
  }
  check_restore_target(dir);
  return fd;
}

std::string span_text(const TimelineSpan& s) {
  std::string out = "timeline " + std::to_string(s.timeline.value);
  if (s.begin.valid()) out += " from " + s.begin.str();
  if (s.end) out += " until " + s.end->str();
  return out;
}

// Every WAL file recovery will read, as PostgreSQL chooses them along the plan's timeline
// path, checked in one forward pass per timeline.
void check_plan_wal(const Repository& repo, const RecoveryPlan& plan) {
  if (plan.wal.end <= plan.wal.start) return;
  const uint64_t seg = repo.segment_size();
  const WalIdentity identity = wal_identity(repo.identity());
  std::map<TimelineId, std::unique_ptr<WalFileChecker>> checkers;
  const uint64_t last = segment_of(Lsn(plan.wal.end.value - 1), seg).value;
  for (uint64_t s = segment_of(plan.wal.start, seg).value; s <= last; ++s) {
    const TimelineId tli = plan.history.timeline_of_segment(SegmentNo(s), seg);
    auto file = find_wal_file(repo, tli, SegmentNo(s));
    if (!file) {
      throw Error("restore refused: WAL file " + wal_file_name(tli, SegmentNo(s), seg) +
                      " that recovery needs is missing from the repository",
                  "run walvault verify on the repository; walvault info shows what is archived");
    }
    auto& checker = checkers[tli];
    if (!checker) {
      std::vector<TimelineId> ancestors;
      for (const auto& span : plan.history.spans()) {
        if (span.timeline < tli) ancestors.push_back(span.timeline);
      }
      checker = std::make_unique<WalFileChecker>(identity, tli, std::move(ancestors));
    }
    WalFileVerdict v = checker->check(*file);
    if (v.kind == WalFileVerdict::Kind::vanished) {
      // A .partial completed meanwhile: check the complete file.
      if (auto done = repo.find_complete_segment(tli, SegmentNo(s))) {
        file = done;
        v = checker->check(*file);
      }
    }
    if (v.kind == WalFileVerdict::Kind::damaged || v.kind == WalFileVerdict::Kind::vanished) {
      throw Error("restore refused: \"" + file->path.string() +
                      "\", WAL that recovery needs, is damaged: " +
                      (v.problem.empty() ? std::string("it vanished while read") : v.problem),
                  "run walvault verify on the repository; choose a target before " +
                      segment_start(SegmentNo(s), seg).str() +
                      " (walvault info shows the window) or restore the file from a copy");
    }
  }
}

}  // namespace

RecoveryPlan plan_restore(Catalog& catalog, const RecoveryTarget& target) {
  // A damaged backup is skipped by the planner; say so, so a restore that falls back to an
  // older backup (and more WAL) does not look like the normal case.
  for (const auto& problem : catalog.backup_problems()) log::warning(problem);
  const fs::path exe = self_executable();
  const fs::path repo = fs::absolute(catalog.repo().root());
  RecoveryPlan plan =
      plan_recovery(catalog.state(), catalog.wal(), target, make_restore_command(exe, repo));
  for (auto& [key, value] : plan.recovery_settings) {
    if (key == "restore_command") value = make_restore_command(exe, repo, plan.history.target());
  }
  return plan;
}

namespace {

// "/srv/ts/" and "/srv/ts/." name the same directory as "/srv/ts".
fs::path normal_dir(const fs::path& p) {
  fs::path n = p.lexically_normal();
  if (!n.has_filename() && n.has_relative_path()) n = n.parent_path();
  return n;
}

}  // namespace

std::map<uint32_t, fs::path> tablespace_targets(const BackupInfo& backup,
                                                const RestoreRequest& request) {
  std::map<uint32_t, fs::path> out;
  for (const auto& [old_path, new_path] : request.tablespace_paths) {
    bool found = false;
    for (const auto& t : backup.tablespaces) {
      if (normal_dir(t.location) != normal_dir(old_path)) continue;
      found = true;
      if (request.tablespace_dirs.contains(t.oid)) {
        throw usage_error("tablespace " + std::to_string(t.oid) + " (\"" + t.location +
                          "\") is given both --tablespace and --tablespace-dir");
      }
      out[t.oid] = new_path;
    }
    if (!found) {
      std::string known;
      for (const auto& t : backup.tablespaces) known += (known.empty() ? "" : ", ") + t.location;
      throw usage_error(
          "backup " + backup.id + " has no tablespace at \"" + old_path.string() + "\"",
          known.empty() ? "the backup has no tablespaces" : "its tablespaces are at: " + known);
    }
  }
  for (const auto& [oid, dir] : request.tablespace_dirs) {
    bool known = false;
    for (const auto& t : backup.tablespaces) known = known || t.oid == oid;
    if (!known) {
      throw usage_error("backup " + backup.id + " has no tablespace with oid " +
                        std::to_string(oid));
    }
    out[oid] = dir;
  }
  for (const auto& t : backup.tablespaces) {
    if (!out.contains(t.oid)) out[t.oid] = fs::path(t.location);
  }
  return out;
}

void check_plan_inputs(const Repository& repo, const RecoveryPlan& plan) {
  // The history files recovery reads (restore_command hands them to PostgreSQL as they are).
  for (const auto& span : plan.history.spans()) {
    if (span.timeline.value <= 1) continue;
    const fs::path path = repo.history_path(span.timeline);
    auto text = read_file_if_exists(path);
    if (!text) continue;  // the planner knew the ancestry otherwise
    try {
      check_timeline_history_file(*text, span.timeline, "\"" + path.string() + "\"");
    } catch (const Error& e) {
      throw Error(std::string("restore refused: ") + e.what(),
                  "run walvault verify on the repository; restore the file from a copy");
    }
  }
  std::exception_ptr wal_error;
  {
    std::jthread wal([&] {
      try {
        check_plan_wal(repo, plan);
      } catch (...) {
        wal_error = std::current_exception();
      }
    });
    verify_backup_files(repo, plan.backup);
  }
  if (wal_error) std::rethrow_exception(wal_error);
}

RestoreResult execute_restore(const Repository& repo, const RecoveryPlan& plan,
                              const RestoreRequest& request, const RestoreOwner& owner) {
  check_restore_target(request.target_dir);
  const std::map<uint32_t, fs::path> tablespaces = tablespace_targets(plan.backup, request);
  if (!request.inputs_checked) check_plan_inputs(repo, plan);
  Cleanup cleanup;
  make_parent_dirs(request.target_dir);
  bool created = false;
  const UniqueFd claim = claim_target_dir(request.target_dir, created);
  cleanup.watch(request.target_dir, !created);
  for (const auto& [oid, dir] : tablespaces) {
    make_parent_dirs(dir);
    cleanup.watch(dir);
  }
  const ExtractStats stats =
      extract_backup(repo, plan.backup, request.target_dir, tablespaces, /*files_verified=*/true);
  write_recovery_settings(request.target_dir, plan);
  hand_over(request.target_dir, owner);
  for (const auto& [oid, dir] : tablespaces) hand_over(dir, owner);
  cleanup.disarm();
  return {stats.files, stats.bytes};
}

Json plan_to_json(const RecoveryPlan& plan, const RestoreRequest& request,
                  const RestoreOwner& owner) {
  const BackupInfo& b = plan.backup;
  Json j;
  j["backup"] = b.id;
  j["backup_details"] = {{"id", b.id},
                         {"label", b.label},
                         {"timeline", b.timeline.value},
                         {"start_lsn", b.start_lsn.str()},
                         {"stop_lsn", b.stop_lsn.str()},
                         {"start_time", format_iso8601_utc(b.start_time)},
                         {"stop_time", format_iso8601_utc(b.stop_time)}};
  j["timeline_path"] = Json::array();
  for (const auto& s : plan.timeline_path) {
    j["timeline_path"].push_back({{"timeline", s.timeline.value},
                                  {"begin_lsn", s.begin.str()},
                                  {"end_lsn", s.end ? Json(s.end->str()) : Json(nullptr)}});
  }
  j["wal"] = {{"first", plan.wal.first},
              {"last", plan.wal.last},
              {"segments", plan.wal.segments},
              {"start_lsn", plan.wal.start.str()},
              {"end_lsn", plan.wal.end.str()}};
  j["tablespaces"] = Json::array();
  const std::map<uint32_t, fs::path> ts = tablespace_targets(b, request);
  for (const auto& t : b.tablespaces) {
    j["tablespaces"].push_back(
        {{"oid", t.oid}, {"location", t.location}, {"restore_to", ts.at(t.oid).string()}});
  }
  j["snapshots"] = request.snapshots;
  Json target = {{"kind", to_string(plan.target.kind)}, {"value", plan.target.value_text()}};
  target["inclusive"] = plan.target.inclusive;
  target["timeline"] = plan.history.target().value;
  target["action"] = to_string(plan.target.action);
  j["target"] = std::move(target);
  Json stop = {{"description", describe(plan.stop)},
               {"replay_until", plan.stop.replay_until.str()}};
  if (plan.stop.record) {
    const WalEvent& e = *plan.stop.record;
    stop["record"] = {{"kind", to_string(e.kind)},
                      {"lsn", e.lsn.str()},
                      {"end_lsn", e.end_lsn.str()},
                      {"time", format_iso8601_utc(e.time)}};
    if (e.is_xact())
      stop["record"]["xid"] = e.xid;
    else
      stop["record"]["name"] = e.name;
  }
  j["stop"] = std::move(stop);
  j["recovery_settings"] = Json::object();
  for (const auto& [k, v] : plan.recovery_settings) j["recovery_settings"][k] = v;
  j["target_dir"] = request.target_dir.string();
  j["owner"] = owner.name;
  return j;
}

std::string plan_to_text(const RecoveryPlan& plan, const RestoreRequest& request,
                         const RestoreOwner& owner) {
  const BackupInfo& b = plan.backup;
  std::ostringstream out;
  out << "target           " << to_string(plan.target.kind);
  if (plan.target.kind != TargetKind::latest && plan.target.kind != TargetKind::immediate) {
    out << " " << plan.target.value_text();
  }
  if (!plan.target.inclusive) out << " (exclusive)";
  if (plan.target.kind == TargetKind::latest) {
    out << " (all archived WAL), then promote\n";
  } else {
    out << ", then " << to_string(plan.target.action) << "\n";
  }
  out << "backup           " << b.id << (b.label.empty() ? "" : " \"" + b.label + "\"")
      << ": timeline " << b.timeline.value << ", starts at " << b.start_lsn.str()
      << ", consistent at " << b.stop_lsn.str() << " (" << format_iso8601_utc(b.stop_time) << ")\n";
  out << "timelines        ";
  for (size_t i = 0; i < plan.timeline_path.size(); ++i) {
    out << (i ? ", then " : "") << span_text(plan.timeline_path[i]);
  }
  out << "\n";
  out << "WAL              " << plan.wal.first << " .. " << plan.wal.last << " ("
      << plan.wal.segments << (plan.wal.segments == 1 ? " segment" : " segments") << ", "
      << plan.wal.start.str() << " to " << plan.wal.end.str() << ")\n";
  out << "recovery stops   " << describe(plan.stop) << "\n";
  out << "target directory " << request.target_dir.string() << " (owner " << owner.name
      << ", mode 0700)\n";
  const std::map<uint32_t, fs::path> ts = tablespace_targets(b, request);
  for (const auto& t : b.tablespaces) {
    out << "tablespace       " << t.oid << " (was " << t.location << ") into "
        << ts.at(t.oid).string() << "\n";
  }
  out << request.snapshots_text;
  out << "settings         (postgresql.auto.conf, with recovery.signal)\n";
  for (const auto& [k, v] : plan.recovery_settings) {
    out << "  " << k << " = " << conf_quote(v) << "\n";
  }
  return out.str();
}

}  // namespace walvault
