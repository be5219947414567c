// Snapshots of an authentik-shaped tree: take, change, take, delete, take; restore each moment
// and compare byte for byte and metadata for metadata.

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>

#include "archiver_test_util.h"
#include "core/error.h"
#include "core/object_store.h"
#include "snapshot/snapshot_restore.h"
#include "snapshot/snapshot_verify.h"
#include "snapshot/snapshot_writer.h"
#include "snapshot_test_util.h"

namespace walvault {
namespace {

using testing::describe_tree;
using testing::TempDir;

SnapshotOptions fast_options() {
  SnapshotOptions o;
  o.racy_window_ms = 0;  // the racy re-check has its own test
  return o;
}

SnapshotInfo snap(const Repository& repo, const std::string& name, const fs::path& src,
                  std::vector<std::string> excludes = {}) {
  SnapshotRequest r;
  r.name = name;
  r.source = src;
  r.excludes = std::move(excludes);
  return take_snapshot(repo, r, fast_options());
}

DirRestoreResult restore(const Repository& repo, const SnapshotInfo& s, const fs::path& to) {
  PlannedDirRestore plan;
  plan.snapshot = s;
  plan.path = to;
  const PreparedDirRestore p = prepare_dir_restore(repo, plan);
  DirRestoreOptions o;
  o.restore_owners = ::geteuid() == 0;
  return restore_dir(repo, p, o);
}

size_t count_objects(const Repository& repo) {
  return ObjectStore(repo.store_dir()).list().size();
}

TEST(SnapshotRoundTrip, ThreeMomentsRestoreExactly) {
  TempDir tmp;
  const Repository repo = testing::make_test_repo(tmp.path());
  const fs::path src = tmp.path() / "authentik";
  testing::make_authentik_tree(src);
  const auto moment1 = describe_tree(src);
  const SnapshotInfo s1 = snap(repo, "authentik", src);
  EXPECT_EQ(s1.files, 7u);
  EXPECT_EQ(s1.symlinks, 1u);
  EXPECT_EQ(s1.dirs, 13u);  // the root and 12 below it
  EXPECT_TRUE(s1.inconsistent.empty());
  EXPECT_EQ(s1.new_objects, s1.objects);

  // Change: a new upload, an edited template, a rotated key (still 0600).
  testing::write_bytes(src / "media/public/uploads/2026/12/new-icon.svg", "<svg/>\n");
  testing::write_bytes(src / "custom-templates/login.html",
                       "{% block title %}Hello{% endblock %}\n");
  testing::write_bytes(src / "certs/authentik.key", "-----BEGIN PRIVATE KEY-----\nNEW\n", 0600);
  ::chmod((src / "blueprints/custom/flows.yaml").c_str(), 0640);
  const auto moment2 = describe_tree(src);
  const SnapshotInfo s2 = snap(repo, "authentik", src);
  EXPECT_EQ(s2.files, 8u);
  EXPECT_EQ(s2.new_objects, 3u);  // svg, template, key: every other file is unchanged

  // Delete: the uploads and the symlink go.
  fs::remove_all(src / "media/public/uploads");
  fs::remove(src / "media/current.pem");
  const auto moment3 = describe_tree(src);
  const SnapshotInfo s3 = snap(repo, "authentik", src);
  EXPECT_EQ(s3.files, 6u);
  EXPECT_EQ(s3.symlinks, 0u);
  EXPECT_EQ(s3.new_objects, 0u);

  const auto all = load_snapshots(repo);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].id, s1.id);
  EXPECT_EQ(all[2].id, s3.id);

  const DirRestoreResult r1 = restore(repo, s1, tmp.path() / "r1");
  EXPECT_EQ(r1.files, 7u);
  EXPECT_EQ(describe_tree(tmp.path() / "r1"), moment1);
  restore(repo, s2, tmp.path() / "r2");
  EXPECT_EQ(describe_tree(tmp.path() / "r2"), moment2);
  fs::create_directory(tmp.path() / "r3");  // an empty directory is a fine target too
  restore(repo, s3, tmp.path() / "r3");
  EXPECT_EQ(describe_tree(tmp.path() / "r3"), moment3);

  struct stat st;
  ASSERT_EQ(::stat((tmp.path() / "r1/certs/authentik.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(fs::read_symlink(tmp.path() / "r1/media/current.pem"), "../certs/authentik.pem");
  EXPECT_TRUE(fs::is_empty(tmp.path() / "r1/media/public/empty"));

  const SnapshotVerifyReport v = verify_snapshots(repo, all);
  EXPECT_TRUE(v.ok());
  EXPECT_EQ(v.snapshots, 3u);
  EXPECT_EQ(v.objects, count_objects(repo));

  // Expiry's question: which objects may go if only the newest snapshot is kept? Exactly
  // those of content that no longer exists: the two deleted uploads, and moment 1's key and
  // template (replaced at moment 2); the unchanged images stay.
  const std::set<std::string> keep = objects_in_use(repo, {all[2]});
  const std::set<std::string> all_used = objects_in_use(repo, all);
  EXPECT_EQ(all_used.size(), count_objects(repo));
  std::set<std::string> removable;
  for (const auto& o : all_used) {
    if (!keep.count(o)) removable.insert(o);
  }
  EXPECT_EQ(removable.size(), 4u);
}

TEST(SnapshotRoundTrip, UnchangedTreeAddsNoObjects) {
  TempDir tmp;
  const Repository repo = testing::make_test_repo(tmp.path());
  const fs::path src = tmp.path() / "data";
  testing::make_authentik_tree(src);
  const SnapshotInfo s1 = snap(repo, "data", src);
  const size_t objects = count_objects(repo);
  const SnapshotInfo s2 = snap(repo, "data", src);
  EXPECT_EQ(s2.new_objects, 0u);
  EXPECT_EQ(s2.objects, s1.objects);
  EXPECT_EQ(count_objects(repo), objects);
  EXPECT_NE(s1.id, s2.id);
  // What the second snapshot costs: its entries file and nothing else.
  EXPECT_EQ(s2.stored_bytes, fs::file_size(snapshot_dir(repo, s2.id) / s2.entries_file));
}

TEST(SnapshotRoundTrip, OneChangedByteInALargeFileAddsAboutOneChunk) {
  TempDir tmp;
  const Repository repo = testing::make_test_repo(tmp.path());
  const fs::path src = tmp.path() / "data";
  std::string big = testing::random_bytes(24 << 20, 99);
  testing::write_bytes(src / "reports/export.bin", big);
  const SnapshotInfo s1 = snap(repo, "data", src);
  EXPECT_GT(s1.objects, 40u);
  big[big.size() / 2] ^= 0x55;
  testing::write_bytes(src / "reports/export.bin", big);
  const SnapshotInfo s2 = snap(repo, "data", src);
  EXPECT_GE(s2.new_objects, 1u);
  EXPECT_LE(s2.new_objects, 2u);
  restore(repo, s2, tmp.path() / "r");
  EXPECT_EQ(read_file(tmp.path() / "r/reports/export.bin"), big);
}

TEST(SnapshotRoundTrip, ExcludesByNameAndByPath) {
  TempDir tmp;
  const Repository repo = testing::make_test_repo(tmp.path());
  const fs::path src = tmp.path() / "data";
  testing::make_authentik_tree(src);
  testing::write_bytes(src / "media/cache.tmp", "x");
  testing::write_bytes(src / "media/public/deep/also.tmp", "x");
  const SnapshotInfo s = snap(repo, "data", src, {"*.tmp", "media/public/uploads"});
  const auto entries = load_snapshot_entries(repo, s);
  for (const auto& e : entries) {
    EXPECT_FALSE(e.path.ends_with(".tmp")) << e.path;
    EXPECT_FALSE(e.path.starts_with("media/public/uploads")) << e.path;
  }
  EXPECT_EQ(s.excludes, (std::vector<std::string>{"*.tmp", "media/public/uploads"}));
  EXPECT_TRUE(snapshot_path_excluded({"*.png"}, "a/b/c.png"));
  EXPECT_FALSE(snapshot_path_excluded({"a/*.png"}, "a/b/c.png"));
  EXPECT_TRUE(snapshot_path_excluded({"/a/*/c.png"}, "a/b/c.png"));
}

TEST(SnapshotRoundTrip, NamesThatAreNotUtf8) {
  TempDir tmp;
  const Repository repo = testing::make_test_repo(tmp.path());
  const fs::path src = tmp.path() / "data";
  testing::write_bytes(src / std::string("caf\xe9.txt"), "latin-1 name");
  fs::create_symlink(std::string("caf\xe9.txt"), src / "link");
  const auto before = describe_tree(src);
  const SnapshotInfo s = snap(repo, "data", src);
  restore(repo, s, tmp.path() / "r");
  EXPECT_EQ(describe_tree(tmp.path() / "r"), before);
}

TEST(SnapshotRoundTrip, FileChangedOnceWhileReadIsReadAgain) {
  TempDir tmp;
  const Repository repo = testing::make_test_repo(tmp.path());
  const fs::path src = tmp.path() / "data";
  testing::write_bytes(src / "a.txt", "old old old");
  SnapshotRequest r{"data", src, {}, ""};
  SnapshotOptions o = fast_options();
  int calls = 0;
  o.after_read = [&](const std::string& path, int attempt) {
    ++calls;
    if (path == "a.txt" && attempt == 1) testing::write_bytes(src / "a.txt", "new content!");
  };
  const SnapshotInfo s = take_snapshot(repo, r, o);
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(s.inconsistent.empty());
  restore(repo, s, tmp.path() / "r");
  EXPECT_EQ(read_file(tmp.path() / "r/a.txt"), "new content!");
}

TEST(SnapshotRoundTrip, FileThatKeepsChangingIsRecordedAsInconsistent) {
  TempDir tmp;
  const Repository repo = testing::make_test_repo(tmp.path());
  const fs::path src = tmp.path() / "data";
  testing::write_bytes(src / "log.txt", "");
  testing::write_bytes(src / "quiet.txt", "q");
  SnapshotRequest r{"data", src, {}, ""};
  SnapshotOptions o = fast_options();
  int n = 0;
  o.after_read = [&](const std::string& path, int) {
    if (path == "log.txt") testing::write_bytes(src / "log.txt", std::string(size_t(++n), 'x'));
  };
  const SnapshotInfo s = take_snapshot(repo, r, o);
  EXPECT_EQ(n, o.max_read_attempts);
  EXPECT_EQ(s.inconsistent, std::vector<std::string>{"log.txt"});
  const auto entries = load_snapshot_entries(repo, s);
  for (const auto& e : entries) EXPECT_EQ(e.inconsistent, e.path == "log.txt") << e.path;
  // Reloaded from snapshot.json too.
  EXPECT_EQ(load_snapshots(repo).front().inconsistent, std::vector<std::string>{"log.txt"});
  const DirRestoreResult res = restore(repo, s, tmp.path() / "r");
  EXPECT_EQ(res.inconsistent, std::vector<std::string>{"log.txt"});
}

TEST(SnapshotRoundTrip, RecentlyModifiedFileIsComparedAgainAfterTheClockMoved) {
  TempDir tmp;
  const Repository repo = testing::make_test_repo(tmp.path());
  const fs::path src = tmp.path() / "data";
  testing::write_bytes(src / "fresh.txt", "version 1");
  testing::write_bytes(src / "old.txt", "old");
  testing::set_mtime(src / "old.txt", 1700000000);
  SnapshotRequest r{"data", src, {}, ""};
  SnapshotOptions o;
  o.racy_window_ms = 200;
  bool rechecked = false;
  o.before_recheck = [&] {
    rechecked = true;
    // Same size, and its mtime put back: only its ctime and content tell.
    struct stat st;
    ::stat((src / "fresh.txt").c_str(), &st);
    testing::write_bytes(src / "fresh.txt", "version 2");
    testing::set_mtime(src / "fresh.txt", st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  };
  const SnapshotInfo s = take_snapshot(repo, r, o);
  EXPECT_TRUE(rechecked);
  EXPECT_TRUE(s.inconsistent.empty());
  restore(repo, s, tmp.path() / "r");
  EXPECT_EQ(read_file(tmp.path() / "r/fresh.txt"), "version 2");
}

TEST(SnapshotRoundTrip, CorruptedObjectIsReportedAndRefusedNamingTheFile) {
  TempDir tmp;
  const Repository repo = testing::make_test_repo(tmp.path());
  const fs::path src = tmp.path() / "data";
  testing::make_authentik_tree(src);
  const SnapshotInfo s = snap(repo, "data", src);
  const auto entries = load_snapshot_entries(repo, s);
  const SnapshotEntry* key = nullptr;
  for (const auto& e : entries) {
    if (e.path == "certs/authentik.key") key = &e;
  }
  ASSERT_NE(key, nullptr);
  ASSERT_EQ(key->chunks.size(), 1u);
  ObjectStore store(repo.store_dir());
  const fs::path object = store.object_path(key->chunks[0].sha256);
  {
    std::string bytes = read_file(object);
    bytes[bytes.size() / 2] ^= 0x01;
    fs::permissions(object, fs::perms::owner_write, fs::perm_options::add);
    testing::write_bytes(object, bytes, 0600);
  }
  const SnapshotVerifyReport v = verify_snapshots(repo, load_snapshots(repo));
  ASSERT_EQ(v.problems.size(), 1u);
  EXPECT_EQ(v.problems[0].path, "certs/authentik.key");
  EXPECT_EQ(v.problems[0].object, object.string());
  EXPECT_EQ(v.problems[0].describe(), "snapshot " + s.id +
                                          ", file \"certs/authentik.key\": object " +
                                          object.string() + " is damaged: block checksum mismatch");

  PlannedDirRestore plan{s, tmp.path() / "r", std::nullopt};
  try {
    prepare_dir_restore(repo, plan);
    FAIL() << "restore of a damaged snapshot was not refused";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "snapshot " + s.id +
                                         " cannot be restored: \"certs/authentik.key\" (object " +
                                         object.string() + " is damaged: block checksum mismatch)");
  }
  EXPECT_FALSE(fs::exists(tmp.path() / "r"));
}

TEST(SnapshotRoundTrip, RestoreRefusesANonEmptyTarget) {
  TempDir tmp;
  const Repository repo = testing::make_test_repo(tmp.path());
  const fs::path src = tmp.path() / "data";
  testing::make_authentik_tree(src);
  const SnapshotInfo s = snap(repo, "data", src);
  testing::write_bytes(tmp.path() / "r/keep.txt", "mine");
  PlannedDirRestore plan{s, tmp.path() / "r", std::nullopt};
  EXPECT_THROW(prepare_dir_restore(repo, plan), Error);
  EXPECT_EQ(read_file(tmp.path() / "r/keep.txt"), "mine");
}

TEST(SnapshotRoundTrip, FailedRestoreLeavesNothing) {
  TempDir tmp;
  const Repository repo = testing::make_test_repo(tmp.path());
  const fs::path src = tmp.path() / "data";
  testing::make_authentik_tree(src);
  const SnapshotInfo s = snap(repo, "data", src);
  PlannedDirRestore plan{s, tmp.path() / "r", std::nullopt};
  const PreparedDirRestore p = prepare_dir_restore(repo, plan);
  // Damage appears between the check and the write (the write checks again).
  const auto entries = load_snapshot_entries(repo, s);
  ObjectStore store(repo.store_dir());
  const auto last_file = std::find_if(entries.rbegin(), entries.rend(),
                                      [](const SnapshotEntry& e) { return !e.chunks.empty(); });
  ASSERT_NE(last_file, entries.rend());
  fs::remove(store.object_path(last_file->chunks.at(0).sha256));
  EXPECT_THROW(restore_dir(repo, p, {}), Error);
  EXPECT_FALSE(fs::exists(tmp.path() / "r"));
}

TEST(SnapshotRoundTrip, BadNamesAndPaths) {
  TempDir tmp;
  const Repository repo = testing::make_test_repo(tmp.path());
  SnapshotRequest r{"../x", tmp.path(), {}, ""};
  try {
    take_snapshot(repo, r);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::usage);
  }
  r = {"data", tmp.path() / "absent", {}, ""};
  EXPECT_THROW(take_snapshot(repo, r), Error);
  EXPECT_FALSE(fs::exists(repo.snapshots_dir()) && !fs::is_empty(repo.snapshots_dir()));
  EXPECT_THROW(parse_dir_option("data", "--dir"), Error);
  EXPECT_THROW(parse_dir_option("=/x", "--dir"), Error);
  EXPECT_EQ(parse_dir_option("data=/srv/data/", "--dir").path, fs::path("/srv/data"));
}

}  // namespace
}  // namespace walvault

namespace walvault {
namespace {

TEST(SnapshotRoundTrip, InterruptedSnapshotLeavesNothing) {
  testing::TempDir tmp;
  const Repository repo = testing::make_test_repo(tmp.path());
  const fs::path src = tmp.path() / "data";
  testing::make_authentik_tree(src);
  SnapshotRequest r{"data", src, {}, ""};
  SnapshotOptions o;
  o.racy_window_ms = 0;
  int checks = 0;
  o.stop_requested = [&] { return ++checks > 6; };
  try {
    take_snapshot(repo, r, o);
    FAIL() << "the snapshot was not interrupted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "snapshot of data interrupted; nothing of it was kept");
  }
  EXPECT_TRUE(fs::is_empty(repo.snapshots_dir()));
  EXPECT_TRUE(load_snapshots(repo).empty());
  for (const auto& e : fs::recursive_directory_iterator(repo.store_dir())) {
    EXPECT_FALSE(e.path().filename().string().starts_with(".tmp")) << e.path();
  }
}

}  // namespace
}  // namespace walvault
