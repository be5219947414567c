#include "core/lz4_frame.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <random>
#include <vector>

#include "core/error.h"

namespace walvault {
namespace {

std::vector<std::byte> sample(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::byte> out(n);
  for (size_t i = 0; i < n; ++i) {
    // Half compressible text-like bytes, half noise: exercises raw and compressed blocks.
    out[i] = (i / 4096) % 2 ? std::byte(rng() & 0xff) : std::byte('a' + (i % 7));
  }
  return out;
}

std::vector<std::byte> encode(const std::vector<std::byte>& content, bool finish) {
  Lz4FrameEncoder enc;
  std::vector<std::byte> out(Lz4FrameEncoder::kHeaderBytes);
  enc.write_header(out.data());
  std::vector<std::byte> block(Lz4FrameEncoder::max_block_bytes());
  for (size_t pos = 0; pos < content.size(); pos += Lz4FrameEncoder::kBlockSize) {
    size_t n = std::min(Lz4FrameEncoder::kBlockSize, content.size() - pos);
    size_t w = enc.write_block({content.data() + pos, n}, block.data());
    out.insert(out.end(), block.begin(), block.begin() + long(w));
  }
  if (finish) {
    std::byte end[Lz4FrameEncoder::kEndBytes];
    enc.write_end(end);
    out.insert(out.end(), end, end + sizeof end);
  }
  return out;
}

TEST(Lz4Frame, CompleteFrameRoundTrips) {
  auto content = sample(1'000'000, 1);
  auto frame = encode(content, true);
  std::vector<std::byte> decoded;
  auto scan = scan_lz4_frame(frame, [&](std::span<const std::byte> d) {
    decoded.insert(decoded.end(), d.begin(), d.end());
  });
  EXPECT_TRUE(scan.complete) << scan.problem;
  EXPECT_EQ(scan.valid_bytes, frame.size());
  EXPECT_EQ(decoded, content);
}

TEST(Lz4Frame, TornTailIsCutAtLastWholeBlock) {
  auto content = sample(3 * Lz4FrameEncoder::kBlockSize, 2);
  auto frame = encode(content, false);
  auto whole = scan_lz4_frame(frame, nullptr);
  ASSERT_EQ(whole.content_bytes, content.size());
  frame.resize(frame.size() - 10);  // tear the last block
  auto torn = scan_lz4_frame(frame, nullptr);
  EXPECT_FALSE(torn.complete);
  EXPECT_EQ(torn.content_bytes, 2 * Lz4FrameEncoder::kBlockSize);
  EXPECT_EQ(torn.problem, "torn block");
}

TEST(Lz4Frame, ZeroFilledTailIsNotContent) {
  auto content = sample(Lz4FrameEncoder::kBlockSize, 3);
  auto frame = encode(content, false);
  const size_t good = frame.size();
  frame.resize(good + 8192, std::byte(0));  // what a crash can leave after an extend
  auto scan = scan_lz4_frame(frame, nullptr);
  // Four zero bytes read as an end mark; the content checksum then does not match.
  EXPECT_FALSE(scan.complete);
  EXPECT_EQ(scan.valid_bytes, good);
  EXPECT_EQ(scan.content_bytes, content.size());
}

TEST(Lz4Frame, FlippedBitIsDetected) {
  auto content = sample(2 * Lz4FrameEncoder::kBlockSize, 4);
  auto frame = encode(content, true);
  frame[frame.size() / 2] ^= std::byte(0x10);
  auto scan = scan_lz4_frame(frame, nullptr);
  EXPECT_FALSE(scan.complete);
  EXPECT_EQ(scan.content_bytes, Lz4FrameEncoder::kBlockSize);
}

TEST(Lz4Frame, ResumedFrameHasCorrectContentChecksum) {
  auto content = sample(2 * Lz4FrameEncoder::kBlockSize + 100, 5);
  auto first = encode({content.begin(), content.begin() + Lz4FrameEncoder::kBlockSize}, false);
  // A new encoder continues the frame after a restart.
  Lz4FrameEncoder enc;
  enc.account_existing({content.data(), Lz4FrameEncoder::kBlockSize});
  std::vector<std::byte> block(Lz4FrameEncoder::max_block_bytes());
  for (size_t pos = Lz4FrameEncoder::kBlockSize; pos < content.size();
       pos += Lz4FrameEncoder::kBlockSize) {
    size_t n = std::min(Lz4FrameEncoder::kBlockSize, content.size() - pos);
    size_t w = enc.write_block({content.data() + pos, n}, block.data());
    first.insert(first.end(), block.begin(), block.begin() + long(w));
  }
  std::byte end[Lz4FrameEncoder::kEndBytes];
  enc.write_end(end);
  first.insert(first.end(), end, end + sizeof end);
  auto scan = scan_lz4_frame(first, nullptr);
  EXPECT_TRUE(scan.complete) << scan.problem;
  EXPECT_EQ(scan.content_bytes, content.size());
}

}  // namespace
}  // namespace walvault

namespace walvault {
namespace {

// decode_lz4_file on whole frames (ours and the lz4 tool's) must not call them truncated.
TEST(Lz4Frame, DecodeFileReadsACompleteFrame) {
  const auto content = sample(700'000, 3);
  const auto frame = encode(content, /*finish=*/true);
  const fs::path path =
      fs::temp_directory_path() / ("walvault-lz4-decode-" + std::to_string(::getpid()));
  write_file_durable(path,
                     std::string_view(reinterpret_cast<const char*>(frame.data()), frame.size()));
  std::vector<std::byte> decoded;
  decode_lz4_file(path, [&](std::span<const std::byte> part) {
    decoded.insert(decoded.end(), part.begin(), part.end());
  });
  EXPECT_EQ(decoded, content);
  const auto torn = encode(content, /*finish=*/false);
  write_file_durable(path,
                     std::string_view(reinterpret_cast<const char*>(torn.data()), torn.size()));
  EXPECT_THROW(decode_lz4_file(path, [](std::span<const std::byte>) {}), Error);
  fs::remove(path);
}

}  // namespace
}  // namespace walvault
