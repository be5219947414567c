#include "core/pg_versions.h"

#include "core/error.h"

namespace walvault {
namespace {

struct MajorFacts {
  int major;
  uint16_t wal_page_magic;  // XLOG_PAGE_MAGIC in src/include/access/xlog_internal.h
};

// Checked against WAL written by a real server of each major (tests/integration/versions.sh
// and tests/unit/pg_versions_test.cpp).
constexpr MajorFacts kMajors[] = {
    {14, 0xD10D}, {15, 0xD110}, {16, 0xD113}, {17, 0xD116}, {18, 0xD118},
};

}  // namespace

std::string supported_majors_text() {
  std::string out;
  for (int m = kMinServerMajor; m <= kMaxServerMajor; ++m) {
    if (!out.empty()) out += m == kMaxServerMajor ? " and " : ", ";
    out += std::to_string(m);
  }
  return out;
}

void require_supported_major(int major, const std::string& what) {
  if (is_supported_major(major)) return;
  std::string hint = "walvault supports PostgreSQL " + supported_majors_text();
  if (major < kMinServerMajor) {
    hint +=
        "; upgrade the server (pg_upgrade) and start a new repository, or use an older "
        "backup tool for it";
  } else {
    hint += "; a walvault release that supports PostgreSQL " + std::to_string(major) + " is needed";
  }
  throw Error(
      what + " runs PostgreSQL " + std::to_string(major) + ", which this walvault does not support",
      hint);
}

std::optional<uint16_t> wal_page_magic(int major) {
  for (const auto& f : kMajors) {
    if (f.major == major) return f.wal_page_magic;
  }
  return std::nullopt;
}

std::optional<int> major_of_wal_page_magic(uint16_t magic) {
  for (const auto& f : kMajors) {
    if (f.wal_page_magic == magic) return f.major;
  }
  return std::nullopt;
}

}  // namespace walvault
