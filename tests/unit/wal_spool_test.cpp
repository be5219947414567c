// The wal-get prefetch spool: bounded, written atomically, each segment served once.
#include "pitr/wal_spool.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "core/error.h"
#include "core/fs.h"

namespace walvault {
namespace {

constexpr uint64_t kSeg = 1024 * 1024;

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/walvault-spool-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::vector<std::byte> segment(uint8_t fill) {
  return std::vector<std::byte>(kSeg, std::byte{fill});
}
std::string name(uint64_t segno) {
  return wal_file_name(TimelineId(1), SegmentNo(segno), kSeg);
}

TEST(WalSpool, BoundedByCountAndBytes) {
  TempDir t;
  WalSpool spool(t.path / "spool", kSeg, 3, 100 * kSeg);
  EXPECT_FALSE(spool.put(name(1), segment(1)));  // no directory yet: nothing is created
  spool.create();
  EXPECT_TRUE(spool.put(name(1), segment(1)));
  EXPECT_TRUE(spool.put(name(2), segment(2)));
  EXPECT_TRUE(spool.put(name(3), segment(3)));
  EXPECT_FALSE(spool.has_room());
  EXPECT_FALSE(spool.put(name(4), segment(4)));
  EXPECT_EQ(spool.entries().size(), 3u);

  WalSpool by_bytes(t.path / "spool2", kSeg, 10, 2 * kSeg + 10);
  by_bytes.create();
  EXPECT_TRUE(by_bytes.put(name(1), segment(1)));
  EXPECT_TRUE(by_bytes.put(name(2), segment(2)));
  EXPECT_FALSE(by_bytes.put(name(3), segment(3)));
  EXPECT_EQ(by_bytes.entries().size(), 2u);
}

TEST(WalSpool, OnlyWholeSegmentsAreSpooledAndServed) {
  TempDir t;
  WalSpool spool(t.path, kSeg, 8, 8 * kSeg);
  EXPECT_THROW(spool.put(name(1), std::vector<std::byte>(kSeg - 1)), Error);
  EXPECT_TRUE(spool.entries().empty());
  // A temporary file being written is not an entry and is not served.
  std::ofstream(t.path / (name(2) + ".tmp.123")) << "half";
  EXPECT_TRUE(spool.writing(name(2)));
  EXPECT_TRUE(spool.entries().empty());
  EXPECT_FALSE(spool.take(name(2), t.path / "dest"));
  // A file of the wrong length under a segment's name is dropped, never handed over.
  std::ofstream(t.path / name(3)) << "short";
  EXPECT_FALSE(spool.take(name(3), t.path / "dest"));
  EXPECT_FALSE(fs::exists(t.path / name(3)));
  EXPECT_FALSE(fs::exists(t.path / "dest"));
}

TEST(WalSpool, ServedOnceAndThenGone) {
  TempDir t;
  WalSpool spool(t.path / "s", kSeg, 8, 8 * kSeg);
  spool.create();
  ASSERT_TRUE(spool.put(name(5), segment(5)));
  const fs::path dest = t.path / "RECOVERYXLOG";
  ASSERT_TRUE(spool.take(name(5), dest));
  EXPECT_EQ(fs::file_size(dest), kSeg);
  EXPECT_EQ(read_file(dest)[0], char(5));
  EXPECT_FALSE(spool.contains(name(5)));
  EXPECT_FALSE(spool.take(name(5), dest));
  EXPECT_TRUE(spool.has_room());
}

TEST(WalSpool, DropsWhatWillNotBeAskedAgain) {
  TempDir t;
  WalSpool spool(t.path, kSeg, 8, 8 * kSeg);
  for (uint64_t s = 1; s <= 4; ++s) ASSERT_TRUE(spool.put(name(s), segment(uint8_t(s))));
  const std::string other_tli = wal_file_name(TimelineId(2), SegmentNo(3), kSeg);
  ASSERT_TRUE(spool.put(other_tli, segment(9)));
  spool.drop_before(WalFileName{TimelineId(1), SegmentNo(3)});
  EXPECT_EQ(spool.entries(), (std::vector<std::string>{name(3), name(4)}));
}

TEST(WalSpool, WantCountersAndRemove) {
  TempDir t;
  WalSpool spool(t.path / "s", kSeg, 8, 8 * kSeg);
  spool.create();
  EXPECT_FALSE(spool.want());
  spool.set_want(name(7));
  EXPECT_EQ(spool.want(), name(7));
  spool.count_request(true);
  spool.count_request(false);
  spool.count_prefetched(3);
  spool.count_prefetched(2);
  const auto s = spool.stats();
  EXPECT_EQ(s.served_from_spool, 1u);
  EXPECT_EQ(s.requests, 2u);
  EXPECT_EQ(s.prefetched, 2u);
  EXPECT_EQ(s.max_spooled, 3u);
  spool.remove();
  EXPECT_FALSE(spool.exists());
  EXPECT_FALSE(spool.put(name(8), segment(8)));
  EXPECT_FALSE(fs::exists(t.path / "s"));
}

}  // namespace
}  // namespace walvault
