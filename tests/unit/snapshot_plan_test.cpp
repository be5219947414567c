#include <gtest/gtest.h>

#include "core/backup_info.h"
#include "core/error.h"
#include "snapshot/snapshot_manifest.h"
#include "snapshot/snapshot_restore.h"

namespace walvault {
namespace {

Timestamp at(const char* text) {
  return parse_timestamp(text)->time;
}

SnapshotInfo info(const std::string& id, const std::string& name, const char* time) {
  SnapshotInfo s;
  s.id = id;
  s.name = name;
  s.time = at(time);
  s.start_time = s.time;
  return s;
}

std::vector<SnapshotInfo> repo_snapshots() {
  return {info("a1", "data", "2026-12-03T13:00:00Z"), info("c1", "certs", "2026-12-03T13:00:00Z"),
          info("a2", "data", "2026-12-03T14:00:00Z"), info("a3", "data", "2026-12-03T14:05:00Z"),
          info("a4", "data", "2026-12-03T15:00:00Z")};
}

TEST(SnapshotPlan, NewestAtOrBeforeTheTarget) {
  const auto all = repo_snapshots();
  auto plans = plan_dir_restores(all, {{"data", "/r/data"}, {"certs", "/r/certs"}},
                                 at("2026-12-03T14:05:00Z"));
  ASSERT_EQ(plans.size(), 2u);
  EXPECT_EQ(plans[0].snapshot.id, "a3");  // exactly at the target counts
  EXPECT_EQ(plans[0].before_target_us, 0);
  EXPECT_EQ(plans[1].snapshot.id, "c1");
  EXPECT_EQ(plans[1].before_target_us, int64_t(3900) * 1000000);
  EXPECT_EQ(describe(plans[1]),
            "snapshot c1 (2026-12-03T13:00:00+00:00, 1 h 5 min before the target)");

  plans = plan_dir_restores(all, {{"data", "/r/data"}}, at("2026-12-03T14:04:59.999999Z"));
  EXPECT_EQ(plans[0].snapshot.id, "a2");
  plans = plan_dir_restores(all, {{"data", "/r/data"}}, std::nullopt);
  EXPECT_EQ(plans[0].snapshot.id, "a4");
  EXPECT_EQ(describe(plans[0]), "snapshot a4 (2026-12-03T15:00:00+00:00, the newest)");
}

TEST(SnapshotPlan, NoSnapshotBeforeTheTargetIsUnreachable) {
  const auto all = repo_snapshots();
  try {
    plan_dir_restores(all, {{"data", "/r/data"}}, at("2026-12-03T12:59:59Z"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::unreachable);
    EXPECT_EQ(std::string(e.what()),
              "no snapshot of \"data\" was taken at or before 2026-12-03T12:59:59+00:00");
    EXPECT_EQ(e.hint(),
              "its oldest snapshot is a1 (2026-12-03T13:00:00+00:00); choose a later target, or "
              "restore without data");
  }
  try {
    plan_dir_restores(all, {{"blueprints", "/r/b"}}, std::nullopt);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::unreachable);
    EXPECT_EQ(std::string(e.what()), "the repository has no snapshot named \"blueprints\"");
    EXPECT_EQ(e.hint(), "its snapshots are named: certs, data");
  }
}

TEST(SnapshotPlan, OverlappingOrRepeatedRequestsAreUsageErrors) {
  const auto all = repo_snapshots();
  try {
    plan_dir_restores(all, {{"data", "/r/x"}, {"certs", "/r/x/certs"}}, std::nullopt);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::usage);
  }
  EXPECT_THROW(plan_dir_restores(all, {{"data", "/a"}, {"data", "/b"}}, std::nullopt), Error);
  EXPECT_THROW(plan_dir_restores(all, {{"data", "/a"}, {"certs", "/a"}}, std::nullopt), Error);
  // A common prefix is not nesting.
  EXPECT_NO_THROW(plan_dir_restores(all, {{"data", "/r/x"}, {"certs", "/r/xy"}}, std::nullopt));
}

TEST(SnapshotPlan, DurationsAndNames) {
  EXPECT_EQ(format_duration_us(0), "0 s");
  EXPECT_EQ(format_duration_us(int64_t(303) * 1000000), "5 min 3 s");
  EXPECT_EQ(format_duration_us(int64_t(90061) * 1000000), "1 d 1 h");
  EXPECT_TRUE(is_valid_snapshot_name("custom-templates"));
  EXPECT_TRUE(is_valid_snapshot_name("data_2.x"));
  EXPECT_FALSE(is_valid_snapshot_name(""));
  EXPECT_FALSE(is_valid_snapshot_name(".hidden"));
  EXPECT_FALSE(is_valid_snapshot_name("-x"));
  EXPECT_FALSE(is_valid_snapshot_name("a/b"));
  EXPECT_FALSE(is_valid_snapshot_name(std::string(65, 'a')));
}

TEST(SnapshotPlan, EntryJsonRoundTrip) {
  SnapshotEntry e;
  e.path = std::string("dir/caf\xe9");
  e.type = EntryType::file;
  e.mode = 04750;
  e.uid = 1000;
  e.gid = 1000;
  e.user = "authentik";
  e.mtime_ns = -5;
  e.size = 3;
  e.sha256 = std::string(64, 'b');
  e.chunks = {{std::string(64, 'c'), 1}, {std::string(64, 'd'), 2}};
  e.inconsistent = true;
  const Json j = to_json(e);
  EXPECT_EQ(j.at("mode"), "4750");
  EXPECT_EQ(j.at("path_hex"), "6469722f636166e9");
  EXPECT_FALSE(j.contains("group"));
  EXPECT_EQ(snapshot_entry_from_json(j), e);
  Json bad = j;
  bad["size"] = 4;
  EXPECT_THROW(snapshot_entry_from_json(bad), Error);
}

}  // namespace
}  // namespace walvault

namespace walvault {
namespace {

TEST(SnapshotPlan, BackupInfoRecordsItsSnapshots) {
  BackupInfo b;
  b.id = "20261203T140500Z";
  b.snapshots = {"20261203T140500Z-data", "20261203T140501Z-certs"};
  const Json j = to_json(b);
  EXPECT_EQ(j.at("snapshots"), Json({"20261203T140500Z-data", "20261203T140501Z-certs"}));
  EXPECT_EQ(backup_info_from_json(j).snapshots, b.snapshots);
  b.snapshots.clear();
  EXPECT_FALSE(to_json(b).contains("snapshots"));  // backups without --dir look as before
  EXPECT_TRUE(backup_info_from_json(to_json(b)).snapshots.empty());
}

}  // namespace
}  // namespace walvault
