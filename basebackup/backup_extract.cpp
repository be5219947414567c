#include "basebackup/backup_extract.h"

#include <fcntl.h>

#include <memory>
#include <vector>

#include "core/error.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/lz4_frame.h"
#include "core/lz4_pipeline.h"
#include "core/tar.h"
#include "core/tar_extract.h"

namespace walvault {
namespace {

constexpr const char* kBaseArchive = "base.tar.lz4";

struct Target {
  fs::path stored;  // the .tar.lz4 in the repository
  fs::path dir;     // where it is unpacked
};

std::string hash_file(const fs::path& path, uint64_t& size) {
  UniqueFd fd = open_or_throw(path, O_RDONLY);
  Sha256 sha;
  std::vector<std::byte> buf(1 << 20);
  size = 0;
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw errno_error("could not read \"" + path.string() + "\"", errno);
    }
    if (n == 0) break;
    sha.update(std::span<const std::byte>(buf.data(), size_t(n)));
    size += uint64_t(n);
  }
  return sha.hex_digest();
}

void prepare_dir(const fs::path& dir, const char* what) {
  if (!is_absent_or_empty_dir(dir)) {
    throw Error(std::string(what) + " \"" + dir.string() + "\" is not empty",
                "restore into an empty or absent directory");
  }
  make_dirs(dir);
}

}  // namespace

void verify_backup_files(const Repository& repo, const BackupInfo& backup) {
  const fs::path dir = backup_dir(repo, backup.id);
  bool has_base = false;
  for (const auto& f : backup.files) {
    if (f.name.find('/') != std::string::npos || f.name.empty() || f.name == "." ||
        f.name == "..") {
      throw Error("backup " + backup.id + " lists an invalid file name \"" + f.name + "\"");
    }
    const fs::path path = dir / f.name;
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) {
      throw Error("backup " + backup.id + " is damaged: \"" + path.string() + "\" is missing",
                  "run walvault verify; take a new backup");
    }
    uint64_t size = 0;
    const std::string sha = hash_file(path, size);
    if (size != f.stored_bytes || sha != f.sha256) {
      throw Error("backup " + backup.id + " is damaged: \"" + path.string() +
                      "\" does not match its checksum in backup.json",
                  "run walvault verify; take a new backup");
    }
    if (f.name == kBaseArchive) has_base = true;
  }
  if (!has_base) throw Error("backup " + backup.id + " has no " + kBaseArchive);
  for (const auto& t : backup.tablespaces) {
    bool listed = false;
    for (const auto& f : backup.files) listed = listed || f.name == t.file;
    if (!listed) {
      throw Error("backup " + backup.id + " lacks the archive of tablespace " +
                  std::to_string(t.oid));
    }
  }
}

ExtractStats extract_backup(const Repository& repo, const BackupInfo& backup,
                            const fs::path& target_dir,
                            const std::map<uint32_t, fs::path>& tablespace_dirs,
                            bool files_verified) {
  if (backup.status != BackupStatus::complete) {
    throw Error("backup " + backup.id + " is " + std::string(to_string(backup.status)) +
                ", only a complete backup can be restored");
  }
  if (!files_verified) verify_backup_files(repo, backup);
  for (const auto& [oid, path] : tablespace_dirs) {
    bool known = false;
    for (const auto& t : backup.tablespaces) known = known || t.oid == oid;
    if (!known) {
      throw usage_error("backup " + backup.id + " has no tablespace with oid " +
                        std::to_string(oid));
    }
    if (!path.is_absolute()) {
      throw usage_error("tablespace directory \"" + path.string() + "\" is not absolute");
    }
  }

  const fs::path bdir = backup_dir(repo, backup.id);
  std::map<uint32_t, fs::path> ts_dir;  // oid -> chosen directory
  for (const auto& t : backup.tablespaces) {
    auto it = tablespace_dirs.find(t.oid);
    ts_dir[t.oid] = it != tablespace_dirs.end() ? it->second : fs::path(t.location);
  }
  for (const auto& [oid, dir] : ts_dir) prepare_dir(dir, "tablespace directory");
  prepare_dir(target_dir, "target directory");

  // pg_tblspc/<oid> is a symlink to the tablespace; point it at where it is restored.
  auto symlink_target = [&ts_dir](const TarEntry& e) -> std::string {
    constexpr std::string_view kPrefix = "pg_tblspc/";
    if (e.path.starts_with(kPrefix)) {
      auto oid = parse_u32(std::string_view(e.path).substr(kPrefix.size()));
      if (oid) {
        auto it = ts_dir.find(*oid);
        if (it != ts_dir.end()) return it->second.string();
      }
    }
    return e.link_target;
  };

  std::vector<std::unique_ptr<TarExtractor>> extractors;
  ExtractStats stats;
  auto unpack = [&](const fs::path& stored, const fs::path& dir, TarExtractor::SymlinkTargetFn fn) {
    auto ex = std::make_unique<TarExtractor>(dir, std::move(fn));
    TarReader reader(*ex, stored.string());
    decode_lz4_file_pipelined(stored, [&](std::span<const std::byte> d) { reader.feed(d); });
    reader.finish();
    stats.files += ex->files();
    stats.bytes += ex->bytes();
    extractors.push_back(std::move(ex));
  };
  unpack(bdir / kBaseArchive, target_dir, symlink_target);
  for (const auto& t : backup.tablespaces) unpack(bdir / t.file, ts_dir.at(t.oid), {});
  for (auto& ex : extractors) ex->sync();
  log::info("extracted backup " + backup.id + ": " + std::to_string(stats.files) + " files, " +
            std::to_string(stats.bytes) + " bytes into " + target_dir.string());
  return stats;
}

}  // namespace walvault
