// Throughput of the base backup stages without a server: tar parsing, storing an archive
// (lz4 + sha256 + write) in the receiving thread vs. through the 2-stage pipeline, and
// extraction. Files go to /dev/shm when it exists, so the disk does not dominate.

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <random>

#include "basebackup/archive_store.h"
#include "core/tar.h"
#include "core/tar_extract.h"

namespace walvault {
namespace {

fs::path scratch_dir() {
  const fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
  std::string tmpl = (base / "walvault-bench-XXXXXX").string();
  return ::mkdtemp(tmpl.data());
}

// 64 MiB of 8 KiB pages: half text-like (compresses ~4x), half random; files of 1 MiB.
const std::string& sample_tar() {
  static const std::string tar = [] {
    std::mt19937_64 rng(42);
    std::string out;
    for (int f = 0; f < 64; ++f) {
      std::string content(1 << 20, '\0');
      for (size_t page = 0; page < content.size(); page += 8192) {
        for (size_t i = 0; i < 8192; i += 8) {
          uint64_t v = (page / 8192) % 2 ? rng() : 0x2020656c70706177ull + (i % 64);
          std::memcpy(content.data() + page + i, &v, 8);
        }
      }
      TarEntry e;
      e.path = "base/16384/" + std::to_string(16385 + f);
      e.mode = 0600;
      e.size = content.size();
      out += tar_member_header(e) + content;
    }
    return out + tar_end_of_archive();
  }();
  return tar;
}

class NullSink final : public TarSink {
 public:
  void begin_entry(const TarEntry&) override {}
  void entry_data(std::span<const std::byte>) override {}
  void end_entry() override {}
};

void BM_TarReader(benchmark::State& state) {
  const std::string& tar = sample_tar();
  for (auto _ : state) {
    NullSink sink;
    TarReader reader(sink, "bench.tar");
    for (size_t pos = 0; pos < tar.size(); pos += 65536) {
      reader.feed(as_bytes(std::string_view(tar).substr(pos, 65536)));
    }
    reader.finish();
  }
  state.SetBytesProcessed(int64_t(state.iterations() * tar.size()));
}
BENCHMARK(BM_TarReader)->Unit(benchmark::kMillisecond);

// Everything in the receiving thread: what the pipeline is measured against.
void BM_StoreArchiveOneThread(benchmark::State& state) {
  const std::string& tar = sample_tar();
  const fs::path dir = scratch_dir();
  for (auto _ : state) {
    StoredArchiveWriter w(dir / "base.tar.lz4");
    for (size_t pos = 0; pos < tar.size(); pos += 65536) {
      w.write(as_bytes(std::string_view(tar).substr(pos, 65536)));
    }
    benchmark::DoNotOptimize(w.finish());
  }
  fs::remove_all(dir);
  state.SetBytesProcessed(int64_t(state.iterations() * tar.size()));
}
BENCHMARK(BM_StoreArchiveOneThread)->Unit(benchmark::kMillisecond)->UseRealTime();

// Receive side copies into chunks; a writer thread compresses, hashes and writes.
void BM_StoreArchivePipeline(benchmark::State& state) {
  const std::string& tar = sample_tar();
  const fs::path dir = scratch_dir();
  for (auto _ : state) {
    ArchiveWriterPipeline pipe(dir);
    pipe.begin_archive("base.tar", "");
    for (size_t pos = 0; pos < tar.size(); pos += 65536) {
      pipe.archive_data(as_bytes(std::string_view(tar).substr(pos, 65536)));
    }
    pipe.end_archive();
    benchmark::DoNotOptimize(pipe.finish());
  }
  fs::remove_all(dir);
  state.SetBytesProcessed(int64_t(state.iterations() * tar.size()));
}
BENCHMARK(BM_StoreArchivePipeline)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ExtractNoSync(benchmark::State& state) {
  const std::string& tar = sample_tar();
  const fs::path dir = scratch_dir();
  for (auto _ : state) {
    state.PauseTiming();
    fs::remove_all(dir / "x");
    fs::create_directory(dir / "x");
    state.ResumeTiming();
    TarExtractor ex(dir / "x");
    TarReader reader(ex, "bench.tar");
    for (size_t pos = 0; pos < tar.size(); pos += 1 << 20) {
      reader.feed(as_bytes(std::string_view(tar).substr(pos, 1 << 20)));
    }
    reader.finish();
  }
  fs::remove_all(dir);
  state.SetBytesProcessed(int64_t(state.iterations() * tar.size()));
}
BENCHMARK(BM_ExtractNoSync)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace walvault
