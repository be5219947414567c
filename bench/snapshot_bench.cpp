// Throughput of the snapshot stages without the disk in the way (files in /dev/shm when it
// exists): content-defined chunking, SHA-256, storing objects (lz4 + write), and whole
// snapshots of a generated tree, first and unchanged. Durability (fsync) is included in the
// object and snapshot numbers; on tmpfs it costs next to nothing.

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include "core/chunker.h"
#include "core/hash.h"
#include "core/object_store.h"
#include "core/repository.h"
#include "snapshot/snapshot_writer.h"

namespace walvault {
namespace {

fs::path scratch_dir() {
  const fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
  std::string tmpl = (base / "walvault-bench-XXXXXX").string();
  return ::mkdtemp(tmpl.data());
}

// 64 MiB: random (like images) or text-like (like CSV reports and templates).
const std::string& sample(bool text) {
  static const std::string random_data = [] {
    std::mt19937_64 rng(7);
    std::string out(64 << 20, '\0');
    for (size_t i = 0; i < out.size(); i += 8) {
      const uint64_t v = rng();
      std::memcpy(out.data() + i, &v, 8);
    }
    return out;
  }();
  static const std::string text_data = [] {
    std::mt19937 rng(8);
    const char* words[] = {"user", "flow", "stage", "authentik", "policy", "<div>", ",", "\n"};
    std::string out;
    while (out.size() < (64 << 20)) out += words[rng() % 8];
    out.resize(64 << 20);
    return out;
  }();
  return text ? text_data : random_data;
}

void BM_Chunker(benchmark::State& state) {
  const std::string& data = sample(false);
  const ChunkerParams p;
  size_t chunks = 0;
  for (auto _ : state) {
    size_t pos = 0;
    while (pos < data.size()) {
      const size_t avail = std::min(p.max_bytes, data.size() - pos);
      pos += find_chunk_cut(as_bytes(std::string_view(data).substr(pos, avail)), p);
      ++chunks;
    }
  }
  state.SetBytesProcessed(int64_t(state.iterations() * data.size()));
  state.counters["avg_chunk_KiB"] =
      double(state.iterations() * data.size()) / double(chunks) / 1024.0;
}
BENCHMARK(BM_Chunker)->Unit(benchmark::kMillisecond);

void BM_Sha256(benchmark::State& state) {
  const std::string& data = sample(false);
  for (auto _ : state) benchmark::DoNotOptimize(sha256_hex(data));
  state.SetBytesProcessed(int64_t(state.iterations() * data.size()));
}
BENCHMARK(BM_Sha256)->Unit(benchmark::kMillisecond);

// Puts 64 MiB as 256 KiB objects into a fresh store (arg 1: text-like, 0: random).
void BM_ObjectStorePut(benchmark::State& state) {
  const std::string& data = sample(state.range(0) == 1);
  const fs::path dir = scratch_dir();
  uint64_t stored = 0;
  for (auto _ : state) {
    state.PauseTiming();
    fs::remove_all(dir / "store");
    state.ResumeTiming();
    ObjectStore store(dir / "store");
    for (size_t pos = 0; pos < data.size(); pos += 256 << 10) {
      stored += store.put(as_bytes(std::string_view(data).substr(pos, 256 << 10))).stored_bytes;
    }
    store.sync();
  }
  state.SetBytesProcessed(int64_t(state.iterations() * data.size()));
  state.counters["stored_ratio"] = double(stored) / double(state.iterations() * data.size());
  fs::remove_all(dir);
}
BENCHMARK(BM_ObjectStorePut)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// A tree of 2000 small files (4 KiB) and 8 large ones (8 MiB): a first snapshot into an empty
// repository (arg 0), or a snapshot of the unchanged tree (arg 1).
void BM_SnapshotTree(benchmark::State& state) {
  const fs::path dir = scratch_dir();
  const fs::path src = dir / "src";
  uint64_t bytes = 0;
  for (int d = 0; d < 20; ++d) {
    fs::create_directories(src / ("d" + std::to_string(d)));
    for (int f = 0; f < 100; ++f) {
      const std::string content = sample(f % 2 == 0).substr(size_t(d * 100 + f) * 4096, 4096);
      write_file_durable(src / ("d" + std::to_string(d)) / ("f" + std::to_string(f)), content);
      bytes += content.size();
    }
  }
  for (int f = 0; f < 8; ++f) {
    write_file_durable(src / ("big" + std::to_string(f)),
                       sample(f % 2 == 0).substr(size_t(f) * (8 << 20), 8 << 20));
    bytes += 8 << 20;
  }
  SnapshotOptions options;
  options.racy_window_ms = 0;  // the files were just written: no waiting for the clock here
  const bool unchanged = state.range(0) == 1;
  for (auto _ : state) {
    state.PauseTiming();
    fs::remove_all(dir / "repo");
    const Repository repo =
        Repository::open_or_create(dir / "repo", {"7300000000000000001", 150000, 16 << 20});
    if (unchanged) take_snapshot(repo, {"data", src, {}, ""}, options);
    state.ResumeTiming();
    benchmark::DoNotOptimize(take_snapshot(repo, {"data", src, {}, ""}, options));
  }
  state.SetBytesProcessed(int64_t(state.iterations() * bytes));
  state.counters["files_per_s"] =
      benchmark::Counter(double(state.iterations() * 2008), benchmark::Counter::kIsRate);
  fs::remove_all(dir);
}
BENCHMARK(BM_SnapshotTree)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace walvault
