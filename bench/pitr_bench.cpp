// What planning and info cost per byte of WAL: CRC-32C, the record scanner, and lz4 decoding
// plus scanning of a real segment (tests/fixtures/wal).

#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "core/lz4_frame.h"
#include "pitr/crc32c.h"
#include "pitr/wal_records.h"

namespace walvault {
namespace {

const fs::path kSegment =
    fs::path(WALVAULT_SOURCE_DIR) / "tests/fixtures/wal/000000010000000000000007.lz4";

std::vector<std::byte> random_bytes(size_t n) {
  std::mt19937 rng(1);
  std::vector<std::byte> v(n);
  for (auto& b : v) b = std::byte(rng() & 0xff);
  return v;
}

void BM_Crc32c(benchmark::State& state) {
  const auto data = random_bytes(1 << 20);
  for (auto _ : state) benchmark::DoNotOptimize(crc32c_update(crc32c_init(), data));
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(data.size()));
}
BENCHMARK(BM_Crc32c);

void BM_Crc32cPortable(benchmark::State& state) {
  const auto data = random_bytes(1 << 20);
  for (auto _ : state) benchmark::DoNotOptimize(crc32c_update_portable(crc32c_init(), data));
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(data.size()));
}
BENCHMARK(BM_Crc32cPortable);

std::vector<std::byte> decoded_segment() {
  std::vector<std::byte> out;
  decode_lz4_file(kSegment,
                  [&](std::span<const std::byte> d) { out.insert(out.end(), d.begin(), d.end()); });
  return out;
}

void BM_ScanSegment(benchmark::State& state) {
  const auto seg = decoded_segment();
  size_t events = 0;
  for (auto _ : state) {
    WalRecordScanner s(seg.size(), 15, [&](const WalEvent&) { ++events; });
    s.feed(Lsn(7 * seg.size()), seg);
    benchmark::DoNotOptimize(s.records());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(seg.size()));
}
BENCHMARK(BM_ScanSegment);

void BM_DecodeAndScanSegment(benchmark::State& state) {
  const uint64_t seg_size = 1 << 20;
  for (auto _ : state) {
    WalRecordScanner s(seg_size, 15, nullptr);
    Lsn at(7 * seg_size);
    decode_lz4_file(kSegment, [&](std::span<const std::byte> d) {
      s.feed(at, d);
      at = at + d.size();
    });
    benchmark::DoNotOptimize(s.records());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(seg_size));
}
BENCHMARK(BM_DecodeAndScanSegment);

}  // namespace
}  // namespace walvault
