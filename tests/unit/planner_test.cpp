#include "pitr/planner.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>

#include "core/error.h"

namespace walvault {
namespace {

constexpr uint64_t kSeg = 16 << 20;

Lsn L(const char* s) {
  return *Lsn::parse(s);
}
Timestamp T(const char* s) {
  return parse_timestamp(s)->time;
}  // give a zone in tests

// WAL in memory: archived byte ranges per timeline and the events written on each timeline.
class FakeWal : public WalView {
 public:
  WalRangesByTimeline ranges;
  std::vector<std::pair<TimelineId, WalEvent>> events;  // ascending LSN per timeline

  void commit(TimelineId tli, const char* lsn, const char* time, uint32_t xid,
              WalEventKind kind = WalEventKind::commit) {
    WalEvent e;
    e.kind = kind;
    e.lsn = L(lsn);
    e.end_lsn = e.lsn + 34;
    e.time = T(time);
    e.xid = xid;
    events.emplace_back(tli, e);
  }
  void restore_point(TimelineId tli, const char* lsn, const char* time, const char* name) {
    WalEvent e;
    e.kind = WalEventKind::restore_point;
    e.lsn = L(lsn);
    e.end_lsn = e.lsn + 98;
    e.time = T(time);
    e.name = name;
    events.emplace_back(tli, e);
  }

  WalReach reach(const TimelineHistory& path, Lsn from) override {
    ++reach_calls;
    return compute_reach(path, ranges, kSeg, from);
  }
  void scan_events(const TimelineHistory& path, Lsn from, Lsn until,
                   const WalEventVisitor& visit) override {
    ++scan_calls;
    for (const auto& [tli, e] : sorted()) {
      if (e.lsn < from || e.end_lsn > until) continue;
      if (path.timeline_of(e.lsn) != tli) continue;  // written on another branch
      if (!visit(e)) return;
    }
  }
  std::optional<WalEvent> last_event(const TimelineHistory& path, Lsn from, Lsn until,
                                     const std::function<bool(const WalEvent&)>& pred) override {
    std::optional<WalEvent> last;
    scan_events(path, from, until, [&](const WalEvent& e) {
      if (pred(e)) last = e;
      return true;
    });
    return last;
  }
  int reach_calls = 0;
  int scan_calls = 0;

 private:
  std::vector<std::pair<TimelineId, WalEvent>> sorted() const {
    auto out = events;
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.second.lsn < b.second.lsn; });
    return out;
  }
};

BackupInfo backup(const char* id, TimelineId tli, const char* start, const char* stop,
                  const char* start_time, const char* stop_time,
                  BackupStatus status = BackupStatus::complete) {
  BackupInfo b;
  b.id = id;
  b.label = std::string("label-") + id;
  b.status = status;
  b.timeline = tli;
  b.stop_timeline = tli;
  b.start_lsn = L(start);
  b.stop_lsn = L(stop);
  b.start_time = T(start_time);
  b.stop_time = T(stop_time);
  return b;
}

RecoveryTarget time_target(const char* t, bool inclusive = true) {
  RecoveryTarget r;
  r.kind = TargetKind::time;
  r.time = T(t);
  r.inclusive = inclusive;
  r.action = TargetAction::promote;
  return r;
}

const TimelineId TL1(1), TL2(2);

// One timeline, two backups, WAL 0/1000000..0/9000000, commits at known times.
struct OneTimeline : ::testing::Test {
  RepoState repo;
  FakeWal wal;
  void SetUp() override {
    repo.identity = {"7300000000000000001", 150018, kSeg};
    repo.histories.emplace(TL1, TimelineHistory(TL1));
    repo.backups.push_back(backup("B1", TL1, "0/2000028", "0/2000100", "2026-12-03 10:00:00Z",
                                  "2026-12-03 10:00:05Z"));
    repo.backups.push_back(backup("B2", TL1, "0/6000028", "0/6000100", "2026-12-03 12:00:00Z",
                                  "2026-12-03 12:00:05Z"));
    repo.backups.push_back(backup("B3-running", TL1, "0/8000028", "0/0", "2026-12-03 13:00:00Z",
                                  "2026-12-03 13:00:00Z", BackupStatus::running));
    wal.ranges[TL1] = {{L("0/1000000"), L("0/9000000")}};
    wal.commit(TL1, "0/2500000", "2026-12-03 10:30:00Z", 700);
    wal.commit(TL1, "0/5000000", "2026-12-03 11:30:00Z", 710, WalEventKind::abort);
    wal.restore_point(TL1, "0/5100000", "2026-12-03 11:31:00Z", "before-upgrade");
    wal.commit(TL1, "0/7000000", "2026-12-03 12:30:00Z", 720);
    wal.commit(TL1, "0/8000000", "2026-12-03 13:00:00Z", 730);
  }
  RecoveryPlan plan(const RecoveryTarget& t) { return plan_recovery(repo, wal, t, "cmd %f %p"); }
  // The refusal's exit code and message.
  std::pair<ExitCode, std::string> refusal(const RecoveryTarget& t) {
    try {
      plan(t);
    } catch (const Error& e) {
      return {e.code(), e.what()};
    }
    ADD_FAILURE() << "the target was not refused";
    return {ExitCode::ok, ""};
  }
};

std::string setting(const RecoveryPlan& p, const std::string& key) {
  for (const auto& [k, v] : p.recovery_settings) {
    if (k == key) return v;
  }
  return "<absent>";
}

TEST_F(OneTimeline, PicksTheNewestBackupBeforeTheTarget) {
  auto p = plan(time_target("2026-12-03 12:45:00Z"));
  EXPECT_EQ(p.backup.id, "B2");
  ASSERT_TRUE(p.stop.record);
  EXPECT_EQ(p.stop.where, RecoveryStop::Where::before_record);
  EXPECT_EQ(p.stop.record->xid, 730u);
  EXPECT_EQ(p.stop.replay_until, L("0/8000022"));
  EXPECT_EQ(p.wal.first, "000000010000000000000006");
  EXPECT_EQ(p.wal.last, "000000010000000000000008");
  EXPECT_EQ(p.wal.segments, 3u);
  ASSERT_EQ(p.timeline_path.size(), 1u);
  EXPECT_EQ(p.timeline_path[0].timeline, TL1);
  EXPECT_EQ(setting(p, "restore_command"), "cmd %f %p");
  EXPECT_EQ(setting(p, "recovery_target_time"), "2026-12-03 12:45:00+00");
  EXPECT_EQ(setting(p, "recovery_target_action"), "promote");
  EXPECT_EQ(setting(p, "recovery_target_timeline"), "1");
  EXPECT_EQ(setting(p, "recovery_target_inclusive"), "<absent>");
  EXPECT_EQ(p.recovery_settings.front().first, "restore_command");
}

TEST_F(OneTimeline, TargetBeforeTheNewestBackupUsesAnOlderOne) {
  auto p = plan(time_target("2026-12-03 11:00:00Z"));
  EXPECT_EQ(p.backup.id, "B1");
  EXPECT_EQ(p.stop.record->lsn, L("0/5000000"));  // an abort counts as well
  EXPECT_EQ(p.stop.record->kind, WalEventKind::abort);
  EXPECT_EQ(p.wal.first, "000000010000000000000002");
  EXPECT_EQ(p.wal.last, "000000010000000000000005");
}

TEST_F(OneTimeline, TargetInsideABackupRunFallsBackToTheOlderBackup) {
  // A commit while B2 ran, after the target: recovery from B2 would stop before B2 is
  // consistent (PostgreSQL: "requested recovery stop point is before consistent recovery
  // point"), so B1 must be used.
  wal.commit(TL1, "0/6000050", "2026-12-03 12:00:03Z", 715);
  auto p = plan(time_target("2026-12-03 12:00:02Z"));
  EXPECT_EQ(p.backup.id, "B1");
  EXPECT_EQ(p.stop.record->xid, 715u);
}

TEST_F(OneTimeline, CommitsJustBeforeTheBackupStartDecideWhetherItIsTooNew) {
  // B2's checkpoint began late (it waited for another one): a transaction committed at
  // 12:00:30, after B2's start time, lies before B2's start LSN and is inside B2.
  wal.commit(TL1, "0/5F00000", "2026-12-03 12:00:30Z", 714);
  auto p = plan(time_target("2026-12-03 12:00:10Z"));
  EXPECT_EQ(p.backup.id, "B1");
  EXPECT_EQ(p.stop.record->xid, 714u);
}

TEST_F(OneTimeline, ABackupIsUsableBeforeItsStartTimeWhenNothingCommittedInBetween) {
  // The newest commit before B2's start LSN is at 11:30 (the abort at 0/5000000), so B2
  // holds nothing after 11:59 although it started at 12:00.
  auto p = plan(time_target("2026-12-03 11:59:00Z"));
  EXPECT_EQ(p.backup.id, "B2");
  EXPECT_EQ(p.stop.record->xid, 720u);
}

TEST_F(OneTimeline, RefusesATargetBeforeTheFirstBackup) {
  auto [code, msg] = refusal(time_target("2026-12-03 09:00:00Z"));
  EXPECT_EQ(code, ExitCode::unreachable);
  EXPECT_NE(msg.find("before the earliest restorable point"), std::string::npos) << msg;
  EXPECT_NE(msg.find("from 2026-12-03T10:00:05+00:00 to 2026-12-03T13:00:00+00:00"),
            std::string::npos)
      << msg;
}

TEST_F(OneTimeline, RefusesATargetAfterTheLastArchivedCommit) {
  auto [code, msg] = refusal(time_target("2026-12-03 14:00:00Z"));
  EXPECT_EQ(code, ExitCode::unreachable);
  EXPECT_NE(msg.find("after the end of the restorable window"), std::string::npos) << msg;
  EXPECT_NE(msg.find("to 2026-12-03T13:00:00+00:00"), std::string::npos) << msg;
  EXPECT_NE(msg.find("archived up to 0/9000000"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line";
}

TEST_F(OneTimeline, ATimeBeyondTheWalIsSearchedOnce) {
  // Both backups began before the target; the WAL after the newer one holds no later
  // commit, so the older one is not searched again.
  wal.scan_calls = 0;
  EXPECT_EQ(refusal(time_target("2026-12-03 14:00:00Z")).first, ExitCode::unreachable);
  // For the plan: B2's start (commits just before it), then forward from it; B1 is not
  // searched. One more for the window in the message (shared by both backups).
  EXPECT_EQ(wal.scan_calls, 3);
}

TEST_F(OneTimeline, TheLastCommitItselfNeedsALaterOne) {
  // Inclusive (PostgreSQL's default): a target equal to the last commit's time needs a record
  // after it to stop at.
  EXPECT_EQ(refusal(time_target("2026-12-03 13:00:00Z")).first, ExitCode::unreachable);
  // Exclusive: it stops before that very commit.
  auto p = plan(time_target("2026-12-03 13:00:00Z", false));
  EXPECT_EQ(p.stop.record->xid, 730u);
  EXPECT_EQ(setting(p, "recovery_target_inclusive"), "false");
}

TEST_F(OneTimeline, RefusesATargetBeyondAGap) {
  wal.ranges[TL1] = {{L("0/1000000"), L("0/4000000")}, {L("0/5000000"), L("0/9000000")}};
  // B2 (after the gap) still works.
  EXPECT_EQ(plan(time_target("2026-12-03 12:45:00Z")).backup.id, "B2");
  // Before the abort at 11:30 that B2 holds, the only backup is B1, whose WAL stops at the
  // gap.
  auto [code, msg] = refusal(time_target("2026-12-03 11:20:00Z"));
  EXPECT_EQ(code, ExitCode::unreachable);
  EXPECT_NE(msg.find("gap"), std::string::npos) << msg;
  EXPECT_NE(msg.find("0/4000000 to 0/5000000 on timeline 1 is missing"), std::string::npos) << msg;
  // Before the gap it is fine.
  EXPECT_EQ(plan(time_target("2026-12-03 10:15:00Z")).backup.id, "B1");
}

TEST_F(OneTimeline, RefusesWithoutCompleteBackups) {
  repo.backups.erase(repo.backups.begin(), repo.backups.begin() + 2);  // only the running one
  auto [code, msg] = refusal(time_target("2026-12-03 12:45:00Z"));
  EXPECT_EQ(code, ExitCode::unreachable);
  EXPECT_NE(msg.find("no complete backup"), std::string::npos) << msg;
}

TEST_F(OneTimeline, BackupWhoseOwnWalIsMissingIsNotUsed) {
  wal.ranges[TL1] = {{L("0/1000000"), L("0/6000080")}};  // B2 never reaches its stop LSN
  auto p = plan(time_target("2026-12-03 10:45:00Z"));
  EXPECT_EQ(p.backup.id, "B1");
}

TEST_F(OneTimeline, Window) {
  auto w = recoverable_window(repo, wal, TL1);
  ASSERT_TRUE(w.from_time && w.to_time && w.to_lsn);
  EXPECT_EQ(*w.from_time, T("2026-12-03 10:00:05Z"));
  EXPECT_EQ(*w.to_time, T("2026-12-03 13:00:00Z"));
  EXPECT_EQ(*w.to_lsn, L("0/9000000"));
  ASSERT_EQ(w.pieces.size(), 2u);
  EXPECT_EQ(w.pieces[0].backup_id, "B1");
}

TEST_F(OneTimeline, OtherTargetKinds) {
  RecoveryTarget t;
  t.kind = TargetKind::xid;
  t.xid = 720;
  auto p = plan(t);
  EXPECT_EQ(p.backup.id, "B2");
  EXPECT_EQ(p.stop.where, RecoveryStop::Where::after_record);
  EXPECT_EQ(setting(p, "recovery_target_xid"), "720");
  t.xid = 700;  // committed before B2: only B1 can stop there
  EXPECT_EQ(plan(t).backup.id, "B1");
  t.xid = 999;
  EXPECT_EQ(refusal(t).first, ExitCode::unreachable);

  t = {};
  t.kind = TargetKind::name;
  t.name = "before-upgrade";
  p = plan(t);
  EXPECT_EQ(p.backup.id, "B1");
  EXPECT_EQ(setting(p, "recovery_target_name"), "before-upgrade");
  t.name = "nope";
  EXPECT_NE(refusal(t).second.find("no restore point of that name"), std::string::npos);

  t = {};
  t.kind = TargetKind::immediate;
  p = plan(t);
  EXPECT_EQ(p.backup.id, "B2");
  EXPECT_EQ(p.wal.last, "000000010000000000000006");
  EXPECT_EQ(setting(p, "recovery_target"), "immediate");

  t = {};
  t.kind = TargetKind::latest;
  p = plan(t);
  EXPECT_EQ(p.backup.id, "B2");
  EXPECT_EQ(p.wal.last, "000000010000000000000008");
  EXPECT_EQ(setting(p, "recovery_target_action"), "<absent>");

  t = {};
  t.kind = TargetKind::lsn;
  t.lsn = L("0/7000000");
  EXPECT_EQ(plan(t).backup.id, "B2");
  EXPECT_EQ(setting(plan(t), "recovery_target_lsn"), "0/7000000");
  t.lsn = L("0/9000000");
  EXPECT_EQ(refusal(t).first, ExitCode::unreachable);
}

// Timeline 2 branched from timeline 1 at 0/7000100; timeline 1 went on (an old primary).
struct TwoTimelines : ::testing::Test {
  RepoState repo;
  FakeWal wal;
  void SetUp() override {
    repo.identity = {"7300000000000000001", 150018, kSeg};
    repo.histories.emplace(TL1, TimelineHistory(TL1));
    repo.histories.emplace(TL2, TimelineHistory(TL2, {{TL1, L("0/7000100"), "promoted"}}));
    repo.backups.push_back(backup("B1", TL1, "0/2000028", "0/2000100", "2026-12-03 10:00:00Z",
                                  "2026-12-03 10:00:05Z"));
    // Taken on timeline 1 after the switch: not an ancestor of timeline 2.
    repo.backups.push_back(backup("B-old-primary", TL1, "0/8000028", "0/8000100",
                                  "2026-12-03 12:50:00Z", "2026-12-03 12:50:05Z"));
    wal.ranges[TL1] = {{L("0/1000000"), L("0/9000000")}};
    wal.ranges[TL2] = {{L("0/7000000"), L("0/A000000")}};
    wal.commit(TL1, "0/2500000", "2026-12-03 10:30:00Z", 700);
    wal.commit(TL1, "0/7000050", "2026-12-03 12:00:00Z", 705);
    wal.commit(TL2, "0/8000000", "2026-12-03 13:00:00Z", 720);
    wal.commit(TL1, "0/8500000", "2026-12-03 13:10:00Z", 725);
    wal.commit(TL1, "0/8600000", "2026-12-03 13:20:00Z", 726);
  }
};

TEST_F(TwoTimelines, FollowsTheLatestTimelineFromAnAncestorBackup) {
  auto p = plan_recovery(repo, wal, time_target("2026-12-03 12:50:00Z"), "cmd");
  EXPECT_EQ(p.backup.id, "B1");  // B-old-primary is not on timeline 2's history
  EXPECT_EQ(p.stop.record->xid, 720u);
  EXPECT_EQ(p.wal.first, "000000010000000000000002");
  EXPECT_EQ(p.wal.last, "000000020000000000000008");
  EXPECT_EQ(p.wal.segments, 7u);
  ASSERT_EQ(p.timeline_path.size(), 2u);
  EXPECT_EQ(p.timeline_path[0], (TimelineSpan{TL1, Lsn(0), L("0/7000100")}));
  EXPECT_EQ(p.timeline_path[1].timeline, TL2);
  EXPECT_EQ(setting(p, "recovery_target_timeline"), "2");
}

TEST_F(TwoTimelines, AGivenTimelineUsesItsOwnHistory) {
  RecoveryTarget t = time_target("2026-12-03 13:15:00Z");
  t.timeline = {TimelineChoice::Kind::given, TL1};
  auto p = plan_recovery(repo, wal, t, "cmd");
  EXPECT_EQ(p.backup.id, "B-old-primary");
  EXPECT_EQ(p.stop.record->xid, 726u);
  EXPECT_EQ(setting(p, "recovery_target_timeline"), "1");

  t.timeline = {TimelineChoice::Kind::given, TimelineId(7)};
  EXPECT_THROW(plan_recovery(repo, wal, t, "cmd"), Error);
}

TEST_F(TwoTimelines, RefusesATimelineWhoseHistoryFileIsMissing) {
  // 00000002.history deleted: the catalog knows timeline 2 (its WAL) but not its parent.
  repo.histories.erase(TL2);
  repo.histories.emplace(TL2, TimelineHistory(TL2));
  for (auto choice : {TimelineChoice{TimelineChoice::Kind::latest, {}},
                      TimelineChoice{TimelineChoice::Kind::given, TL2}}) {
    RecoveryTarget t = time_target("2026-12-03 12:50:00Z");
    t.timeline = choice;
    try {
      plan_recovery(repo, wal, t, "cmd");
      ADD_FAILURE() << "not refused";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::unreachable);
      EXPECT_NE(std::string(e.what()).find("timeline 2 has no history file in the repository "
                                           "(00000002.history)"),
                std::string::npos)
          << e.what();
    }
  }
  // Timeline 1 needs none.
  RecoveryTarget t = time_target("2026-12-03 10:30:00Z");
  t.timeline = {TimelineChoice::Kind::given, TL1};
  EXPECT_EQ(plan_recovery(repo, wal, t, "cmd").backup.id, "B1");
}

TEST_F(TwoTimelines, TheSwitchSegmentMustComeFromTheNewTimeline) {
  // Timeline 2's copy of segment 7 (which holds the switch point) is missing: PostgreSQL
  // would read timeline 2's WAL from there, so the history is broken at segment 7.
  wal.ranges[TL2] = {{L("0/8000000"), L("0/A000000")}};
  try {
    plan_recovery(repo, wal, time_target("2026-12-03 12:50:00Z"), "cmd");
    ADD_FAILURE() << "not refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::unreachable);
    EXPECT_NE(std::string(e.what()).find("0/7000000 to 0/8000000 on timeline 2 is missing"),
              std::string::npos)
        << e.what();
  }
}

TEST(ComputeReach, FollowsFilesPerSegment) {
  TimelineHistory h(TL2, {{TL1, L("0/3000158"), ""}});
  WalRangesByTimeline wal;
  wal[TL1] = {{L("0/1000000"), L("0/3800000")}};  // a partial of segment 3 on timeline 1
  wal[TL2] = {{L("0/3000000"), L("0/5000000")}, {L("0/6000000"), L("0/6000200")}};
  auto r = compute_reach(h, wal, kSeg, L("0/1000028"));
  EXPECT_EQ(r.end, L("0/5000000"));
  EXPECT_EQ(r.limit, WalReach::Limit::missing);
  EXPECT_EQ(r.timeline, TL2);
  EXPECT_EQ(r.resumes, L("0/6000000"));
  r = compute_reach(h, wal, kSeg, L("0/6000010"));
  EXPECT_EQ(r.end, L("0/6000200"));
  EXPECT_EQ(r.limit, WalReach::Limit::end_of_archive);
  // Nothing at the start point at all.
  r = compute_reach(h, wal, kSeg, L("0/0000028"));
  EXPECT_EQ(r.end, L("0/0000028"));
  EXPECT_EQ(r.limit, WalReach::Limit::missing);
  EXPECT_EQ(r.resumes, L("0/1000000"));
}

TEST(TargetTime, ParsesWithAndWithoutZone) {
  EXPECT_EQ(parse_target_time("2026-12-03 14:05:00+02"), T("2026-12-03T12:05:00Z"));
  EXPECT_EQ(parse_target_time("2026-12-03T14:05:00.250-05:30"), T("2026-12-03 19:35:00.25Z"));
  EXPECT_EQ(parse_target_time("2026-12-03 14:05Z"), T("2026-12-03 14:05:00+00:00"));
  // Without a zone: the local zone of the process.
  const char* old = std::getenv("TZ");
  std::string saved = old ? old : "";
  setenv("TZ", "Europe/Berlin", 1);
  tzset();
  EXPECT_EQ(parse_target_time("2026-12-03 14:05:00"), T("2026-12-03 13:05:00Z"));  // CET
  EXPECT_EQ(parse_target_time("2026-07-03 14:05:00"), T("2026-07-03 12:05:00Z"));  // CEST
  setenv("TZ", "UTC", 1);
  tzset();
  EXPECT_EQ(parse_target_time("2026-12-03 14:05:00"), T("2026-12-03 14:05:00Z"));
  if (old)
    setenv("TZ", saved.c_str(), 1);
  else
    unsetenv("TZ");
  tzset();
  // Echoed back in UTC, with an offset, as PostgreSQL reads it.
  EXPECT_EQ(format_pg_utc(parse_target_time("2026-12-03 14:05:00.5+01:00")),
            "2026-12-03 13:05:00.500000+00");
  EXPECT_EQ(format_iso8601_utc(parse_target_time("2026-12-03 14:05:00+01:00")),
            "2026-12-03T13:05:00+00:00");
}

TEST(TargetTime, UnparsableIsAUsageError) {
  for (const char* bad : {"not-a-time", "2024-13-45T25:61:00+00:00", "2026-02-30 10:00", "",
                          "12:00", "2026-12-03 14:05:00 +99"}) {
    try {
      parse_target_time(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::usage) << bad;
    }
  }
}

TEST(TargetOptions, ActionAndTimeline) {
  EXPECT_EQ(parse_target_action("promote"), TargetAction::promote);
  EXPECT_EQ(parse_target_action("shutdown"), TargetAction::shutdown);
  EXPECT_EQ(parse_target_action("pause"), TargetAction::pause);
  EXPECT_FALSE(parse_target_action("resume"));
  EXPECT_EQ(parse_timeline_choice("latest")->kind, TimelineChoice::Kind::latest);
  EXPECT_EQ(parse_timeline_choice("current")->kind, TimelineChoice::Kind::current);
  EXPECT_EQ(parse_timeline_choice("3")->timeline, TimelineId(3));
  EXPECT_FALSE(parse_timeline_choice("0"));
  EXPECT_FALSE(parse_timeline_choice("x"));
}

}  // namespace
}  // namespace walvault
