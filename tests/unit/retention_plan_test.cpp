// The retention planner (pitr/retention.h) on hand-made repositories: every policy, timelines,
// gaps, partial segments, backups in progress or dead, snapshots.

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "pitr/retention.h"

namespace walvault {
namespace {

constexpr uint64_t kSeg = 1 << 20;  // 1 MiB segments, as the integration tests use

Timestamp T(const char* s) {
  return parse_timestamp(s)->time;
}
Timestamp hours_after(Timestamp t, double h) {
  return Timestamp{t.unix_us + int64_t(std::llround(h * 3600e6))};
}
// An LSN inside segment `seg` (1 MiB segments).
Lsn in_seg(uint64_t seg, uint64_t offset = 0x28) {
  return Lsn(seg * kSeg + offset);
}

const Timestamp kNoon = T("2026-12-03T12:00:00Z");

BackupInfo backup(const std::string& id, BackupStatus status, uint32_t tli, uint64_t start_seg,
                  Timestamp start_time, double duration_h = 0.1) {
  BackupInfo b;
  b.id = id;
  b.label = id;
  b.status = status;
  b.timeline = TimelineId(tli);
  b.stop_timeline = TimelineId(tli);
  b.start_lsn = in_seg(start_seg);
  b.stop_lsn = in_seg(start_seg, 0x2000);
  b.start_time = start_time;
  b.stop_time = hours_after(start_time, duration_h);
  return b;
}

WalFileEntry wal_file(uint32_t tli, uint64_t segno, bool partial = false) {
  WalFileEntry f;
  f.timeline = TimelineId(tli);
  f.segno = SegmentNo(segno);
  f.compression = Compression::lz4;
  f.partial = partial;
  f.path = fs::path("/repo/wal") / TimelineId(tli).hex() /
           (wal_file_name(TimelineId(tli), SegmentNo(segno), kSeg) + ".lz4" +
            (partial ? ".partial" : ""));
  return f;
}

// Files first..last on tli; the last one a .partial when asked.
void add_wal(RetentionInput& in, uint32_t tli, uint64_t first, uint64_t last,
             bool last_partial = false) {
  auto& files = in.wal[TimelineId(tli)];
  for (uint64_t s = first; s <= last; ++s)
    files.push_back(wal_file(tli, s, last_partial && s == last));
}

// Timeline `tli` whose ancestors switched at the given points: {parent, switch segment}.
void add_history(RetentionInput& in, uint32_t tli,
                 std::vector<std::pair<uint32_t, uint64_t>> switches) {
  std::vector<TimelineSwitch> sw;
  for (auto [parent, seg] : switches) sw.push_back({TimelineId(parent), in_seg(seg, 0x5000), ""});
  in.histories.emplace(TimelineId(tli), TimelineHistory(TimelineId(tli), sw));
}

RetentionInput linear_repo() {
  RetentionInput in;
  in.segment_size_bytes = kSeg;
  add_history(in, 1, {});
  add_wal(in, 1, 1, 14, true);
  in.backups.push_back(backup("B1", BackupStatus::complete, 1, 2, hours_after(kNoon, -96)));
  in.backups.push_back(backup("B2", BackupStatus::complete, 1, 5, hours_after(kNoon, -72)));
  in.backups.push_back(backup("B3", BackupStatus::complete, 1, 8, hours_after(kNoon, -48)));
  in.backups.push_back(backup("B4", BackupStatus::complete, 1, 11, hours_after(kNoon, -24)));
  return in;
}

std::vector<std::string> ids(const std::vector<BackupInfo>& v) {
  std::vector<std::string> out;
  for (const auto& b : v) out.push_back(b.id);
  return out;
}
std::vector<std::string> ids(const std::vector<BackupRemoval>& v) {
  std::vector<std::string> out;
  for (const auto& b : v) out.push_back(b.id);
  return out;
}
std::vector<uint64_t> segnos(const WalRemoval& r) {
  std::vector<uint64_t> out;
  for (const auto& f : r.files) out.push_back(f.segno.value);
  return out;
}
const WalRemoval* wal_of(const RetentionPlan& p, uint32_t tli) {
  for (const auto& w : p.wal) {
    if (w.timeline == TimelineId(tli)) return &w;
  }
  return nullptr;
}
std::vector<uint64_t> range(uint64_t a, uint64_t b) {
  std::vector<uint64_t> out;
  for (uint64_t i = a; i <= b; ++i) out.push_back(i);
  return out;
}
bool any_note(const RetentionPlan& p, const std::string& text) {
  for (const auto& n : p.notes) {
    if (n.find(text) != std::string::npos) return true;
  }
  return false;
}

// ---------------------------------------------------------------- policies

TEST(RetentionPolicy, RejectsWhatWouldRemoveEverything) {
  EXPECT_THROW(RetentionPolicy::retain_full(0), Error);
  EXPECT_THROW(RetentionPolicy::retain_days(0), Error);
  EXPECT_THROW(RetentionPolicy::retain_days(-1), Error);
  EXPECT_THROW(RetentionPolicy::retain_days(std::nan("")), Error);
  try {
    RetentionPolicy::retain_full(0);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::usage);
  }
  EXPECT_EQ(RetentionPolicy::retain_full(3).describe(), "--retain-full 3");
  EXPECT_EQ(RetentionPolicy::retain_days(0.5).describe(), "--retain-days 0.5");
}

TEST(RetentionPlan, RetainFullKeepsTheNewestCompleteBackupsAndTheWalFromTheOldestKeptStart) {
  const RetentionInput in = linear_repo();
  const RetentionPlan p = plan_retention(in, RetentionPolicy::retain_full(2), kNoon);
  EXPECT_EQ(ids(p.kept_backups), (std::vector<std::string>{"B3", "B4"}));
  EXPECT_EQ(ids(p.backups), (std::vector<std::string>{"B1", "B2"}));
  EXPECT_NE(p.backups[0].reason.find("beyond --retain-full 2"), std::string::npos);
  ASSERT_TRUE(p.window_start);
  EXPECT_EQ(*p.window_start, in.backups[2].stop_time);
  ASSERT_EQ(p.wal.size(), 1u);
  EXPECT_EQ(segnos(p.wal[0]), range(1, 7));  // B3 starts in segment 8
  EXPECT_EQ(p.wal[0].keep_from, in.backups[2].start_lsn);
}

TEST(RetentionPlan, RetainFullWithEnoughBackupsRemovesNothing) {
  const RetentionInput in = linear_repo();
  const RetentionPlan p = plan_retention(in, RetentionPolicy::retain_full(4), kNoon);
  EXPECT_EQ(p.kept_backups.size(), 4u);
  EXPECT_TRUE(p.backups.empty());
  ASSERT_EQ(p.wal.size(), 1u);  // the segment before B1's start only
  EXPECT_EQ(segnos(p.wal[0]), range(1, 1));
  const RetentionPlan p10 = plan_retention(in, RetentionPolicy::retain_full(10), kNoon);
  EXPECT_EQ(p10.kept_backups.size(), 4u);
  EXPECT_TRUE(p10.backups.empty());
}

TEST(RetentionPlan, OnlyCompleteBackupsCountAndOlderFailedOnesGoToo) {
  RetentionInput in = linear_repo();
  // A failed backup between B3 and B4, a dead one ("running", nobody holds its lock) before
  // B3, and a failed one after B4.
  in.backups.push_back(backup("F1", BackupStatus::failed, 1, 9, hours_after(kNoon, -36)));
  in.backups.push_back(backup("D1", BackupStatus::running, 1, 6, hours_after(kNoon, -60)));
  in.backups.push_back(backup("F2", BackupStatus::failed, 1, 13, hours_after(kNoon, -1)));
  const RetentionPlan p = plan_retention(in, RetentionPolicy::retain_full(1), kNoon);
  EXPECT_EQ(ids(p.kept_backups), (std::vector<std::string>{"B4"}));
  // Oldest first by start time; F2 is newer than B4, kept.
  EXPECT_EQ(ids(p.backups), (std::vector<std::string>{"B1", "B2", "D1", "B3", "F1"}));
  for (const auto& r : p.backups) {
    if (r.id == "D1") {
      EXPECT_NE(r.reason.find("never completed"), std::string::npos) << r.reason;
    }
    if (r.id == "F1") {
      EXPECT_NE(r.reason.find("failed, started before the newest complete backup B4"),
                std::string::npos)
          << r.reason;
    }
  }
  EXPECT_EQ(segnos(p.wal[0]), range(1, 10));
  // With B3 kept too, the failed backup between B3 and B4 still goes (B4 supersedes it), and
  // the dead one before B3 with it; F2, newer than every complete backup, stays.
  const RetentionPlan p2 = plan_retention(in, RetentionPolicy::retain_full(2), kNoon);
  EXPECT_EQ(ids(p2.kept_backups), (std::vector<std::string>{"B3", "B4"}));
  EXPECT_EQ(ids(p2.backups), (std::vector<std::string>{"B1", "B2", "D1", "F1"}));
  EXPECT_EQ(segnos(p2.wal[0]), range(1, 7));
}

TEST(RetentionPlan, TheOnlyCompleteBackupIsNeverRemoved) {
  RetentionInput in;
  in.segment_size_bytes = kSeg;
  add_history(in, 1, {});
  add_wal(in, 1, 1, 6);
  in.backups.push_back(backup("B1", BackupStatus::complete, 1, 3, hours_after(kNoon, -24 * 30)));
  for (const RetentionPolicy& policy :
       {RetentionPolicy::retain_full(1), RetentionPolicy::retain_days(1),
        RetentionPolicy::retain_days(0.001)}) {
    const RetentionPlan p = plan_retention(in, policy, kNoon);
    EXPECT_EQ(ids(p.kept_backups), (std::vector<std::string>{"B1"})) << policy.describe();
    EXPECT_TRUE(p.backups.empty()) << policy.describe();
    ASSERT_EQ(p.wal.size(), 1u);
    EXPECT_EQ(segnos(p.wal[0]), range(1, 2));
  }
}

TEST(RetentionPlan, WithoutACompleteBackupNothingIsRemoved) {
  RetentionInput in;
  in.segment_size_bytes = kSeg;
  add_history(in, 1, {});
  add_wal(in, 1, 1, 6);
  in.backups.push_back(backup("F1", BackupStatus::failed, 1, 3, hours_after(kNoon, -24 * 30)));
  SnapshotInfo s;
  s.id = "S1";
  s.name = "data";
  s.time = hours_after(kNoon, -24 * 40);
  in.snapshots.push_back(s);
  const RetentionPlan p = plan_retention(in, RetentionPolicy::retain_full(1), kNoon);
  EXPECT_TRUE(p.empty());
  EXPECT_TRUE(p.kept_backups.empty());
  EXPECT_FALSE(p.window_start);
  EXPECT_TRUE(any_note(p, "no complete backup"));
}

TEST(RetentionPlan, RetainDaysKeepsTheWindowAndTheNewestBackupThatStoppedBeforeIt) {
  const RetentionInput in = linear_repo();  // stops at -96, -72, -48, -24 h (+6 min)
  // 2.5 days: the window starts at -60 h: B3 and B4 stopped in it, B2 is the newest before.
  const RetentionPlan p = plan_retention(in, RetentionPolicy::retain_days(2.5), kNoon);
  EXPECT_EQ(ids(p.kept_backups), (std::vector<std::string>{"B2", "B3", "B4"}));
  EXPECT_EQ(ids(p.backups), (std::vector<std::string>{"B1"}));
  EXPECT_NE(p.backups[0].reason.find("2.5-day window"), std::string::npos) << p.backups[0].reason;
  EXPECT_EQ(segnos(p.wal[0]), range(1, 4));  // B2 starts in segment 5
  // A backup that stopped exactly at the window's start is in the window.
  const Timestamp at_cutoff = hours_after(in.backups[2].stop_time, 0);
  const RetentionPlan q = plan_retention(in, RetentionPolicy::retain_days(1),
                                         Timestamp{at_cutoff.unix_us + 86'400'000'000LL});
  EXPECT_EQ(ids(q.kept_backups), (std::vector<std::string>{"B2", "B3", "B4"}));
  // One microsecond later B3 is before the window, and the newest before it: B2 goes.
  const RetentionPlan r = plan_retention(in, RetentionPolicy::retain_days(1),
                                         Timestamp{at_cutoff.unix_us + 86'400'000'001LL});
  EXPECT_EQ(ids(r.kept_backups), (std::vector<std::string>{"B3", "B4"}));
  // Every backup older than the window: the newest stays.
  const RetentionPlan s =
      plan_retention(in, RetentionPolicy::retain_days(0.5), hours_after(kNoon, 24 * 10));
  EXPECT_EQ(ids(s.kept_backups), (std::vector<std::string>{"B4"}));
  EXPECT_EQ(ids(s.backups), (std::vector<std::string>{"B1", "B2", "B3"}));
}

// ---------------------------------------------------------------- backups in progress

TEST(RetentionPlan, ABackupInProgressIsNeverRemovedAndHoldsItsWal) {
  RetentionInput in = linear_repo();
  // Started before B3 (a long backup) and still running: its start LSN is known.
  in.backups.push_back(backup("R1", BackupStatus::running, 1, 6, hours_after(kNoon, -60)));
  in.backups_in_progress.insert("R1");
  const RetentionPlan p = plan_retention(in, RetentionPolicy::retain_full(1), kNoon);
  EXPECT_EQ(ids(p.backups), (std::vector<std::string>{"B1", "B2", "B3"}));
  EXPECT_EQ(segnos(p.wal[0]), range(1, 5));  // R1 starts in segment 6
  // Not yet known (BASE_BACKUP has not told it): no WAL is removed at all.
  in.backups.back().start_lsn = Lsn();
  const RetentionPlan q = plan_retention(in, RetentionPolicy::retain_full(1), kNoon);
  EXPECT_EQ(ids(q.backups), (std::vector<std::string>{"B1", "B2", "B3"}));
  EXPECT_TRUE(q.wal.empty());
  EXPECT_TRUE(any_note(q, "backup R1 is in progress"));
}

TEST(RetentionPlan, BackupDirectoriesWithoutAReadableBackupJson) {
  RetentionInput in = linear_repo();
  in.unreadable_backups.push_back({"20261130T000000Z", false, "it has no backup.json"});
  in.unreadable_backups.push_back({"20261203T110000Z-2", false, "it has no backup.json"});
  in.unreadable_backups.push_back({"20261129T000000Z", true, "its backup.json cannot be read"});
  in.unreadable_backups.push_back({"my-copy", false, "it has no backup.json"});
  in.unreadable_backups.push_back({"20261128T000000Z", false, "it has no backup.json"});
  in.backups_in_progress.insert("20261128T000000Z");  // being claimed right now
  const RetentionPlan p = plan_retention(in, RetentionPolicy::retain_full(1), kNoon);
  // B4 started 2026-12-02T12:00Z: of the directories without backup.json only the first is
  // older (and nobody is writing it); removals are ordered by start time (B1: 11-29 12:00).
  std::vector<std::string> removed = ids(p.backups);
  EXPECT_EQ(removed, (std::vector<std::string>{"B1", "20261130T000000Z", "B2", "B3"}));
  EXPECT_FALSE(p.backups[1].has_backup_json);
  EXPECT_TRUE(any_note(p, "backup directory 20261129T000000Z is left alone"));
  EXPECT_TRUE(any_note(p, "backups/my-copy is left alone"));
}

// ---------------------------------------------------------------- timelines

// TL1 -> TL2 (switch in segment 6) -> TL3 (switch in segment 10). TL1's last segment is a
// .partial (the promotion); TL2's too.
RetentionInput timeline_repo() {
  RetentionInput in;
  in.segment_size_bytes = kSeg;
  add_history(in, 1, {});
  add_history(in, 2, {{1, 6}});
  add_history(in, 3, {{1, 6}, {2, 10}});
  add_wal(in, 1, 1, 6, true);
  add_wal(in, 2, 6, 10, true);
  add_wal(in, 3, 10, 14, true);
  in.backups.push_back(backup("B1", BackupStatus::complete, 1, 2, hours_after(kNoon, -72)));
  in.backups.push_back(backup("B2", BackupStatus::complete, 2, 8, hours_after(kNoon, -48)));
  in.backups.push_back(backup("B3", BackupStatus::complete, 3, 12, hours_after(kNoon, -24)));
  return in;
}

TEST(RetentionPlan, TimelinesAKeptBackupOnALaterTimelineNeedsNothingOfTheEarlierOne) {
  const RetentionInput in = timeline_repo();
  const RetentionPlan p = plan_retention(in, RetentionPolicy::retain_full(2), kNoon);
  EXPECT_EQ(ids(p.kept_backups), (std::vector<std::string>{"B2", "B3"}));
  const WalRemoval* t1 = wal_of(p, 1);
  ASSERT_TRUE(t1);
  EXPECT_EQ(segnos(*t1), range(1, 6));  // all of it, the .partial included
  EXPECT_FALSE(t1->keep_from);
  EXPECT_TRUE(t1->files.back().partial);
  const WalRemoval* t2 = wal_of(p, 2);
  ASSERT_TRUE(t2);
  EXPECT_EQ(segnos(*t2), range(6, 7));  // B2 starts in segment 8 of TL2
  EXPECT_EQ(wal_of(p, 3), nullptr);     // TL3 begins after B2's start: all of it is needed
}

TEST(RetentionPlan, TimelinesAKeptBackupOnAnAncestorKeepsEveryDescendantFromItsSwitchPoint) {
  const RetentionInput in = timeline_repo();
  const RetentionPlan p = plan_retention(in, RetentionPolicy::retain_full(3), kNoon);
  const WalRemoval* t1 = wal_of(p, 1);
  ASSERT_TRUE(t1);
  EXPECT_EQ(segnos(*t1), range(1, 1));  // B1 starts in segment 2
  EXPECT_EQ(wal_of(p, 2), nullptr);
  EXPECT_EQ(wal_of(p, 3), nullptr);
  const RetentionPlan q = plan_retention(in, RetentionPolicy::retain_full(1), kNoon);
  EXPECT_EQ(segnos(*wal_of(q, 1)), range(1, 6));
  EXPECT_EQ(segnos(*wal_of(q, 2)), range(6, 10));
  EXPECT_EQ(segnos(*wal_of(q, 3)), range(10, 11));
}

TEST(RetentionPlan, TimelinesABranchThatLeftBeforeTheOldestKeptBackupIsRemoved) {
  RetentionInput in;
  in.segment_size_bytes = kSeg;
  add_history(in, 1, {});
  add_history(in, 2, {{1, 4}});  // a promotion tried at segment 4, abandoned
  add_history(in, 3, {{1, 9}});  // the real one, after B1
  add_wal(in, 1, 1, 9, true);
  add_wal(in, 2, 4, 5, true);
  add_wal(in, 3, 9, 12, true);
  in.backups.push_back(backup("B1", BackupStatus::complete, 1, 7, hours_after(kNoon, -24)));
  const RetentionPlan p = plan_retention(in, RetentionPolicy::retain_full(1), kNoon);
  EXPECT_EQ(segnos(*wal_of(p, 1)), range(1, 6));
  EXPECT_EQ(segnos(*wal_of(p, 2)), range(4, 5));
  EXPECT_EQ(wal_of(p, 3), nullptr);
  // If the abandoned branch were the newest timeline, the archiver could be writing it: kept.
  in.histories.erase(TimelineId(3));
  in.wal.erase(TimelineId(3));
  const RetentionPlan q = plan_retention(in, RetentionPolicy::retain_full(1), kNoon);
  EXPECT_EQ(wal_of(q, 2), nullptr);
  EXPECT_TRUE(any_note(q, "timeline 2: no kept backup reaches it, but it is the newest"));
}

TEST(RetentionPlan, TimelinesWithUnknownAncestryAreKept) {
  RetentionInput in = timeline_repo();
  in.histories.erase(TimelineId(2));
  in.unknown_ancestry.insert(TimelineId(2));
  const RetentionPlan p = plan_retention(in, RetentionPolicy::retain_full(1), kNoon);
  EXPECT_EQ(wal_of(p, 2), nullptr);
  EXPECT_TRUE(any_note(p, "timeline 2: its ancestry is unknown"));
  EXPECT_EQ(segnos(*wal_of(p, 1)), range(1, 6));
}

TEST(RetentionPlan, ABackupStartingExactlyAtASwitchPointReachesTheNextTimeline) {
  RetentionInput in;
  in.segment_size_bytes = kSeg;
  add_history(in, 1, {});
  add_history(in, 2, {{1, 6}});
  add_wal(in, 1, 1, 6, true);
  add_wal(in, 2, 6, 8, true);
  BackupInfo b = backup("B1", BackupStatus::complete, 1, 6, hours_after(kNoon, -1));
  b.start_lsn = in_seg(6, 0x5000);  // the switch point itself
  in.backups.push_back(b);
  const RetentionPlan p = plan_retention(in, RetentionPolicy::retain_full(1), kNoon);
  EXPECT_EQ(segnos(*wal_of(p, 1)), range(1, 5));
  EXPECT_EQ(wal_of(p, 2), nullptr);
}

// ---------------------------------------------------------------- gaps

TEST(RetentionPlan, GapRecordsInRemovedWalAreDropped) {
  RetentionInput in = linear_repo();
  in.recorded_gaps[TimelineId(1)] = {
      {TimelineId(1), in_seg(3, 0x100), in_seg(4), "", ""},    // wholly below B3 (segment 8)
      {TimelineId(1), in_seg(9, 0x100), in_seg(10), "", ""}};  // after it: stays
  const RetentionPlan p = plan_retention(in, RetentionPolicy::retain_full(2), kNoon);
  ASSERT_EQ(p.wal.size(), 1u);
  EXPECT_EQ(p.wal[0].gaps_dropped, 1u);
  EXPECT_EQ(p.wal[0].gaps_kept, 1u);
}

// ---------------------------------------------------------------- snapshots

SnapshotInfo snap(const std::string& id, const std::string& name, Timestamp t) {
  SnapshotInfo s;
  s.id = id;
  s.name = name;
  s.time = t;
  return s;
}

std::vector<std::string> snapshot_ids(const std::vector<SnapshotRemoval>& v) {
  std::vector<std::string> out;
  for (const auto& s : v) out.push_back(s.snapshot.id);
  return out;
}
std::vector<std::string> snapshot_ids(const std::vector<SnapshotInfo>& v) {
  std::vector<std::string> out;
  for (const auto& s : v) out.push_back(s.id);
  return out;
}

TEST(RetentionPlan, SnapshotsBeforeTheWindowGoExceptTheNewestAtOrBeforeItsStart) {
  RetentionInput in = linear_repo();
  const Timestamp w = in.backups[2].stop_time;  // B3: the oldest kept with --retain-full 2
  in.snapshots = {snap("d1", "data", hours_after(w, -3)),
                  snap("d2", "data", hours_after(w, -2)),
                  snap("d3", "data", w),  // exactly at the window's start: the one it uses
                  snap("d4", "data", hours_after(w, 1)),
                  snap("c1", "certs", hours_after(w, -50)),
                  snap("c2", "certs", hours_after(w, -40))};
  const RetentionPlan p = plan_retention(in, RetentionPolicy::retain_full(2), kNoon);
  EXPECT_EQ(snapshot_ids(p.snapshots), (std::vector<std::string>{"c1", "d1", "d2"}));
  EXPECT_EQ(snapshot_ids(p.kept_snapshots), (std::vector<std::string>{"c2", "d3", "d4"}));
  EXPECT_NE(p.snapshots[1].reason.find("taken before d3"), std::string::npos)
      << p.snapshots[1].reason;
  EXPECT_TRUE(p.expire_objects);
}

TEST(RetentionPlan, SnapshotsNamedByAKeptBackupAreKept) {
  RetentionInput in = linear_repo();
  const Timestamp w = in.backups[2].stop_time;
  in.backups[2].snapshots = {"d1"};  // walvault backup --dir took d1 with B3
  in.snapshots = {snap("d1", "data", hours_after(w, -3)), snap("d2", "data", hours_after(w, -2))};
  const RetentionPlan p = plan_retention(in, RetentionPolicy::retain_full(2), kNoon);
  EXPECT_TRUE(p.snapshots.empty());
  EXPECT_EQ(snapshot_ids(p.kept_snapshots), (std::vector<std::string>{"d1", "d2"}));
}

TEST(RetentionPlan, ADamagedSnapshotJsonStopsObjectExpiry) {
  RetentionInput in = linear_repo();
  in.snapshot_problems.push_back("snapshot x: snapshot.json is damaged");
  const RetentionPlan p = plan_retention(in, RetentionPolicy::retain_full(2), kNoon);
  EXPECT_FALSE(p.expire_objects);
  EXPECT_TRUE(any_note(p, "no store object is removed"));
}

}  // namespace
}  // namespace walvault
