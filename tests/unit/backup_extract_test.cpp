#include "basebackup/backup_extract.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "basebackup/archive_store.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/tar.h"

namespace walvault {
namespace {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "walvault-extract-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void add(std::string& tar, const std::string& path, TarEntryType type, uint32_t mode,
         const std::string& content = {}, const std::string& link = {}) {
  TarEntry e;
  e.path = path;
  e.type = type;
  e.mode = mode;
  e.size = content.size();
  e.link_target = link;
  tar += tar_member_header(e) + content + std::string(tar_padding_bytes(content.size()), '\0');
}

BackupFile store(const fs::path& dir, const std::string& name, const std::string& tar) {
  StoredArchiveWriter w(dir / name);
  w.write(as_bytes(tar));
  return w.finish();
}

struct Fixture {
  TempDir tmp;
  Repository repo =
      Repository::open_or_create(tmp.path() / "repo", {"7300000000000000001", 150010, 1 << 20});
  BackupInfo info;

  Fixture() {
    info.id = "20261203T140500Z";
    info.status = BackupStatus::complete;
    const fs::path dir = backup_dir(repo, info.id);
    make_dirs(dir);
    std::string base;
    add(base, "PG_VERSION", TarEntryType::file, 0600, "15\n");
    add(base, "global", TarEntryType::directory, 0700);
    add(base, "global/pg_control", TarEntryType::file, 0600, std::string(8192, 'c'));
    add(base, "pg_tblspc", TarEntryType::directory, 0700);
    add(base, "pg_tblspc/16385", TarEntryType::symlink, 0777, {}, "/old/place");
    base += tar_end_of_archive();
    std::string ts;
    add(ts, "PG_15_202209061", TarEntryType::directory, 0700);
    add(ts, "PG_15_202209061/16384", TarEntryType::directory, 0700);
    add(ts, "PG_15_202209061/16384/16386", TarEntryType::file, 0600, "rel");
    ts += tar_end_of_archive();
    info.files.push_back(store(dir, "base.tar.lz4", base));
    info.files.push_back(store(dir, "16385.tar.lz4", ts));
    write_file_durable(dir / "backup_manifest", "{}");
    info.files.push_back({"backup_manifest", 2, 2, sha256_hex("{}")});
    info.tablespaces.push_back({16385, "/old/place", "16385.tar.lz4"});
  }
};

TEST(BackupExtract, UnpacksBaseAndTablespacesAndRepointsTheLinks) {
  Fixture f;
  const fs::path target = f.tmp.path() / "restore" / "data";
  const fs::path ts = f.tmp.path() / "ts";
  ExtractStats stats = extract_backup(f.repo, f.info, target, {{16385, ts}});
  EXPECT_EQ(stats.files, 3u);
  EXPECT_EQ(read_file(target / "PG_VERSION"), "15\n");
  EXPECT_EQ(read_file(target / "global/pg_control"), std::string(8192, 'c'));
  EXPECT_EQ(fs::read_symlink(target / "pg_tblspc/16385"), ts);
  EXPECT_EQ(read_file(target / "pg_tblspc/16385/PG_15_202209061/16384/16386"), "rel");
  EXPECT_FALSE(fs::exists(target / "backup_manifest"));
  struct stat st;
  ASSERT_EQ(::stat(target.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST(BackupExtract, ADamagedFileIsNamedAndNothingIsWritten) {
  Fixture f;
  const fs::path stored = backup_dir(f.repo, f.info.id) / "16385.tar.lz4";
  std::string bytes = read_file(stored);
  bytes[bytes.size() / 2] ^= 1;
  write_file_durable(stored, bytes);
  const fs::path target = f.tmp.path() / "data";
  try {
    extract_backup(f.repo, f.info, target, {{16385, f.tmp.path() / "ts"}});
    ADD_FAILURE() << "extracted a damaged backup";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("16385.tar.lz4"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(target));
  EXPECT_FALSE(fs::exists(f.tmp.path() / "ts"));
  EXPECT_THROW(verify_backup_files(f.repo, f.info), Error);
}

TEST(BackupExtract, MissingFileAndIncompleteBackupAreRefused) {
  Fixture f;
  BackupInfo running = f.info;
  running.status = BackupStatus::running;
  EXPECT_THROW(extract_backup(f.repo, running, f.tmp.path() / "d1", {}), Error);
  fs::remove(backup_dir(f.repo, f.info.id) / "backup_manifest");
  EXPECT_THROW(verify_backup_files(f.repo, f.info), Error);
}

TEST(BackupExtract, RefusesANonEmptyTarget) {
  Fixture f;
  const fs::path target = f.tmp.path() / "busy";
  make_dirs(target);
  write_file_durable(target / "x", "x");
  EXPECT_THROW(extract_backup(f.repo, f.info, target, {{16385, f.tmp.path() / "ts"}}), Error);
  EXPECT_THROW(extract_backup(f.repo, f.info, f.tmp.path() / "t2", {{99, f.tmp.path() / "ts"}}),
               Error);
}

}  // namespace
}  // namespace walvault
