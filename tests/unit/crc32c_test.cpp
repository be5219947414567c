#include "pitr/crc32c.h"

#include <gtest/gtest.h>

#include <random>
#include <string_view>
#include <vector>

namespace walvault {
namespace {

uint32_t crc_of(std::span<const std::byte> d, bool portable) {
  const uint32_t c =
      portable ? crc32c_update_portable(crc32c_init(), d) : crc32c_update(crc32c_init(), d);
  return crc32c_finish(c);
}

TEST(Crc32c, KnownVectors) {
  const std::string_view check = "123456789";
  const auto bytes = std::as_bytes(std::span(check.data(), check.size()));
  EXPECT_EQ(crc_of(bytes, true), 0xE3069283u);  // the CRC-32C check value
  EXPECT_EQ(crc_of(bytes, false), 0xE3069283u);
  EXPECT_EQ(crc_of({}, false), 0u);
}

TEST(Crc32c, FastPathMatchesTablesAtEveryLengthAndSplit) {
  std::mt19937 rng(7);
  std::vector<std::byte> data(3000);
  for (auto& b : data) b = std::byte(rng() & 0xff);
  for (size_t len :
       {size_t(0), size_t(1), size_t(7), size_t(8), size_t(9), size_t(63), size_t(3000)}) {
    const auto d = std::span(data).first(len);
    EXPECT_EQ(crc_of(d, true), crc_of(d, false)) << len;
    // Split updates give the same result as one.
    for (size_t cut : {size_t(0), len / 3, len}) {
      uint32_t c = crc32c_update(crc32c_init(), d.first(cut));
      c = crc32c_update(c, d.subspan(cut));
      EXPECT_EQ(crc32c_finish(c), crc_of(d, true)) << len << " " << cut;
    }
  }
}

}  // namespace
}  // namespace walvault
