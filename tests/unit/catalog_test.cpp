// The catalog, the repository's WAL view and the planner over a repository made of the real
// WAL fixture (tests/fixtures/wal): two 1 MB segments of timeline 1.

#include "pitr/catalog.h"

#include <gtest/gtest.h>

#include "core/backup_info.h"
#include "core/error.h"
#include "core/lz4_frame.h"
#include "pitr/wal_files.h"

namespace walvault {
namespace {

const fs::path kFixtureDir = fs::path(WALVAULT_SOURCE_DIR) / "tests/fixtures/wal";
constexpr uint64_t kSeg = 1 << 20;
const char* kSeg7 = "000000010000000000000007";
const char* kSeg8 = "000000010000000000000008";

class TempRepo {
 public:
  TempRepo() {
    std::string tmpl = (fs::temp_directory_path() / "walvault-catalog-test-XXXXXX").string();
    root_ = ::mkdtemp(tmpl.data());
    write_file_durable(root_ / "walvault.json",
                       "{\"format_version\":1,\"system_identifier\":\"7300\","
                       "\"pg_version_num\":150018,\"wal_segment_size\":1048576}\n");
    fs::create_directories(root_ / "wal/00000001");
    fs::create_directories(root_ / "backups");
    for (const char* s : {kSeg7, kSeg8}) {
      fs::copy_file(kFixtureDir / (std::string(s) + ".lz4"),
                    root_ / "wal/00000001" / (std::string(s) + ".lz4"));
    }
  }
  ~TempRepo() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  const fs::path& root() const { return root_; }
  fs::path wal(const std::string& name) const { return root_ / "wal/00000001" / name; }

  void add_backup(const std::string& id, const char* start, const char* stop, Timestamp start_time,
                  Timestamp stop_time) {
    BackupInfo b;
    b.id = id;
    b.status = BackupStatus::complete;
    b.timeline = b.stop_timeline = TimelineId(1);
    b.start_lsn = *Lsn::parse(start);
    b.stop_lsn = *Lsn::parse(stop);
    b.start_time = start_time;
    b.stop_time = stop_time;
    fs::create_directories(root_ / "backups" / id);
    write_file_durable(root_ / "backups" / id / "backup.json", to_json(b).dump());
  }

 private:
  fs::path root_;
};

std::vector<std::byte> decoded(const fs::path& lz4) {
  std::vector<std::byte> out;
  decode_lz4_file(lz4,
                  [&](std::span<const std::byte> d) { out.insert(out.end(), d.begin(), d.end()); });
  return out;
}

// The events of the fixture, read straight from the bytes (the scanner is checked against
// pg_waldump in wal_records_test).
std::vector<WalEvent> fixture_events() {
  auto a = decoded(kFixtureDir / (std::string(kSeg7) + ".lz4"));
  auto b = decoded(kFixtureDir / (std::string(kSeg8) + ".lz4"));
  a.insert(a.end(), b.begin(), b.end());
  return scan_wal_events(Lsn(7 * kSeg), a, kSeg, 15);
}

std::vector<WalEvent> xacts() {
  std::vector<WalEvent> out;
  for (const auto& e : fixture_events()) {
    if (e.is_xact()) out.push_back(e);
  }
  return out;
}

Timestamp minus_us(Timestamp t, int64_t us) {
  return Timestamp{t.unix_us - us};
}

TEST(Catalog, InfoOverARealSegmentPair) {
  TempRepo repo;
  const auto ev = xacts();
  ASSERT_GE(ev.size(), 10u);
  repo.add_backup("B1", "0/700028", ev[2].end_lsn.str().c_str(), minus_us(ev[0].time, 1000),
                  ev[2].time);
  const Repository r = Repository::open(repo.root());
  Catalog c(r);
  ASSERT_EQ(c.timelines().size(), 1u);
  EXPECT_EQ(c.timelines()[0].ranges, (std::vector<WalRange>{{Lsn(7 * kSeg), Lsn(9 * kSeg)}}));
  EXPECT_TRUE(c.gaps().empty());
  const RecoverableWindow& w = c.window();
  ASSERT_TRUE(w.from_time && w.to_time && w.to_lsn);
  EXPECT_EQ(*w.from_time, ev[2].time);
  EXPECT_EQ(*w.to_time, ev.back().time);  // the newest commit of the fixture
  EXPECT_EQ(*w.to_lsn, Lsn(9 * kSeg));
  Json j = c.to_json();
  EXPECT_EQ(j["recoverable"]["to_lsn"], "0/900000");
  EXPECT_EQ(j["backups"][0]["id"], "B1");
  EXPECT_NE(c.to_text().find("B1"), std::string::npos);
}

TEST(Catalog, PlansATimeTargetOnRealWal) {
  TempRepo repo;
  const auto ev = xacts();
  repo.add_backup("B1", "0/700028", ev[1].end_lsn.str().c_str(), minus_us(ev[0].time, 1000),
                  ev[1].time);
  const Repository r = Repository::open(repo.root());
  Catalog c(r);
  // Between two commits: recovery stops before the later one. The big commit that crosses
  // into segment 8 is found as well.
  for (size_t i = 3; i + 1 < ev.size(); ++i) {
    if (ev[i + 1].time <= ev[i].time) continue;
    RecoveryTarget t;
    t.kind = TargetKind::time;
    t.time = Timestamp{ev[i].time.unix_us + (ev[i + 1].time.unix_us - ev[i].time.unix_us) / 2};
    const RecoveryPlan p = plan_recovery(c.state(), c.wal(), t, "cmd");
    ASSERT_TRUE(p.stop.record);
    EXPECT_EQ(p.stop.record->lsn, ev[i + 1].lsn) << i;
    EXPECT_EQ(p.wal.last, wal_file_name(TimelineId(1),
                                        segment_of(Lsn(ev[i + 1].end_lsn.value - 1), kSeg), kSeg));
  }
}

TEST(Catalog, PartialSegmentEndsAtItsLastWholeRecord) {
  TempRepo repo;
  const auto ev = xacts();
  repo.add_backup("B1", "0/700028", ev[1].end_lsn.str().c_str(), minus_us(ev[0].time, 1000),
                  ev[1].time);
  // Replace segment 8 by a .partial holding its first 0x2540 bytes (the last commit of the
  // fixture, at 0/802528, ends at 0/80254A: cut inside it).
  auto seg8 = decoded(repo.wal(std::string(kSeg8) + ".lz4"));
  fs::remove(repo.wal(std::string(kSeg8) + ".lz4"));
  Lz4FrameEncoder enc;
  std::vector<std::byte> frame(Lz4FrameEncoder::kHeaderBytes + Lz4FrameEncoder::max_block_bytes() +
                               Lz4FrameEncoder::kEndBytes);
  size_t n = enc.write_header(frame.data());
  n += enc.write_block({seg8.data(), 0x2540}, frame.data() + n);
  n += enc.write_end(frame.data() + n);
  write_file_durable(repo.wal(std::string(kSeg8) + ".lz4.partial"),
                     std::string_view(reinterpret_cast<const char*>(frame.data()), n));
  const Repository r = Repository::open(repo.root());
  Catalog c(r);
  ASSERT_TRUE(c.timelines()[0].partial);
  EXPECT_EQ(c.timelines()[0].ranges.back().end, Lsn(8 * kSeg + 0x2540));
  const WalReach reach = c.wal().reach(TimelineHistory(TimelineId(1)), Lsn(0x700028));
  EXPECT_EQ(reach.limit, WalReach::Limit::end_of_archive);
  EXPECT_LT(reach.end, Lsn(8 * kSeg + 0x2540));
  // Up to the last whole record: after the commit before the cut one, before the cut one.
  EXPECT_GE(reach.end, ev[ev.size() - 2].end_lsn);
  EXPECT_LE(reach.end, ev.back().lsn);
  EXPECT_EQ(*c.window().to_time, ev[ev.size() - 2].time);

  // wal-get's view of the same file: the durable prefix.
  auto file = find_wal_file(r, TimelineId(1), SegmentNo(8));
  ASSERT_TRUE(file && file->partial);
  EXPECT_EQ(read_wal_file(*file, kSeg).bytes.size(), 0x2540u);
}

TEST(Catalog, DamagedSegmentIsReportedNotSkipped) {
  TempRepo repo;
  const auto ev = xacts();
  repo.add_backup("B1", "0/700028", ev[1].end_lsn.str().c_str(), minus_us(ev[0].time, 1000),
                  ev[1].time);
  // Segment 7 uncompressed, with one byte of a commit record flipped.
  auto seg7 = decoded(repo.wal(std::string(kSeg7) + ".lz4"));
  fs::remove(repo.wal(std::string(kSeg7) + ".lz4"));
  seg7[ev[5].lsn.value - 7 * kSeg + 26] ^= std::byte{1};
  write_file_durable(repo.wal(kSeg7),
                     std::string_view(reinterpret_cast<const char*>(seg7.data()), seg7.size()));
  const Repository r = Repository::open(repo.root());
  Catalog c(r);
  RecoveryTarget t;
  t.kind = TargetKind::time;
  t.time = ev.back().time;
  t.inclusive = false;
  try {
    plan_recovery(c.state(), c.wal(), t, "cmd");
    ADD_FAILURE() << "planned across damaged WAL";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(kSeg7), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("checksum"), std::string::npos) << e.what();
  }
  auto file = find_wal_file(r, TimelineId(1), SegmentNo(7));
  ASSERT_TRUE(file);
  EXPECT_EQ(read_wal_file(*file, kSeg).bytes.size(), kSeg);  // the file itself reads fine
}

TEST(Catalog, GapsAlongTheHistory) {
  const TimelineId t1(1), t2(2);
  TimelineHistory h(t2, {{t1, Lsn(0x5000100), ""}});
  WalRangesByTimeline wal;
  wal[t1] = {{Lsn(0x1000000), Lsn(0x3000000)}, {Lsn(0x3800000), Lsn(0x4800000)}};
  wal[t2] = {{Lsn(0x5000000), Lsn(0x7000000)}};
  auto gaps = find_gaps(wal, h, 1 << 24 >> 4);  // 1 MB segments
  ASSERT_EQ(gaps.size(), 2u);
  EXPECT_EQ(gaps[0], (WalGap{t1, Lsn(0x3000000), Lsn(0x3800000)}));
  EXPECT_EQ(gaps[1], (WalGap{t1, Lsn(0x4800000), Lsn(0x5000000)}));  // before timeline 2 begins
}

}  // namespace
}  // namespace walvault
