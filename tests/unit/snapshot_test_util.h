#pragma once
// Helpers for the snapshot tests: an authentik-shaped directory tree and a byte-for-byte,
// metadata-for-metadata description of a tree to compare restored trees with.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/fs.h"
#include "core/hash.h"

namespace walvault::testing {

inline void write_bytes(const fs::path& p, std::string_view bytes, mode_t mode = 0644) {
  fs::create_directories(p.parent_path());
  UniqueFd fd(::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) throw std::runtime_error("cannot write " + p.string());
  write_all(fd.get(), as_bytes(bytes), p);
  ::fchmod(fd.get(), mode);
}

inline std::string random_bytes(size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t v = rng();
    for (size_t k = 0; k < 8 && i + k < n; ++k) out[i + k] = char((v >> (8 * k)) & 0xff);
  }
  return out;
}

inline void set_mtime(const fs::path& p, int64_t sec, long nsec = 0) {
  const struct timespec t[2] = {{sec, nsec}, {sec, nsec}};
  ::utimensat(AT_FDCWD, p.c_str(), t, AT_SYMLINK_NOFOLLOW);
}

// /data, /certs, /custom-templates, /blueprints in one tree (the tests snapshot subtrees).
inline void make_authentik_tree(const fs::path& root) {
  write_bytes(root / "media/public/application-icons/grafana.png",
              "\x89PNG\r\n\x1a\n" + random_bytes(40000, 1));
  write_bytes(root / "media/public/flow-backgrounds/background.jpg",
              "\xff\xd8\xff\xe0" + random_bytes(300000, 2));
  write_bytes(root / "media/public/uploads/2026/12/report.csv",
              std::string("user,login\nakadmin,2026-12-03\n"));
  write_bytes(root / "certs/authentik.pem", "-----BEGIN CERTIFICATE-----\nMIIB" +
                                                std::string(900, 'A') +
                                                "\n-----END CERTIFICATE-----\n");
  write_bytes(root / "certs/authentik.key",
              "-----BEGIN PRIVATE KEY-----\nMIIE" + std::string(1600, 'B') +
                  "\n-----END PRIVATE KEY-----\n",
              0600);
  write_bytes(root / "custom-templates/login.html",
              "{% extends 'login/base.html' %}\n{% block title %}Welcome{% endblock %}\n");
  write_bytes(
      root / "blueprints/custom/flows.yaml",
      "version: 1\nmetadata:\n  name: custom-flows\nentries:\n  - model: authentik_flows.flow\n");
  fs::create_directories(root / "media/public/empty");
  fs::create_symlink("../certs/authentik.pem", root / "media/current.pem");
  ::chmod((root / "certs").c_str(), 0750);
  set_mtime(root / "certs/authentik.pem", 1764770000, 123456789);
  set_mtime(root / "media/current.pem", 1764770001, 5);
}

// One line per entry: type, mode, owner, mtime, size and content hash or link target.
inline std::map<std::string, std::string> describe_tree(const fs::path& root) {
  std::map<std::string, std::string> out;
  auto describe = [&](const fs::path& p, const std::string& rel) {
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) throw std::runtime_error("lstat " + p.string());
    std::string d = std::to_string(st.st_mode) + " " + std::to_string(st.st_uid) + ":" +
                    std::to_string(st.st_gid) + " mtime " + std::to_string(st.st_mtim.tv_sec) +
                    "." + std::to_string(st.st_mtim.tv_nsec);
    if (S_ISREG(st.st_mode)) {
      d += " size " + std::to_string(st.st_size) + " sha256 " + sha256_hex(read_file(p));
    } else if (S_ISLNK(st.st_mode)) {
      d += " -> " + fs::read_symlink(p).string();
    }
    out[rel] = d;
  };
  describe(root, ".");
  for (auto it = fs::recursive_directory_iterator(root); it != fs::end(it); ++it) {
    describe(it->path(), fs::relative(it->path(), root).string());
  }
  return out;
}

}  // namespace walvault::testing
