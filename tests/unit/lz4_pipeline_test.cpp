// decode_lz4_file_pipelined: the same content as decode_lz4_file, in order, across many
// queue hand-overs; errors from either thread reach the caller and stop the other.
#include "core/lz4_pipeline.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "archiver_test_util.h"
#include "core/error.h"
#include "core/lz4_frame.h"

namespace walvault {
namespace {

using testing::TempDir;
using testing::wal_like_bytes;

// Writes content as one frame of our encoder's independent blocks.
void write_frame(const fs::path& path, std::span<const std::byte> content) {
  Lz4FrameEncoder enc;
  std::vector<std::byte> out(Lz4FrameEncoder::kHeaderBytes);
  enc.write_header(out.data());
  std::vector<std::byte> block(Lz4FrameEncoder::max_block_bytes());
  for (size_t at = 0; at < content.size(); at += Lz4FrameEncoder::kBlockSize) {
    const size_t n = std::min(Lz4FrameEncoder::kBlockSize, content.size() - at);
    const size_t w = enc.write_block(content.subspan(at, n), block.data());
    out.insert(out.end(), block.begin(), block.begin() + long(w));
  }
  std::vector<std::byte> end(Lz4FrameEncoder::kEndBytes);
  enc.write_end(end.data());
  out.insert(out.end(), end.begin(), end.end());
  write_file_durable(path, std::string(reinterpret_cast<const char*>(out.data()), out.size()));
}

std::string as_string(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

TEST(Lz4Pipeline, DeliversTheWholeContentInOrder) {
  TempDir tmp;
  // About 40 MiB: several hand-overs (chunks of 4 to 8 MiB) through the bounded queue.
  const auto content = wal_like_bytes(40 * 1024 * 1024 + 12345, 7);
  const fs::path file = tmp.path() / "big.lz4";
  write_frame(file, content);
  std::string got;
  size_t calls = 0;
  decode_lz4_file_pipelined(file, [&](std::span<const std::byte> d) {
    got += as_string(d);
    ++calls;
  });
  EXPECT_EQ(got, as_string(content));
  EXPECT_GE(calls, 5u);
}

TEST(Lz4Pipeline, AnEmptyFrameDeliversNothing) {
  TempDir tmp;
  const fs::path file = tmp.path() / "empty.lz4";
  write_frame(file, {});
  size_t calls = 0;
  decode_lz4_file_pipelined(file, [&](std::span<const std::byte>) { ++calls; });
  EXPECT_EQ(calls, 0u);
}

TEST(Lz4Pipeline, DamageInTheFileIsRethrownToTheCaller) {
  TempDir tmp;
  const auto content = wal_like_bytes(12 * 1024 * 1024, 8);
  const fs::path file = tmp.path() / "bad.lz4";
  write_frame(file, content);
  std::string frame = read_file(file);
  frame[frame.size() / 2] ^= 0x55;  // a bit flip in the middle: a block checksum fails
  write_file_durable(file, frame);
  size_t delivered = 0;
  try {
    decode_lz4_file_pipelined(file, [&](std::span<const std::byte> d) { delivered += d.size(); });
    FAIL() << "damage was not reported";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is damaged"), std::string::npos) << e.what();
  }
  EXPECT_LT(delivered, content.size());
}

TEST(Lz4Pipeline, AConsumerErrorStopsTheDecoder) {
  TempDir tmp;
  const auto content = wal_like_bytes(64 * 1024 * 1024, 9);
  const fs::path file = tmp.path() / "big.lz4";
  write_frame(file, content);
  size_t calls = 0;
  EXPECT_THROW(decode_lz4_file_pipelined(file,
                                         [&](std::span<const std::byte>) {
                                           if (++calls == 2) throw std::runtime_error("disk full");
                                         }),
               std::runtime_error);
  EXPECT_EQ(calls, 2u);
}

TEST(Lz4Pipeline, AMissingFileIsAnError) {
  TempDir tmp;
  EXPECT_THROW(decode_lz4_file_pipelined(tmp.path() / "absent.lz4", [](auto) {}), Error);
}

}  // namespace
}  // namespace walvault
