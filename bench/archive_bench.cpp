// What the archiver and wal-get cost per byte of real WAL, stage by stage:
//  - lz4 compression and decompression of real segments (the committed fixture,
//    tests/fixtures/wal, two 1 MiB segments of a PostgreSQL 15 cluster; or a segment of your
//    own: WALVAULT_BENCH_WAL=/path/to/000000010000000000000042, e.g. from pg_wal);
//  - the segment sink (io_uring vs pwrite, lz4 vs none, fsync per segment vs none), writing
//    16 MiB segments in 128 KiB messages (what a walsender sends) to a real file system:
//    WALVAULT_BENCH_DIR, default the temp directory (not /dev/shm: fsync must cost);
//  - parsing of replication messages;
//  - the restore side of WAL: find + decode an archived segment + hand it to the spool.
// Not part of ctest: run build/bench/walvault_bench --benchmark_filter=Archive|Lz4|Sink|...

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/io.h"
#include "core/log.h"
#include "core/lz4_frame.h"
#include "core/repository.h"
#include "pitr/wal_files.h"
#include "pitr/wal_spool.h"
#include "walarchiver/replication_source.h"
#include "walarchiver/segment_sink.h"

namespace walvault {
namespace {

constexpr uint64_t kSegmentBytes = 16 << 20;
constexpr size_t kMessageBytes = 128 << 10;  // a walsender's largest XLogData payload

const std::vector<std::byte>& real_wal() {
  static const std::vector<std::byte> wal = [] {
    std::vector<std::byte> out;
    if (const char* own = std::getenv("WALVAULT_BENCH_WAL")) {
      const std::string raw = read_file(own);
      const auto* p = reinterpret_cast<const std::byte*>(raw.data());
      out.assign(p, p + raw.size());
      return out;
    }
    const fs::path dir = fs::path(WALVAULT_SOURCE_DIR) / "tests/fixtures/wal";
    for (const char* name : {"000000010000000000000007.lz4", "000000010000000000000008.lz4"}) {
      decode_lz4_file(dir / name, [&](std::span<const std::byte> d) {
        out.insert(out.end(), d.begin(), d.end());
      });
    }
    return out;
  }();
  return wal;
}

// n bytes of real WAL (repeated as often as needed).
std::vector<std::byte> wal_bytes(size_t n) {
  const auto& wal = real_wal();
  std::vector<std::byte> out(n);
  for (size_t at = 0; at < n; at += wal.size()) {
    std::memcpy(out.data() + at, wal.data(), std::min(wal.size(), n - at));
  }
  return out;
}

fs::path bench_dir(const char* what) {
  const char* base = std::getenv("WALVAULT_BENCH_DIR");
  std::string tmpl = ((base ? fs::path(base) : fs::temp_directory_path()) /
                      (std::string("walvault-bench-") + what + "-XXXXXX"))
                         .string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
  return tmpl;
}

Repository bench_repo(const fs::path& root) {
  log::set_level(log::Level::warning);  // no "using io_uring" line per iteration
  RepoIdentity id;
  id.system_identifier = "7000000000000000001";
  id.pg_version_num = 150018;
  id.wal_segment_size = kSegmentBytes;
  return Repository::open_or_create(root, id);
}

// ---------------------------------------------------------------------------- lz4

void BM_Lz4CompressWal(benchmark::State& state) {
  const auto& wal = real_wal();
  Lz4FrameEncoder encoder;
  std::vector<std::byte> out(Lz4FrameEncoder::max_block_bytes());
  size_t compressed = 0;
  for (auto _ : state) {
    compressed = 0;
    for (size_t at = 0; at < wal.size(); at += Lz4FrameEncoder::kBlockSize) {
      const size_t n = std::min(Lz4FrameEncoder::kBlockSize, wal.size() - at);
      compressed += encoder.write_block({wal.data() + at, n}, out.data());
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations() * wal.size()));
  state.counters["ratio"] = double(wal.size()) / double(compressed);
}
BENCHMARK(BM_Lz4CompressWal)->Unit(benchmark::kMillisecond);

void BM_Lz4DecompressWal(benchmark::State& state) {
  const auto& wal = real_wal();
  Lz4FrameEncoder encoder;
  std::vector<std::byte> frame(Lz4FrameEncoder::kHeaderBytes + Lz4FrameEncoder::kEndBytes +
                               (wal.size() / Lz4FrameEncoder::kBlockSize + 1) *
                                   Lz4FrameEncoder::max_block_bytes());
  size_t used = encoder.write_header(frame.data());
  for (size_t at = 0; at < wal.size(); at += Lz4FrameEncoder::kBlockSize) {
    const size_t n = std::min(Lz4FrameEncoder::kBlockSize, wal.size() - at);
    used += encoder.write_block({wal.data() + at, n}, frame.data() + used);
  }
  used += encoder.write_end(frame.data() + used);
  frame.resize(used);
  for (auto _ : state) {
    size_t bytes = 0;
    const Lz4FrameScan scan =
        scan_lz4_frame(frame, [&](std::span<const std::byte> d) { bytes += d.size(); });
    if (!scan.complete || bytes != wal.size()) state.SkipWithError("frame did not decode");
  }
  state.SetBytesProcessed(int64_t(state.iterations() * wal.size()));
}
BENCHMARK(BM_Lz4DecompressWal)->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------------------- the sink

// Passes writes through and leaves out every fdatasync: "fsync per segment" switched off.
class NoSyncWriter final : public FileWriter {
 public:
  explicit NoSyncWriter(std::unique_ptr<FileWriter> inner) : inner_(std::move(inner)) {}
  std::string_view name() const override { return inner_->name(); }
  void write(int fd, std::span<const std::byte> data, uint64_t offset,
             const fs::path& path) override {
    inner_->write(fd, data, offset, path);
  }
  void complete(int fd, bool, const fs::path& path) override { inner_->complete(fd, false, path); }
  void wait_idle() noexcept override { inner_->wait_idle(); }

 private:
  std::unique_ptr<FileWriter> inner_;
};

// Args: io (0 pwrite, 1 io_uring), compression (0 none, 1 lz4), fsync per segment (0/1).
void BM_SegmentSink(benchmark::State& state) {
  const IoMode io = state.range(0) ? IoMode::uring : IoMode::pwrite;
  const Compression compression = state.range(1) ? Compression::lz4 : Compression::none;
  const bool fsync = state.range(2) != 0;
  constexpr int kSegments = 4;
  const auto data = wal_bytes(kSegments * kSegmentBytes);
  log::set_level(log::Level::warning);
  std::unique_ptr<FileWriter> writer;
  try {
    writer = make_file_writer(io);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  if (!fsync) writer = std::make_unique<NoSyncWriter>(std::move(writer));
  const fs::path root = bench_dir("sink");
  int round = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const fs::path dir = root / std::to_string(round++);
    const Repository repo = bench_repo(dir);
    state.ResumeTiming();
    {
      SegmentSink sink(repo, compression, *writer);
      const Lsn start(kSegmentBytes * 2);
      sink.open(TimelineId(1), start);
      Lsn at = start;
      for (size_t pos = 0; pos < data.size(); pos += kMessageBytes) {
        const size_t n = std::min(kMessageBytes, data.size() - pos);
        sink.write(at, {data.data() + pos, n});
        at = at + n;
      }
      sink.finish();
      if (sink.segments_completed() != kSegments) state.SkipWithError("segments missing");
    }
    state.PauseTiming();
    fs::remove_all(dir);
    state.ResumeTiming();
  }
  fs::remove_all(root);
  state.SetBytesProcessed(int64_t(state.iterations() * data.size()));
  state.SetLabel(std::string(state.range(0) ? "io_uring" : "pwrite") +
                 (compression == Compression::lz4 ? " lz4" : " none") +
                 (fsync ? " fsync/segment" : " no fsync"));
}
BENCHMARK(BM_SegmentSink)
    ->ArgsProduct({{0, 1}, {0, 1}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(1.0);

// ---------------------------------------------------------------------------- messages

std::vector<char> xlog_data_message(uint64_t start, size_t payload) {
  std::vector<char> m(1 + 8 + 8 + 8 + payload, 0);
  m[0] = 'w';
  for (int i = 0; i < 8; ++i) m[1 + i] = char((start >> (56 - 8 * i)) & 0xff);
  return m;
}

void BM_ParseXLogData(benchmark::State& state) {
  const auto message = xlog_data_message(0x1234567800, kMessageBytes);
  for (auto _ : state) {
    StreamMessage m = parse_stream_message(message);
    benchmark::DoNotOptimize(m);
  }
  state.SetItemsProcessed(int64_t(state.iterations()));  // the payload is not touched
}
BENCHMARK(BM_ParseXLogData);

void BM_ParseKeepalive(benchmark::State& state) {
  std::vector<char> message(1 + 8 + 8 + 1, 0);
  message[0] = 'k';
  for (auto _ : state) {
    StreamMessage m = parse_stream_message(message);
    benchmark::DoNotOptimize(m);
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_ParseKeepalive);

// ---------------------------------------------------------------------------- restore side

// wal-get's work for one segment: find it in the repository, decode and check its length,
// write it where recovery takes it from (the prefetch spool; a real file system).
void BM_WalGetSegment(benchmark::State& state) {
  const Compression compression = state.range(0) ? Compression::lz4 : Compression::none;
  constexpr int kSegments = 4;
  const fs::path root = bench_dir("walget");
  const Repository repo = bench_repo(root / "repo");
  {
    auto writer = make_file_writer(IoMode::pwrite);
    SegmentSink sink(repo, compression, *writer);
    const auto data = wal_bytes(kSegments * kSegmentBytes);
    sink.open(TimelineId(1), Lsn(kSegmentBytes * 2));
    sink.write(Lsn(kSegmentBytes * 2), data);
    sink.finish();
  }
  WalSpool spool(root / "spool", kSegmentBytes, kSegments + 1, (kSegments + 1) * kSegmentBytes);
  spool.create();
  for (auto _ : state) {
    for (uint64_t s = 2; s < 2 + kSegments; ++s) {
      const auto file = find_wal_file(repo, TimelineId(1), SegmentNo(s));
      if (!file) {
        state.SkipWithError("segment not archived");
        break;
      }
      const WalFileContent content = read_wal_file(*file, kSegmentBytes);
      const std::string name = wal_file_name(TimelineId(1), SegmentNo(s), kSegmentBytes);
      if (!spool.put(name, content.bytes)) state.SkipWithError("spool full");
    }
    state.PauseTiming();
    for (const auto& name : spool.entries()) fs::remove(spool.dir() / name);
    state.ResumeTiming();
  }
  fs::remove_all(root);
  state.SetBytesProcessed(int64_t(state.iterations() * kSegments * kSegmentBytes));
  state.SetLabel(compression == Compression::lz4 ? "lz4" : "none");
}
BENCHMARK(BM_WalGetSegment)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace walvault
