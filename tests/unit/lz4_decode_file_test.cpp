// decode_lz4_file on frames written by liblz4 itself (what `lz4` produces) and by our
// encoder; whole, truncated, and followed by garbage.
#include <gtest/gtest.h>
#include <lz4frame.h>
#include <unistd.h>

#include "core/error.h"
#include "core/lz4_frame.h"

namespace walvault {
namespace {

std::string lz4_tool_frame(const std::string& content) {
  LZ4F_preferences_t prefs{};
  prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
  std::string out(LZ4F_compressFrameBound(content.size(), &prefs), '\0');
  size_t n = LZ4F_compressFrame(out.data(), out.size(), content.data(), content.size(), &prefs);
  EXPECT_FALSE(LZ4F_isError(n));
  out.resize(n);
  return out;
}

std::string decode(const std::string& frame) {
  char tmpl[] = "/tmp/walvault-lz4-XXXXXX";
  int fd = ::mkstemp(tmpl);
  EXPECT_GE(fd, 0);
  ::close(fd);
  write_file_durable(tmpl, frame);
  std::string out;
  try {
    decode_lz4_file(tmpl, [&](std::span<const std::byte> d) {
      out.append(reinterpret_cast<const char*>(d.data()), d.size());
    });
  } catch (...) {
    ::unlink(tmpl);
    throw;
  }
  ::unlink(tmpl);
  return out;
}

std::string content_of(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = char((i / 3) * 31 % 253);
  return s;
}

TEST(Lz4DecodeFile, DecodesWholeFramesOfAnySize) {
  for (size_t n : {size_t(0), size_t(1), size_t(300'000), size_t(5'000'000)}) {
    const std::string content = content_of(n);
    EXPECT_EQ(decode(lz4_tool_frame(content)), content) << n;
  }
}

TEST(Lz4DecodeFile, RefusesTruncatedFramesAndTrailingBytes) {
  const std::string frame = lz4_tool_frame(content_of(1'000'000));
  EXPECT_THROW(decode(frame.substr(0, frame.size() - 1)), Error);
  EXPECT_THROW(decode(frame.substr(0, frame.size() / 2)), Error);
  EXPECT_THROW(decode(""), Error);
  EXPECT_THROW(decode(frame + "garbage"), Error);
}

}  // namespace
}  // namespace walvault
