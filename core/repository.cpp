#include "core/repository.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "core/error.h"
#include "core/json.h"
#include "core/pg_versions.h"

namespace walvault {
namespace {
constexpr const char* kIdentityFile = "walvault.json";

// root writing into a repository that another user owns would leave files (0600, owned by
// root) that the owner — and the restore_command PostgreSQL runs as that owner — cannot read.
void refuse_foreign_owner_as_root(const fs::path& root) {
  if (::geteuid() != 0) return;
  struct stat st;
  if (::stat(root.c_str(), &st) != 0 || st.st_uid == 0) return;
  std::string owner = std::to_string(st.st_uid);
  if (struct passwd* pw = ::getpwuid(st.st_uid)) owner = pw->pw_name;
  throw Error("repository \"" + root.string() + "\" belongs to user " + owner +
                  "; running as root would leave files that " + owner + " cannot read",
              "run walvault as " + owner + ", e.g. runuser -u " + owner + " -- walvault ...");
}
}  // namespace

std::string_view compression_suffix(Compression c) {
  return c == Compression::lz4 ? ".lz4" : "";
}

std::optional<Compression> parse_compression(std::string_view text) {
  if (text == "lz4") return Compression::lz4;
  if (text == "none") return Compression::none;
  return std::nullopt;
}

fs::path Repository::segment_path(TimelineId tli, SegmentNo segno, Compression c,
                                  bool partial) const {
  std::string name = wal_file_name(tli, segno, segment_size());
  name += compression_suffix(c);
  if (partial) name += ".partial";
  return wal_dir(tli) / name;
}

RepoIdentity parse_repo_identity(std::string_view text, const fs::path& file) {
  const fs::path root = file.parent_path();
  try {
    const Json j = Json::parse(text);
    RepoIdentity id;
    const int version = j.at("format_version").get<int>();
    if (version != kRepoFormatVersion) {
      throw Error("repository \"" + root.string() + "\" has format version " +
                      std::to_string(version) + ", this walvault reads version " +
                      std::to_string(kRepoFormatVersion),
                  "use the walvault release that wrote this repository");
    }
    id.system_identifier = j.at("system_identifier").get<std::string>();
    if (id.system_identifier.empty() ||
        id.system_identifier.find_first_not_of("0123456789") != std::string::npos) {
      throw Error("\"" + file.string() + "\" is damaged: invalid system_identifier",
                  "restore the file from a copy, or use a new repository");
    }
    id.pg_version_num = j.at("pg_version_num").get<int>();
    id.wal_segment_size = j.at("wal_segment_size").get<uint64_t>();
    if (!is_valid_segment_size(id.wal_segment_size)) {
      throw Error("\"" + file.string() + "\" is damaged: invalid wal_segment_size",
                  "restore the file from a copy, or use a new repository");
    }
    return id;
  } catch (const Json::exception& e) {
    throw Error("\"" + file.string() + "\" is damaged: " + e.what(),
                "restore the file from a copy, or use a new repository");
  }
}

RepoIdentity Repository::read_identity(const fs::path& root) {
  const fs::path file = root / kIdentityFile;
  std::string text;
  try {
    text = read_file(file);
  } catch (const Error& e) {
    throw Error(
        "\"" + root.string() + "\" is not a readable walvault repository (" + e.what() + ")",
        "check --repo; a repository is created by the first walvault archive or backup");
  }
  return parse_repo_identity(text, file);
}

Repository Repository::open(const fs::path& root) {
  struct stat st;
  if (::stat(root.c_str(), &st) != 0) {
    throw errno_error("repository \"" + root.string() + "\" cannot be opened", errno,
                      "check --repo; a repository is created by the first walvault archive or "
                      "backup");
  }
  if (!S_ISDIR(st.st_mode)) throw Error("repository \"" + root.string() + "\" is not a directory");
  return Repository(root, read_identity(root));
}

Repository Repository::open_or_create(const fs::path& root, const RepoIdentity& server) {
  if (!is_absent_or_empty_dir(root)) {
    if (!fs::exists(root / kIdentityFile)) {
      throw Error("\"" + root.string() + "\" is not empty and is not a walvault repository",
                  "give --repo an empty or absent directory to create a new repository");
    }
    Repository repo = open(root);
    refuse_foreign_owner_as_root(root);
    const RepoIdentity& have = repo.identity();
    const int have_major = pg_major_of(have.pg_version_num);
    const int server_major = pg_major_of(server.pg_version_num);
    if (have_major != server_major) {
      // pg_upgrade makes a new cluster (a new system identifier) of another major: its WAL
      // and backups cannot continue the old cluster's history.
      throw Error("repository \"" + root.string() + "\" holds PostgreSQL " +
                      std::to_string(have_major) + " (database system " + have.system_identifier +
                      "), but the server runs PostgreSQL " + std::to_string(server_major) +
                      " (database system " + server.system_identifier + ")",
                  "one repository never mixes majors: after a major upgrade (pg_upgrade) start a "
                  "new repository with a new --repo and keep this one to restore the old "
                  "cluster");
    }
    if (have.system_identifier != server.system_identifier) {
      throw Error("repository \"" + root.string() + "\" belongs to database system " +
                      have.system_identifier + ", but the server is database system " +
                      server.system_identifier,
                  "a repository holds one cluster (a new initdb or pg_upgrade makes a new one); "
                  "use a new --repo for this server");
    }
    if (have.wal_segment_size != server.wal_segment_size) {
      throw Error("repository \"" + root.string() + "\" holds WAL segments of " +
                  std::to_string(have.wal_segment_size) + " bytes, the server uses " +
                  std::to_string(server.wal_segment_size));
    }
    return repo;
  }
  ::umask(077);
  make_dirs(root);
  make_dirs(root / "wal");
  make_dirs(root / "backups");
  make_dirs(root / "lock");
  Json j;
  j["format_version"] = kRepoFormatVersion;
  j["system_identifier"] = server.system_identifier;
  j["pg_version_num"] = server.pg_version_num;
  j["wal_segment_size"] = server.wal_segment_size;
  write_file_durable(root / kIdentityFile, j.dump(2) + "\n");
  return Repository(root, server);
}

std::vector<TimelineId> Repository::wal_timelines() const {
  std::vector<TimelineId> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(wal_root(), ec)) {
    if (!e.is_directory()) continue;
    const std::string name = e.path().filename().string();
    if (name.size() != 8) continue;
    auto tli = parse_history_file_name(name + ".history");
    if (tli) out.push_back(*tli);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<WalFileEntry> Repository::list_wal(TimelineId tli) const {
  std::vector<WalFileEntry> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(wal_dir(tli), ec)) {
    if (!e.is_regular_file()) continue;
    std::string name = e.path().filename().string();
    WalFileEntry entry;
    entry.path = e.path();
    if (name.ends_with(".partial")) {
      entry.partial = true;
      name.resize(name.size() - 8);
    }
    if (name.ends_with(".lz4")) {
      entry.compression = Compression::lz4;
      name.resize(name.size() - 4);
    }
    auto parsed = parse_wal_file_name(name, segment_size());
    if (!parsed || parsed->timeline != tli) continue;
    entry.timeline = tli;
    entry.segno = parsed->segno;
    out.push_back(std::move(entry));
  }
  std::sort(out.begin(), out.end(), [](const WalFileEntry& a, const WalFileEntry& b) {
    if (a.segno != b.segno) return a.segno < b.segno;
    return a.partial < b.partial;
  });
  return out;
}

std::optional<WalFileEntry> Repository::find_complete_segment(TimelineId tli,
                                                              SegmentNo segno) const {
  for (Compression c : {Compression::lz4, Compression::none}) {
    fs::path p = segment_path(tli, segno, c, false);
    if (fs::exists(p)) return WalFileEntry{tli, segno, c, false, p};
  }
  return std::nullopt;
}

}  // namespace walvault
