#include <gtest/gtest.h>

#include "archiver_test_util.h"
#include "core/backup_info.h"
#include "core/repo_lock.h"

namespace walvault {
namespace {

TEST(BackupInfoJson, RoundTripsEveryField) {
  BackupInfo b;
  b.id = "20261203T140500Z";
  b.label = "nightly";
  b.status = BackupStatus::failed;
  b.timeline = TimelineId(2);
  b.stop_timeline = TimelineId(3);
  b.start_lsn = *Lsn::parse("0/5D000028");
  b.stop_lsn = *Lsn::parse("1/5D000C90");
  b.start_time = Timestamp{1796306700123456};
  b.stop_time = Timestamp{1796306760000000};
  b.bytes = 123456789;
  b.stored_bytes = 2345678;
  b.pg_version_num = 150018;
  b.system_identifier = "7301234567890123456";
  b.files = {{"base.tar.lz4", 100, 50, std::string(64, 'a')},
             {"16385.tar.lz4", 10, 9, std::string(64, 'b')},
             {"backup_manifest", 7, 7, std::string(64, 'c')}};
  b.tablespaces = {{16385, "/srv/ts", "16385.tar.lz4"}};
  b.error = "could not receive data";

  const Json j = to_json(b);
  EXPECT_EQ(j.at("status"), "failed");
  EXPECT_EQ(j.at("start_lsn"), "0/5D000028");
  EXPECT_EQ(j.at("start_time"), "2026-12-03T14:05:00.123456+00:00");
  const BackupInfo r = backup_info_from_json(Json::parse(j.dump()));
  EXPECT_EQ(to_json(r), j);
  EXPECT_EQ(r.id, b.id);
  EXPECT_EQ(r.stop_timeline, b.stop_timeline);
  EXPECT_EQ(r.stop_lsn, b.stop_lsn);
  EXPECT_EQ(r.start_time, b.start_time);
  ASSERT_EQ(r.files.size(), 3u);
  EXPECT_EQ(r.files[1].name, "16385.tar.lz4");
  EXPECT_EQ(r.files[1].stored_bytes, 9u);
  ASSERT_EQ(r.tablespaces.size(), 1u);
  EXPECT_EQ(r.tablespaces[0].oid, 16385u);
  EXPECT_EQ(r.tablespaces[0].location, "/srv/ts");
  EXPECT_EQ(r.error, b.error);
}

TEST(BackupInfoJson, RunningBackupWithoutLsnsYetRoundTrips) {
  BackupInfo b;
  b.id = "20261203T140500Z-2";
  b.start_time = b.stop_time = Timestamp{1796306700000000};
  const BackupInfo r = backup_info_from_json(Json::parse(to_json(b).dump()));
  EXPECT_EQ(r.status, BackupStatus::running);
  EXPECT_FALSE(r.start_lsn.valid());
  EXPECT_TRUE(r.error.empty());
}

// kill -9 of `walvault backup` leaves backup.json saying "running": once nobody holds the
// backup's lock, readers must see it as failed, never as a backup that may still complete.
TEST(LoadBackups, ARunningBackupWhoseProcessIsGoneIsFailed) {
  testing::TempDir tmp;
  Repository repo = testing::make_test_repo(tmp.path());
  BackupInfo b;
  b.id = "20261203T140500Z";
  b.start_time = b.stop_time = Timestamp{1796306700000000};
  make_dirs(backup_dir(repo, b.id));
  save_backup_info(repo, b);
  {
    RepoLock held = RepoLock::acquire(repo, backup_lock_name(b.id), "backup " + b.id);
    const auto live = load_backups(repo);
    ASSERT_EQ(live.size(), 1u);
    EXPECT_EQ(live[0].status, BackupStatus::running);
    EXPECT_TRUE(backup_in_progress(repo, b.id));
  }
  EXPECT_FALSE(backup_in_progress(repo, b.id));
  const auto dead = load_backups(repo);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].status, BackupStatus::failed);
  EXPECT_EQ(dead[0].error, "the backup process ended before the backup completed");
}

}  // namespace
}  // namespace walvault
