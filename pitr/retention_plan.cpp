// The pure part of retention (pitr/retention.h): policy -> kept backups -> what else goes.

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "pitr/retention.h"

namespace walvault {
namespace {

constexpr int64_t kUsPerDay = 86'400'000'000LL;

std::string days_text(double d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", d);
  return buf;
}

// "20261203T140500Z" or "20261203T140500Z-2" -> that time (UTC).
std::optional<Timestamp> time_of_backup_id(const std::string& id) {
  if (id.size() < 16 || id[8] != 'T' || id[15] != 'Z') return std::nullopt;
  if (id.size() > 16 && id[16] != '-') return std::nullopt;
  const std::string iso = id.substr(0, 4) + "-" + id.substr(4, 2) + "-" + id.substr(6, 2) + "T" +
                          id.substr(9, 2) + ":" + id.substr(11, 2) + ":" + id.substr(13, 2) + "Z";
  for (size_t i : {0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14}) {
    if (id[i] < '0' || id[i] > '9') return std::nullopt;
  }
  auto t = parse_timestamp(iso);
  if (!t) return std::nullopt;
  return t->time;
}

bool by_stop(const BackupInfo* a, const BackupInfo* b) {
  return std::tie(a->stop_time, a->id) < std::tie(b->stop_time, b->id);
}

// The ancestry the planner follows for a timeline: its history when known, else itself alone.
TimelineHistory path_of(const RetentionInput& in, TimelineId tli) {
  if (auto it = in.histories.find(tli); it != in.histories.end()) return it->second;
  return TimelineHistory(tli);
}

// For every timeline, the lowest LSN any of `needers` needs on it: a backup needs, along every
// timeline whose history passes through its start, the WAL from its start on (on each
// timeline of that path, from where that timeline begins on it).
std::map<TimelineId, Lsn> wal_needs(const RetentionInput& in, const std::set<TimelineId>& all,
                                    const std::vector<const BackupInfo*>& needers) {
  std::map<TimelineId, Lsn> need;
  for (const BackupInfo* b : needers) {
    for (TimelineId t : all) {
      const TimelineHistory path = path_of(in, t);
      const auto& spans = path.spans();
      auto it = std::find_if(spans.begin(), spans.end(),
                             [&](const TimelineSpan& s) { return s.timeline == b->timeline; });
      if (it == spans.end()) continue;
      // A timeline that branched off before the backup started cannot be reached from it.
      // (At the switch point itself it can: PostgreSQL accepts a checkpoint there.)
      if (it->end && b->start_lsn > *it->end) continue;
      for (; it != spans.end(); ++it) {
        const Lsn from = std::max(b->start_lsn, it->begin);
        auto [pos, inserted] = need.emplace(it->timeline, from);
        if (!inserted) pos->second = std::min(pos->second, from);
      }
    }
  }
  return need;
}

std::string status_text(const BackupInfo& b, bool in_progress) {
  if (b.status == BackupStatus::running && !in_progress) return "never completed";
  return std::string(to_string(b.status));
}

}  // namespace

RetentionPolicy RetentionPolicy::retain_full(uint32_t n) {
  if (n == 0) {
    throw usage_error("--retain-full must be at least 1",
                      "expire never removes the last complete backup");
  }
  RetentionPolicy p;
  p.kind = Kind::full_count;
  p.full_count = n;
  return p;
}

RetentionPolicy RetentionPolicy::retain_days(double d) {
  if (!std::isfinite(d) || d <= 0 || d > 36500) {
    throw usage_error("--retain-days must be a number of days greater than 0",
                      "for example --retain-days 7 or --retain-days 0.5");
  }
  RetentionPolicy p;
  p.kind = Kind::days;
  p.days = d;
  return p;
}

std::string RetentionPolicy::describe() const {
  return kind == Kind::full_count ? "--retain-full " + std::to_string(full_count)
                                  : "--retain-days " + days_text(days);
}

Json RetentionPolicy::to_json() const {
  Json j = Json::object();
  if (kind == Kind::full_count) {
    j["retain_full"] = full_count;
  } else {
    j["retain_days"] = days;
  }
  return j;
}

RetentionPlan plan_retention(const RetentionInput& in, const RetentionPolicy& policy,
                             Timestamp now) {
  RetentionPlan plan;
  plan.policy = policy;
  plan.now = now;

  // ---- which complete backups the policy keeps
  std::vector<const BackupInfo*> complete;
  for (const auto& b : in.backups) {
    if (b.status == BackupStatus::complete) complete.push_back(&b);
  }
  std::sort(complete.begin(), complete.end(), by_stop);
  plan.complete_backups = complete.size();
  if (complete.empty()) {
    plan.notes.push_back(
        "the repository holds no complete backup: nothing is removed (expire only removes what "
        "a complete backup makes unnecessary)");
    return plan;
  }
  size_t first_kept = 0;
  std::string reason;
  if (policy.kind == RetentionPolicy::Kind::full_count) {
    if (complete.size() > policy.full_count) first_kept = complete.size() - policy.full_count;
    reason = "beyond " + policy.describe() + " (" + std::to_string(complete.size()) +
             " complete backups)";
  } else {
    const Timestamp cutoff{now.unix_us - int64_t(std::llround(policy.days * double(kUsPerDay)))};
    // The first backup that stopped within the window; the one before it (the newest that
    // stopped before the window) is kept too: restoring to the window's start needs it.
    size_t i = 0;
    while (i < complete.size() && complete[i]->stop_time < cutoff) ++i;
    first_kept = i == 0 ? 0 : i - 1;
    reason = "stopped before the " + days_text(policy.days) + "-day window (which starts " +
             format_iso8601_utc(cutoff) + ") and a newer backup also stopped before it";
  }
  for (size_t i = first_kept; i < complete.size(); ++i) plan.kept_backups.push_back(*complete[i]);
  const BackupInfo& oldest = plan.kept_backups.front();
  const BackupInfo& newest_complete = plan.kept_backups.back();
  plan.window_start = oldest.stop_time;
  for (size_t i = 0; i < first_kept; ++i) {
    plan.backups.push_back({complete[i]->id, BackupStatus::complete, true, complete[i]->start_time,
                            complete[i]->stop_time, reason});
  }

  // ---- backups that never completed
  std::vector<const BackupInfo*> needers;
  for (const auto& b : plan.kept_backups) needers.push_back(&b);
  bool hold_wal = false;
  std::vector<std::string> in_progress_snapshots;
  for (const auto& b : in.backups) {
    if (b.status == BackupStatus::complete) continue;
    if (in.backups_in_progress.count(b.id)) {
      if (b.start_lsn.valid()) {
        needers.push_back(&b);
      } else {
        hold_wal = true;
        plan.notes.push_back("backup " + b.id +
                             " is in progress and its start LSN is not known yet: no WAL is "
                             "removed by this run");
      }
      for (const auto& s : b.snapshots) in_progress_snapshots.push_back(s);
      continue;
    }
    // A newer complete backup supersedes it; only the newest failure stays for a look.
    if (b.start_time < newest_complete.start_time) {
      plan.backups.push_back({b.id, b.status, true, b.start_time, std::nullopt,
                              status_text(b, false) +
                                  ", started before the newest complete backup " +
                                  newest_complete.id});
    }
  }
  for (const auto& u : in.unreadable_backups) {
    if (in.backups_in_progress.count(u.id)) continue;
    const auto t = time_of_backup_id(u.id);
    if (u.has_backup_json) {
      plan.notes.push_back("backup directory " + u.id + " is left alone: " + u.problem +
                           "; check it and remove it by hand if it is of no use");
    } else if (!t) {
      plan.notes.push_back("directory backups/" + u.id +
                           " is left alone: it has no backup.json and its name is not a backup id");
    } else if (*t < newest_complete.start_time) {
      plan.backups.push_back({u.id, BackupStatus::failed, false, *t, std::nullopt,
                              "no backup.json (a backup that died as it started), started before "
                              "the newest complete backup " +
                                  newest_complete.id});
    }
  }
  std::sort(plan.backups.begin(), plan.backups.end(),
            [](const BackupRemoval& a, const BackupRemoval& b) {
              return std::tie(a.start_time, a.id) < std::tie(b.start_time, b.id);
            });

  // ---- WAL
  std::set<TimelineId> all;
  for (const auto& [t, files] : in.wal) all.insert(t);
  for (const auto& [t, h] : in.histories) all.insert(t);
  for (TimelineId t : in.unknown_ancestry) all.insert(t);
  const TimelineId newest = all.empty() ? TimelineId(1) : *all.rbegin();
  const std::map<TimelineId, Lsn> need = wal_needs(in, all, needers);
  const uint64_t seg = in.segment_size_bytes;
  if (!hold_wal) {
    for (const auto& [t, files] : in.wal) {
      if (files.empty()) continue;
      const auto n = need.find(t);
      WalRemoval r;
      r.timeline = t;
      if (in.unknown_ancestry.count(t)) {
        plan.notes.push_back("timeline " + std::to_string(t.value) +
                             ": its ancestry is unknown (no readable history file), so its WAL "
                             "is kept");
        continue;
      }
      if (n != need.end()) {
        r.keep_from = n->second;
        const SegmentNo first = segment_of(n->second, seg);
        for (const auto& f : files) {
          if (f.segno < first) r.files.push_back(f);
        }
      } else if (t == newest) {
        plan.notes.push_back("timeline " + std::to_string(t.value) +
                             ": no kept backup reaches it, but it is the newest timeline (the "
                             "archiver may be writing it), so its WAL is kept");
        continue;
      } else {
        r.files = files;
      }
      if (auto g = in.recorded_gaps.find(t); g != in.recorded_gaps.end()) {
        const std::optional<Lsn> keep_start =
            r.keep_from ? std::optional<Lsn>(segment_start(segment_of(*r.keep_from, seg), seg))
                        : std::nullopt;
        for (const auto& gap : g->second) {
          if (!keep_start || gap.end <= *keep_start) {
            ++r.gaps_dropped;
          } else {
            ++r.gaps_kept;
          }
        }
      }
      if (!r.files.empty() || r.gaps_dropped) plan.wal.push_back(std::move(r));
    }
  }

  // ---- snapshots
  const Timestamp w = *plan.window_start;
  std::set<std::string> referenced(in_progress_snapshots.begin(), in_progress_snapshots.end());
  for (const auto& b : plan.kept_backups) referenced.insert(b.snapshots.begin(), b.snapshots.end());
  std::map<std::string, std::vector<const SnapshotInfo*>> by_name;
  for (const auto& s : in.snapshots) by_name[s.name].push_back(&s);
  for (auto& [name, list] : by_name) {
    std::sort(list.begin(), list.end(), [](const SnapshotInfo* a, const SnapshotInfo* b) {
      return std::tie(a->time, a->id) < std::tie(b->time, b->id);
    });
    const SnapshotInfo* base = nullptr;  // newest at or before the window's start
    for (const SnapshotInfo* s : list) {
      if (s->time <= w) base = s;
    }
    for (const SnapshotInfo* s : list) {
      if (s->time > w || s == base || referenced.count(s->id)) {
        plan.kept_snapshots.push_back(*s);
      } else {
        plan.snapshots.push_back(
            {*s, "taken before " + base->id + ", the newest " + name +
                     " snapshot at or before the start of the restorable window (" +
                     format_iso8601_utc(w) + ")"});
      }
    }
  }
  plan.expire_objects = in.snapshot_problems.empty();
  for (const auto& p : in.snapshot_problems) {
    plan.notes.push_back("no store object is removed: " + p +
                         " (the objects it uses cannot be known)");
  }
  return plan;
}

}  // namespace walvault
