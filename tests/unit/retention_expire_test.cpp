// run_expire (pitr/retention.h) on a repository on disk: what a dry run reports is exactly what
// the real run removes, nothing else changes, kept snapshots stay restorable, crash leftovers
// go, and the locks keep expire away from running backups, snapshots and other expires.

#include <gtest/gtest.h>

#include <set>

#include "archiver_test_util.h"
#include "basebackup/backup_runner.h"
#include "core/error.h"
#include "core/object_store.h"
#include "core/repo_lock.h"
#include "pitr/retention.h"
#include "snapshot/snapshot_verify.h"
#include "snapshot/snapshot_writer.h"
#include "snapshot_test_util.h"

namespace walvault {
namespace {

using testing::TempDir;
constexpr uint64_t kSeg = testing::kTestSegmentSize;

Timestamp hours_from_now(double h) {
  return Timestamp{now().unix_us + int64_t(h * 3600e6)};
}

void put_wal(const Repository& repo, uint32_t tli, uint64_t segno, bool partial = false) {
  const fs::path p =
      repo.segment_path(TimelineId(tli), SegmentNo(segno), Compression::lz4, partial);
  make_dirs(p.parent_path());
  testing::write_bytes(p, std::string(1000 + segno, 'w'), 0600);
}

BackupInfo put_backup(const Repository& repo, const std::string& id, BackupStatus status,
                      uint64_t start_seg, Timestamp start, Timestamp stop) {
  BackupInfo b;
  b.id = id;
  b.label = id;
  b.status = status;
  b.timeline = TimelineId(1);
  b.stop_timeline = TimelineId(1);
  b.start_lsn = Lsn(start_seg * kSeg + 0x28);
  b.stop_lsn = Lsn(start_seg * kSeg + 0x2000);
  b.start_time = start;
  b.stop_time = stop;
  make_dirs(backup_dir(repo, id));
  testing::write_bytes(backup_dir(repo, id) / "base.tar.lz4", std::string(5000, 'b'), 0600);
  save_backup_info(repo, b);
  return b;
}

// Every file under the repository except lock files, with its size.
std::set<std::string> listing(const Repository& repo) {
  std::set<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(repo.root())) {
    const std::string rel = fs::relative(e.path(), repo.root()).string();
    if (rel.starts_with("lock")) continue;
    out.insert(rel + (e.is_regular_file() ? " " + std::to_string(e.file_size()) : "/"));
  }
  return out;
}

bool exists_in(const std::set<std::string>& l, const std::string& prefix) {
  for (const auto& s : l) {
    if (s.starts_with(prefix)) return true;
  }
  return false;
}

struct Fixture {
  TempDir tmp;
  Repository repo = testing::make_test_repo(tmp.path());
  SnapshotInfo s1, s2;
  std::set<std::string> s1_only;  // objects only the older snapshot uses

  Fixture() {
    for (uint64_t s = 1; s <= 10; ++s) put_wal(repo, 1, s, s == 10);
    // B2 stops in an hour (its clock is ahead): both snapshots below are taken before the
    // window's start, so only the newer one stays.
    put_backup(repo, "20261101T000000Z", BackupStatus::failed, 1, hours_from_now(-30),
               hours_from_now(-30));
    put_backup(repo, "20261102T000000Z", BackupStatus::complete, 2, hours_from_now(-20),
               hours_from_now(-19));
    put_backup(repo, "20261103T000000Z", BackupStatus::complete, 6, hours_from_now(-2),
               hours_from_now(1));
    make_dirs(backup_dir(repo, "20261031T000000Z"));  // a backup that died as it started
    record_gap(repo, {TimelineId(1), Lsn(2 * kSeg + 0x100), Lsn(3 * kSeg), "2026-11-01", "test"});

    const fs::path src = tmp.path() / "data";
    testing::write_bytes(src / "a.txt", testing::random_bytes(3000, 1));
    testing::write_bytes(src / "b.txt", testing::random_bytes(3000, 2));
    SnapshotOptions o;
    o.racy_window_ms = 0;
    SnapshotRequest r;
    r.name = "data";
    r.source = src;
    s1 = take_snapshot(repo, r, o);
    const std::set<std::string> before = objects_in_use(repo, {s1});
    testing::write_bytes(src / "b.txt", testing::random_bytes(3000, 3));
    s2 = take_snapshot(repo, r, o);
    const std::set<std::string> after = objects_in_use(repo, {s2});
    for (const auto& o1 : before) {
      if (!after.count(o1)) s1_only.insert(o1);
    }
    // Crash leftovers: a temporary object, an uncommitted snapshot, an interrupted expire.
    testing::write_bytes(repo.store_dir() / "ab" / ".tmp.abcd.1.1", "half", 0600);
    make_dirs(repo.snapshots_dir() / "20261103T000000Z-data");
    testing::write_bytes(repo.root() / "trash" / "backup-X" / "base.tar.lz4", "old", 0600);
  }
};

TEST(RunExpire, DryRunReportsExactlyWhatTheRealRunRemoves) {
  Fixture f;
  ASSERT_EQ(f.s1_only.size(), 1u);
  const std::set<std::string> before = listing(f.repo);
  ExpireOptions dry;
  dry.dry_run = true;
  const ExpireReport d = run_expire(f.repo, RetentionPolicy::retain_full(1), dry);
  EXPECT_EQ(listing(f.repo), before) << "a dry run changed the repository";
  EXPECT_FALSE(fs::exists(f.repo.lock_dir() / "expire.lock"));

  std::vector<std::string> removed_backups;
  for (const auto& b : d.plan.backups) removed_backups.push_back(b.id);
  EXPECT_EQ(removed_backups,
            (std::vector<std::string>{"20261031T000000Z", "20261101T000000Z", "20261102T000000Z"}));
  ASSERT_EQ(d.plan.wal.size(), 1u);
  EXPECT_EQ(d.plan.wal[0].files.size(), 5u);  // segments 1-5: the kept backup starts in 6
  EXPECT_EQ(d.plan.wal[0].gaps_dropped, 1u);
  ASSERT_EQ(d.plan.snapshots.size(), 1u);
  EXPECT_EQ(d.plan.snapshots[0].snapshot.id, f.s1.id);
  EXPECT_EQ(d.objects, 1u);
  EXPECT_EQ(d.leftovers.size(), 3u);
  EXPECT_EQ(d.wal_bytes, 1001u + 1002 + 1003 + 1004 + 1005);
  EXPECT_EQ(d.backup_bytes,
            2 * 5000u + fs::file_size(backup_dir(f.repo, "20261101T000000Z") / "backup.json") +
                fs::file_size(backup_dir(f.repo, "20261102T000000Z") / "backup.json"));

  const ExpireReport r = run_expire(f.repo, RetentionPolicy::retain_full(1));
  EXPECT_FALSE(r.dry_run);
  EXPECT_EQ(r.bytes_freed(), d.bytes_freed());
  EXPECT_EQ(r.objects, d.objects);
  EXPECT_EQ(r.to_json()["removed"], d.to_json()["removed"]);

  const std::set<std::string> after = listing(f.repo);
  for (const auto& gone :
       {"backups/20261031T000000Z", "backups/20261101T000000Z", "backups/20261102T000000Z",
        "wal/00000001/000000010000000000000001", "wal/00000001/000000010000000000000005",
        "wal/00000001/gaps.json", "snapshots/20261103T000000Z-data/"}) {
    EXPECT_FALSE(exists_in(after, gone)) << gone;
  }
  EXPECT_FALSE(exists_in(after, "snapshots/" + f.s1.id + "/"));
  EXPECT_FALSE(exists_in(after, "store/ab/.tmp"));
  EXPECT_FALSE(exists_in(after, "trash/backup-X"));
  EXPECT_TRUE(exists_in(after, "backups/20261103T000000Z/base.tar.lz4 5000"));
  EXPECT_TRUE(exists_in(after, "wal/00000001/000000010000000000000006.lz4 1006"));
  EXPECT_TRUE(exists_in(after, "wal/00000001/00000001000000000000000A.lz4.partial 1010"));
  EXPECT_TRUE(exists_in(after, "snapshots/" + f.s2.id + "/snapshot.json"));
  // What was removed is exactly what was listed: the before-listing minus the removed paths.
  size_t removed_entries = 0;
  for (const auto& e : before) removed_entries += after.count(e) ? 0 : 1;
  for (const auto& e : after) {
    EXPECT_TRUE(before.count(e) || e == "trash/") << "new entry " << e;
  }
  EXPECT_GT(removed_entries, 0u);
  // The kept snapshot is whole; the object only the removed one used is gone.
  EXPECT_TRUE(verify_snapshots(f.repo, load_snapshots(f.repo)).ok());
  ObjectStore store(f.repo.store_dir());
  for (const auto& o : f.s1_only) EXPECT_FALSE(store.stored_size(o)) << o;
  EXPECT_EQ(store.list().size(), objects_in_use(f.repo, {f.s2}).size());

  // A second run has nothing left to do.
  const ExpireReport again = run_expire(f.repo, RetentionPolicy::retain_full(1));
  EXPECT_EQ(again.bytes_freed(), 0u);
  EXPECT_NE(again.to_text().find("nothing to expire"), std::string::npos) << again.to_text();
}

TEST(RunExpire, ASnapshotBeingWrittenKeepsEveryObject) {
  Fixture f;
  const RepoLock writer =
      RepoLock::acquire_shared(f.repo, kStoreLockName, "walvault expire");  // as take_snapshot
  const ExpireReport r = run_expire(f.repo, RetentionPolicy::retain_full(1));
  EXPECT_EQ(r.objects, 0u);
  EXPECT_EQ(r.plan.snapshots.size(), 1u);  // the committed snapshot itself may go
  ObjectStore store(f.repo.store_dir());
  for (const auto& o : f.s1_only) EXPECT_TRUE(store.stored_size(o)) << o;
  EXPECT_TRUE(fs::exists(f.repo.store_dir() / "ab" / ".tmp.abcd.1.1"));
  EXPECT_TRUE(fs::exists(f.repo.snapshots_dir() / "20261103T000000Z-data"));
  bool noted = false;
  for (const auto& n : r.notes) noted |= n.find("a snapshot is being written") != std::string::npos;
  EXPECT_TRUE(noted);
}

TEST(RunExpire, OneExpireAtATimeAndABackupInProgressIsLeftAlone) {
  Fixture f;
  {
    const RepoLock other = RepoLock::acquire(f.repo, kExpireLockName, "walvault expire");
    try {
      run_expire(f.repo, RetentionPolicy::retain_full(1));
      FAIL() << "a second expire ran";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("walvault expire is already running"), std::string::npos)
          << e.what();
    }
  }
  // The failed backup's writer is still there (it holds its lock): it is not touched, and
  // neither is the WAL from its start on.
  BackupInfo running = put_backup(f.repo, "20261030T000000Z", BackupStatus::running, 0,
                                  hours_from_now(-40), hours_from_now(-40));
  const RepoLock writer =
      RepoLock::acquire(f.repo, backup_lock_name(running.id), "backup " + running.id);
  const ExpireReport r = run_expire(f.repo, RetentionPolicy::retain_full(1));
  EXPECT_TRUE(fs::exists(backup_dir(f.repo, running.id) / "backup.json"));
  EXPECT_TRUE(r.plan.wal.empty());
  EXPECT_EQ(r.wal_files, 0u);
  EXPECT_TRUE(
      fs::exists(f.repo.segment_path(TimelineId(1), SegmentNo(1), Compression::lz4, false)));
}

}  // namespace
}  // namespace walvault
