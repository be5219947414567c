#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "core/chunker.h"
#include "core/fs.h"
#include "core/hash.h"
#include "snapshot_test_util.h"

namespace walvault {
namespace {

// Chunk lengths of data, as the snapshot writer cuts a file (windows of max_bytes).
std::vector<size_t> chunk_sizes(std::string_view data, const ChunkerParams& p = {}) {
  std::vector<size_t> out;
  size_t pos = 0;
  while (pos < data.size()) {
    const size_t avail = std::min(p.max_bytes, data.size() - pos);
    const size_t cut = find_chunk_cut(as_bytes(data.substr(pos, avail)), p);
    out.push_back(cut);
    pos += cut;
  }
  return out;
}

std::vector<std::string> chunk_hashes(std::string_view data) {
  std::vector<std::string> out;
  size_t pos = 0;
  for (size_t len : chunk_sizes(data)) {
    out.push_back(sha256_hex(data.substr(pos, len)));
    pos += len;
  }
  return out;
}

size_t new_chunks(const std::vector<std::string>& before, const std::vector<std::string>& after) {
  const std::set<std::string> old(before.begin(), before.end());
  size_t n = 0;
  for (const auto& h : after) n += old.count(h) ? 0 : 1;
  return n;
}

TEST(SnapshotChunker, SmallInputIsOneChunk) {
  const ChunkerParams p;
  EXPECT_EQ(find_chunk_cut({}, p), 0u);
  const std::string small = testing::random_bytes(p.min_bytes, 1);
  EXPECT_EQ(find_chunk_cut(as_bytes(small), p), p.min_bytes);
}

TEST(SnapshotChunker, SizesStayWithinBoundsAndAverageNearTarget) {
  const ChunkerParams p;
  const std::string data = testing::random_bytes(64 << 20, 7);
  const std::vector<size_t> sizes = chunk_sizes(data, p);
  size_t total = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    total += sizes[i];
    if (i + 1 < sizes.size()) {
      EXPECT_GE(sizes[i], p.min_bytes);
    }
    EXPECT_LE(sizes[i], p.max_bytes);
  }
  EXPECT_EQ(total, data.size());
  const double avg = double(total) / double(sizes.size());
  EXPECT_GT(avg, double(p.avg_bytes) * 0.75) << sizes.size() << " chunks";
  EXPECT_LT(avg, double(p.avg_bytes) * 1.5) << sizes.size() << " chunks";
}

TEST(SnapshotChunker, CutsAreDeterministic) {
  const std::string data = testing::random_bytes(8 << 20, 3);
  EXPECT_EQ(chunk_sizes(data), chunk_sizes(data));
  // The table is part of what makes snapshots share chunks: pin a few entries.
  EXPECT_EQ(gear_value(0), gear_value(0));
  EXPECT_NE(gear_value(0), gear_value(1));
}

TEST(SnapshotChunker, OneChangedByteAddsAboutOneChunk) {
  std::string data = testing::random_bytes(32 << 20, 11);
  const auto before = chunk_hashes(data);
  data[data.size() / 2] ^= 0x01;
  const auto after = chunk_hashes(data);
  EXPECT_GE(new_chunks(before, after), 1u);
  EXPECT_LE(new_chunks(before, after), 2u);
  EXPECT_NEAR(double(after.size()), double(before.size()), 1.0);
}

TEST(SnapshotChunker, InsertedBytesDoNotShiftEveryLaterChunk) {
  std::string data = testing::random_bytes(32 << 20, 12);
  const auto before = chunk_hashes(data);
  data.insert(data.size() / 3, "inserted");
  const auto after = chunk_hashes(data);
  EXPECT_LE(new_chunks(before, after), 2u);
}

TEST(SnapshotChunker, CompressibleDataStillCutsAtTheMaximum) {
  const ChunkerParams p;
  const std::string zeros(5 * p.max_bytes + 17, '\0');
  const auto sizes = chunk_sizes(zeros, p);
  ASSERT_EQ(sizes.size(), 6u);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(sizes[i], p.max_bytes);
  EXPECT_EQ(sizes[5], 17u);
}

}  // namespace
}  // namespace walvault
