#include "core/chunker.h"

#include <array>
#include <bit>
#include <cassert>

namespace walvault {
namespace {

constexpr uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

constexpr std::array<uint64_t, 256> make_gear_table() {
  std::array<uint64_t, 256> table{};
  uint64_t state = 0x77616C7661756C74ull;  // "walvault"
  for (auto& v : table) v = splitmix64(state);
  return table;
}

constexpr std::array<uint64_t, 256> kGear = make_gear_table();

// The top `bits` bits set: a cut when all of them are zero (probability 2^-bits per byte).
constexpr uint64_t high_mask(int bits) {
  return bits <= 0 ? 0 : ~uint64_t(0) << (64 - bits);
}

}  // namespace

uint64_t gear_value(uint8_t byte) {
  return kGear[byte];
}

size_t find_chunk_cut(std::span<const std::byte> data, const ChunkerParams& params) {
  assert(std::has_single_bit(params.avg_bytes));
  assert(params.min_bytes < params.avg_bytes && params.avg_bytes < params.max_bytes);
  const size_t n = data.size();
  if (n <= params.min_bytes) return n;
  const int avg_bits = std::countr_zero(params.avg_bytes);
  // Two bits of normalisation either side of the average, as FastCDC suggests.
  const uint64_t strict = high_mask(avg_bits + 2);
  const uint64_t loose = high_mask(avg_bits - 2);
  const size_t end = n < params.max_bytes ? n : params.max_bytes;
  const size_t normal = params.avg_bytes < end ? params.avg_bytes : end;
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  uint64_t h = 0;
  // The hash starts afresh at min_bytes - 64 so that the first testable position already
  // sees a full 64-byte window, independent of where the chunk began.
  size_t i = params.min_bytes - 64;
  for (; i < params.min_bytes; ++i) h = (h << 1) + kGear[p[i]];
  for (; i < normal; ++i) {
    h = (h << 1) + kGear[p[i]];
    if ((h & strict) == 0) return i + 1;
  }
  for (; i < end; ++i) {
    h = (h << 1) + kGear[p[i]];
    if ((h & loose) == 0) return i + 1;
  }
  return end;
}

}  // namespace walvault
