#include "pitr/planner.h"

#include <algorithm>

#include "core/error.h"

namespace walvault {

TimelineHistory RepoState::history_of(TimelineId tli) const {
  auto it = histories.find(tli);
  return it == histories.end() ? TimelineHistory(tli) : it->second;
}

TimelineId RepoState::latest_timeline() const {
  TimelineId best(1);
  for (const auto& [tli, h] : histories) best = std::max(best, tli);
  return best;
}

namespace {

std::string what_record(const WalEvent& e) {
  switch (e.kind) {
    case WalEventKind::commit:
      return "commit of transaction " + std::to_string(e.xid);
    case WalEventKind::abort:
      return "abort of transaction " + std::to_string(e.xid);
    case WalEventKind::commit_prepared:
      return "commit of prepared transaction " + std::to_string(e.xid);
    case WalEventKind::abort_prepared:
      return "abort of prepared transaction " + std::to_string(e.xid);
    case WalEventKind::restore_point:
      return "restore point \"" + e.name + "\"";
  }
  return "record";
}

bool on_path(const TimelineHistory& path, const BackupInfo& b) {
  return path.contains(b.timeline) && path.timeline_of(b.start_lsn) == b.timeline &&
         path.timeline_of(b.stop_lsn) == b.stop_timeline;
}

std::string target_phrase(const RecoveryTarget& t) {
  switch (t.kind) {
    case TargetKind::time:
      return "recovery target time " + t.value_text();
    case TargetKind::lsn:
      return "recovery target LSN " + t.value_text();
    case TargetKind::xid:
      return "recovery target transaction " + t.value_text();
    case TargetKind::name:
      return "restore point \"" + t.name + "\"";
    case TargetKind::immediate:
      return "the end of a backup";
    case TargetKind::latest:
      return "the end of the archived WAL";
  }
  return "the target";
}

std::string missing_text(const WalReach& r) {
  if (!r.resumes) {
    return "everything after " + r.end.str() + " on timeline " + std::to_string(r.timeline.value);
  }
  return r.end.str() + " to " + r.resumes->str() + " on timeline " +
         std::to_string(r.timeline.value);
}

// Why one backup cannot serve the target.
enum class Outcome { too_new, inconsistent, beyond };

struct Rejection {
  Outcome outcome;
  const BackupInfo* backup;
  WalReach reach;
};

struct Found {
  RecoveryStop stop;
};

// Whether every transaction the backup holds from before its start (redo) LSN committed at
// or before t: recovery replays from there and cannot undo them. The evidence is the newest
// commit/abort time in the archived WAL just before the start LSN (commit times follow WAL
// order up to a few microseconds); without such WAL, the backup's own start time, taken
// before its checkpoint began, stands in for it.
bool began_before(Timestamp t, const BackupInfo& b, const TimelineHistory& path, WalView& wal,
                  uint64_t seg) {
  std::optional<Timestamp> newest;
  auto look = [&](Lsn from) {
    try {
      wal.scan_events(path, from, b.start_lsn, [&](const WalEvent& e) {
        if (e.is_xact() && (!newest || e.time > *newest)) newest = e.time;
        return true;
      });
    } catch (const Error&) {
      // WAL before the backup is not needed for recovery; damage there is no evidence.
    }
  };
  // The segment before the start and the start's own; the first alone when it is missing.
  const SegmentNo start_seg = segment_of(b.start_lsn, seg);
  if (start_seg.value > 0) look(segment_start(SegmentNo(start_seg.value - 1), seg));
  if (!newest) look(segment_start(start_seg, seg));
  if (newest) return *newest <= t;
  return t >= b.start_time;
}

// Decides for one backup (on the path, WAL reaching its consistency point): the stop, or why
// this backup cannot reach the target.
std::optional<Found> stop_for(const RecoveryTarget& t, const BackupInfo& b, const WalReach& reach,
                              const TimelineHistory& path, WalView& wal, uint64_t seg,
                              Outcome& why) {
  RecoveryStop stop;
  switch (t.kind) {
    case TargetKind::time: {
      if (!began_before(t.time, b, path, wal, seg)) {
        why = Outcome::too_new;
        return std::nullopt;
      }
      // PostgreSQL stops before the first commit/abort whose time is after the target
      // (recoveryStopsBefore); without one, PostgreSQL >= 13 fails at the end of WAL.
      std::optional<WalEvent> first;
      wal.scan_events(path, b.start_lsn, reach.end, [&](const WalEvent& e) {
        if (!e.is_xact()) return true;
        if (t.inclusive ? e.time > t.time : e.time >= t.time) {
          first = e;
          return false;
        }
        return true;
      });
      if (!first) {
        why = Outcome::beyond;
        return std::nullopt;
      }
      if (first->lsn < b.stop_lsn) {
        why = Outcome::too_new;  // it would stop before the backup is consistent
        return std::nullopt;
      }
      stop.where = RecoveryStop::Where::before_record;
      stop.record = first;
      stop.replay_until = first->end_lsn;
      return Found{stop};
    }
    case TargetKind::xid: {
      std::optional<WalEvent> rec;
      wal.scan_events(path, b.start_lsn, reach.end, [&](const WalEvent& e) {
        if (e.is_xact() && e.xid == t.xid) {
          rec = e;
          return false;
        }
        return true;
      });
      if (!rec) {
        why = Outcome::beyond;
        return std::nullopt;
      }
      if (rec->lsn < b.stop_lsn) {
        why = Outcome::too_new;
        return std::nullopt;
      }
      stop.where =
          t.inclusive ? RecoveryStop::Where::after_record : RecoveryStop::Where::before_record;
      stop.record = rec;
      stop.replay_until = rec->end_lsn;
      return Found{stop};
    }
    case TargetKind::name: {
      std::optional<WalEvent> rec;
      wal.scan_events(path, b.start_lsn, reach.end, [&](const WalEvent& e) {
        if (e.kind == WalEventKind::restore_point && e.name == t.name) {
          rec = e;
          return false;
        }
        return true;
      });
      if (!rec) {
        why = Outcome::beyond;
        return std::nullopt;
      }
      if (rec->lsn < b.stop_lsn) {
        why = Outcome::too_new;
        return std::nullopt;
      }
      stop.where = RecoveryStop::Where::after_record;
      stop.record = rec;
      stop.replay_until = rec->end_lsn;
      return Found{stop};
    }
    case TargetKind::lsn: {
      if (t.lsn < b.stop_lsn) {
        why = Outcome::too_new;
        return std::nullopt;
      }
      if (reach.end <= t.lsn) {
        why = Outcome::beyond;
        return std::nullopt;
      }
      stop.where = RecoveryStop::Where::at_lsn;
      stop.replay_until = t.lsn + 1;
      return Found{stop};
    }
    case TargetKind::immediate:
      stop.where = RecoveryStop::Where::at_consistency;
      stop.replay_until = b.stop_lsn;
      return Found{stop};
    case TargetKind::latest:
      // "All archived WAL" stops where the archive ends, not at a hole or a damaged file with
      // WAL after it: that would end recovery early without a word.
      if (reach.limit != WalReach::Limit::end_of_archive) {
        why = Outcome::beyond;
        return std::nullopt;
      }
      stop.where = RecoveryStop::Where::end_of_wal;
      stop.replay_until = reach.end;
      return Found{stop};
  }
  why = Outcome::beyond;
  return std::nullopt;
}

std::vector<std::pair<std::string, std::string>> settings_for(const RecoveryTarget& t,
                                                              TimelineId timeline,
                                                              const std::string& restore_command) {
  std::vector<std::pair<std::string, std::string>> s;
  s.emplace_back("restore_command", restore_command);
  switch (t.kind) {
    case TargetKind::time:
      s.emplace_back("recovery_target_time", format_pg_utc(t.time));
      break;
    case TargetKind::lsn:
      s.emplace_back("recovery_target_lsn", t.lsn.str());
      break;
    case TargetKind::xid:
      s.emplace_back("recovery_target_xid", std::to_string(t.xid));
      break;
    case TargetKind::name:
      s.emplace_back("recovery_target_name", t.name);
      break;
    case TargetKind::immediate:
      s.emplace_back("recovery_target", "immediate");
      break;
    case TargetKind::latest:
      break;
  }
  if (!t.inclusive &&
      (t.kind == TargetKind::time || t.kind == TargetKind::lsn || t.kind == TargetKind::xid)) {
    s.emplace_back("recovery_target_inclusive", "false");
  }
  s.emplace_back("recovery_target_timeline", std::to_string(timeline.value));
  if (t.kind != TargetKind::latest) {
    s.emplace_back("recovery_target_action", std::string(to_string(t.action)));
  }
  return s;
}

std::vector<const BackupInfo*> newest_first(const std::vector<BackupInfo>& backups) {
  std::vector<const BackupInfo*> out;
  for (const auto& b : backups) {
    if (b.status == BackupStatus::complete) out.push_back(&b);
  }
  std::sort(out.begin(), out.end(), [](const BackupInfo* a, const BackupInfo* b) {
    if (a->stop_lsn != b->stop_lsn) return a->stop_lsn > b->stop_lsn;
    return a->start_lsn > b->start_lsn;
  });
  return out;
}

TimelineHistory path_for(const RepoState& repo, const RecoveryTarget& t, const BackupInfo& b) {
  switch (t.timeline.kind) {
    case TimelineChoice::Kind::latest:
      return repo.history_of(repo.latest_timeline());
    case TimelineChoice::Kind::current:
      return repo.history_of(b.timeline);
    case TimelineChoice::Kind::given:
      return repo.history_of(t.timeline.timeline);
  }
  return repo.history_of(repo.latest_timeline());
}

[[noreturn]] void refuse(const RepoState& repo, WalView& wal, const RecoveryTarget& t,
                         const std::vector<Rejection>& rejections, size_t complete_backups,
                         TimelineId timeline) {
  const std::string target = target_phrase(t);
  if (complete_backups == 0) {
    throw unreachable_error(
        "the repository holds no complete backup, so " + target + " cannot be reached",
        "take one with walvault backup");
  }
  if (rejections.empty()) {
    throw unreachable_error("no complete backup lies on the history of timeline " +
                                std::to_string(timeline.value) + ", so " + target +
                                " cannot be reached",
                            "walvault info lists the backups and timelines; choose "
                            "--target-timeline accordingly");
  }
  const RecoverableWindow window = recoverable_window(repo, wal, timeline);
  const std::string window_text = "the restorable window on timeline " +
                                  std::to_string(timeline.value) + " is " + describe(window);
  // The newest backup the target is not before decides "beyond"; older ones cannot do better.
  for (const auto& r : rejections) {
    if (r.outcome != Outcome::beyond) continue;
    if (r.reach.limit == WalReach::Limit::missing) {
      throw unreachable_error(target + " lies beyond a gap in the archived WAL: " +
                                  missing_text(r.reach) + " is missing (" + window_text + ")",
                              "WAL in a gap cannot be recovered; take a new backup to restore "
                              "past it, or choose a target before " +
                                  r.reach.end.str());
    }
    if (r.reach.limit == WalReach::Limit::damaged) {
      throw unreachable_error(
          target + " lies beyond damaged WAL: " + r.reach.detail + " (" + window_text + ")",
          "run walvault verify on the repository");
    }
    std::string msg = target + " is after the end of the restorable window: " + window_text +
                      "; WAL is archived up to " + r.reach.end.str();
    std::string hint = "choose an earlier target";
    if (t.kind == TargetKind::time) {
      msg += ", and no transaction that committed after the target is archived yet";
      hint =
          "a time target needs a transaction that committed after it in the archive: "
          "choose a time before the window's end, or wait until one is archived";
    } else if (t.kind == TargetKind::xid) {
      // Not found is not only "too new": the transaction may have ended before the backup
      // whose WAL the search starts from.
      msg = target +
            " was not found: no commit or abort of that transaction is in the "
            "archived WAL from the chosen backup's start to its end (" +
            window_text + "; WAL is archived up to " + r.reach.end.str() + ")";
      hint =
          "a transaction that ended before the earliest backup cannot be a target; if it is "
          "newer than the archive, wait until its commit is archived";
    } else if (t.kind == TargetKind::name) {
      msg += ", and it holds no restore point of that name";
    }
    throw unreachable_error(msg, hint);
  }
  for (const auto& r : rejections) {
    if (r.outcome == Outcome::too_new) {
      throw unreachable_error(target + " is before the earliest restorable point: " + window_text,
                              "choose a target inside the window (walvault info shows it)");
    }
  }
  const Rejection& r = rejections.front();
  throw unreachable_error("no backup on timeline " + std::to_string(timeline.value) +
                              " can be made consistent: the WAL of backup " + r.backup->id +
                              " is missing " + missing_text(r.reach),
                          "WAL that was never archived cannot be recovered; take a new backup");
}

}  // namespace

std::string describe(const RecoveryStop& stop) {
  switch (stop.where) {
    case RecoveryStop::Where::before_record:
      return "before " + what_record(*stop.record) + " (" + format_iso8601_utc(stop.record->time) +
             ") at " + stop.record->lsn.str();
    case RecoveryStop::Where::after_record:
      return "after " + what_record(*stop.record) + " (" + format_iso8601_utc(stop.record->time) +
             ") at " + stop.record->lsn.str();
    case RecoveryStop::Where::at_lsn:
      return "at the first record at or after " + Lsn(stop.replay_until.value - 1).str();
    case RecoveryStop::Where::at_consistency:
      return "when the backup is consistent, at " + stop.replay_until.str();
    case RecoveryStop::Where::end_of_wal:
      return "at the end of the archived WAL, " + stop.replay_until.str();
  }
  return {};
}

RecoveryPlan plan_recovery(const RepoState& repo, WalView& wal, const RecoveryTarget& target,
                           const std::string& restore_command) {
  const uint64_t seg = repo.identity.wal_segment_size;
  std::vector<Rejection> rejections;
  const auto candidates = newest_first(repo.backups);
  TimelineId refused_timeline = target.timeline.kind == TimelineChoice::Kind::given
                                    ? target.timeline.timeline
                                    : repo.latest_timeline();
  if (target.timeline.kind == TimelineChoice::Kind::given &&
      !repo.histories.contains(target.timeline.timeline)) {
    throw unreachable_error(
        "timeline " + std::to_string(target.timeline.timeline.value) + " is not in the repository",
        "walvault info lists the timelines it holds");
  }
  // PostgreSQL itself refuses a numeric recovery_target_timeline other than 1 without its
  // history file ("recovery target timeline N does not exist"), and without it the WAL to
  // replay is unknown.
  if (target.timeline.kind != TimelineChoice::Kind::current && refused_timeline.value > 1 &&
      repo.history_of(refused_timeline).spans().size() <= 1) {
    throw unreachable_error(
        "timeline " + std::to_string(refused_timeline.value) +
            " has no history file in the repository (" + history_file_name(refused_timeline) +
            "): its ancestry is unknown, so PostgreSQL cannot recover along it",
        "restore the history file into the repository's wal/ directory, or choose "
        "--target-timeline with a timeline whose history is archived");
  }
  std::optional<Lsn> beyond_end;
  for (const BackupInfo* b : candidates) {
    if (!repo.identity.system_identifier.empty() && !b->system_identifier.empty() &&
        b->system_identifier != repo.identity.system_identifier) {
      continue;
    }
    const TimelineHistory path = path_for(repo, target, *b);
    if (!on_path(path, *b)) continue;
    refused_timeline = path.target();
    const WalReach reach = wal.reach(path, b->start_lsn);
    if (reach.end < b->stop_lsn) {
      rejections.push_back({Outcome::inconsistent, b, reach});
      continue;
    }
    // A time target that the WAL after a newer backup does not reach is not reached from an
    // older one either: commits before the newer backup began are older than it, so no
    // earlier record can be the stop record. Skip the rescan of the same WAL.
    if (target.kind == TargetKind::time && beyond_end && reach.end <= *beyond_end &&
        target.time >= b->start_time) {
      rejections.push_back({Outcome::beyond, b, reach});
      continue;
    }
    Outcome why = Outcome::beyond;
    auto found = stop_for(target, *b, reach, path, wal, seg, why);
    if (!found && why == Outcome::beyond) beyond_end = reach.end;
    if (!found) {
      rejections.push_back({why, b, reach});
      continue;
    }
    RecoveryPlan plan;
    plan.backup = *b;
    plan.history = path;
    plan.target = target;
    plan.stop = found->stop;
    const Lsn until = std::max(plan.stop.replay_until, b->stop_lsn);
    for (const auto& span : path.spans()) {
      if ((span.end && *span.end <= b->start_lsn) || span.begin >= until) continue;
      plan.timeline_path.push_back(span);
    }
    const SegmentNo first = segment_of(b->start_lsn, seg);
    const SegmentNo last = segment_of(Lsn(std::max(until.value, b->start_lsn.value + 1) - 1), seg);
    plan.wal.first = wal_file_name(path.timeline_of_segment(first, seg), first, seg);
    plan.wal.last = wal_file_name(path.timeline_of_segment(last, seg), last, seg);
    plan.wal.segments = last.value - first.value + 1;
    plan.wal.start = b->start_lsn;
    plan.wal.end = until;
    plan.recovery_settings = settings_for(target, path.target(), restore_command);
    return plan;
  }
  refuse(repo, wal, target, rejections, candidates.size(), refused_timeline);
}

RecoverableWindow recoverable_window(const RepoState& repo, WalView& wal, TimelineId timeline) {
  RecoverableWindow out;
  out.timeline = timeline;
  const TimelineHistory path = repo.history_of(timeline);
  auto candidates = newest_first(repo.backups);
  std::reverse(candidates.begin(), candidates.end());  // oldest first
  // Backups whose WAL reaches the same end share the newest commit after them: memoised.
  std::map<uint64_t, std::optional<WalEvent>> newest_by_end;
  for (const BackupInfo* b : candidates) {
    if (!on_path(path, *b)) continue;
    const WalReach reach = wal.reach(path, b->start_lsn);
    if (reach.end < b->stop_lsn) continue;
    RecoverableWindow::Piece piece{b->id, b->stop_time, std::nullopt, reach.end};
    auto it = newest_by_end.find(reach.end.value);
    if (it == newest_by_end.end()) {
      it = newest_by_end
               .emplace(reach.end.value,
                        wal.last_event(path, b->stop_lsn, reach.end,
                                       [](const WalEvent& e) { return e.is_xact(); }))
               .first;
    }
    if (it->second && it->second->lsn >= b->stop_lsn) piece.to_time = it->second->time;
    out.pieces.push_back(piece);
    if (!out.from_time || piece.from_time < *out.from_time) out.from_time = piece.from_time;
    if (piece.to_time && (!out.to_time || *piece.to_time > *out.to_time))
      out.to_time = piece.to_time;
    if (!out.to_lsn || reach.end > *out.to_lsn) out.to_lsn = reach.end;
  }
  return out;
}

std::string describe(const RecoverableWindow& w) {
  if (!w.from_time) return "empty (no backup that can be restored)";
  std::string s = "from " + format_iso8601_utc(*w.from_time) + " to ";
  s += w.to_time ? format_iso8601_utc(*w.to_time)
                 : std::string("(no transaction archived after a backup)");
  return s;
}

}  // namespace walvault
