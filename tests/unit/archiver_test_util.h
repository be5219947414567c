#pragma once
// Helpers shared by the archiver's unit tests: a temp repository and WAL-like test bytes.

#include <stdlib.h>

#include <random>
#include <string>
#include <vector>

#include "core/fs.h"
#include "core/repository.h"

namespace walvault::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "walvault-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

constexpr uint64_t kTestSegmentSize = 1 << 20;

inline Repository make_test_repo(const fs::path& root, uint64_t segment_size = kTestSegmentSize) {
  RepoIdentity id;
  id.system_identifier = "7300000000000000001";
  id.pg_version_num = 150000;
  id.wal_segment_size = segment_size;
  return Repository::open_or_create(root / "repo", id);
}

// Bytes that look a little like WAL: runs of compressible records between noise.
inline std::vector<std::byte> wal_like_bytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::byte> out(n);
  for (size_t i = 0; i < n; ++i) {
    out[i] = (i / 3000) % 3 == 0 ? std::byte(rng() & 0xff) : std::byte((i * 7 + seed) % 251);
  }
  return out;
}

}  // namespace walvault::testing
