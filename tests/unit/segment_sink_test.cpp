#include "walarchiver/segment_sink.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>

#include "archiver_test_util.h"
#include "core/error.h"
#include "core/io.h"
#include "core/wal_inventory.h"

namespace walvault {
namespace {

using testing::kTestSegmentSize;
using testing::TempDir;
using testing::wal_like_bytes;

enum class Backend { pwrite, uring };

struct SinkParam {
  Backend backend;
  Compression compression;
};

std::string param_name(const ::testing::TestParamInfo<SinkParam>& info) {
  return std::string(info.param.backend == Backend::uring ? "uring" : "pwrite") + "_" +
         (info.param.compression == Compression::lz4 ? "lz4" : "none");
}

std::string content_of(const fs::path& path, Compression c) {
  if (c == Compression::none) return read_file(path);
  std::string out;
  decode_lz4_file(path, [&](std::span<const std::byte> part) {
    out.append(reinterpret_cast<const char*>(part.data()), part.size());
  });
  return out;
}

std::string as_string(std::span<const std::byte> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// Feeds bytes in messages of odd sizes, as a server would.
void feed(SegmentSink& sink, Lsn start, std::span<const std::byte> bytes, size_t chunk = 100'003) {
  Lsn at = start;
  while (!bytes.empty()) {
    const size_t n = std::min(chunk, bytes.size());
    sink.write(at, bytes.first(n));
    at = at + n;
    bytes = bytes.subspan(n);
  }
}

class SegmentSinkTest : public ::testing::TestWithParam<SinkParam> {
 protected:
  void SetUp() override {
    if (GetParam().backend == Backend::uring) {
      std::string why;
      writer_ = make_uring_writer(&why);
      if (!writer_) GTEST_SKIP() << "no io_uring here: " << why;
    } else {
      writer_ = std::make_unique<PwriteWriter>();
    }
  }
  Compression compression() const { return GetParam().compression; }

  TempDir tmp_;
  std::unique_ptr<FileWriter> writer_;
};

TEST_P(SegmentSinkTest, SplitsAtSegmentBoundariesAndCompletesSegments) {
  Repository repo = testing::make_test_repo(tmp_.path());
  const TimelineId tli(1);
  const Lsn start = segment_start(SegmentNo(3), kTestSegmentSize);
  const auto wal = wal_like_bytes(3 * kTestSegmentSize + kTestSegmentSize / 2 + 17, 7);

  SegmentSink sink(repo, compression(), *writer_);
  sink.open(tli, start);
  feed(sink, start, wal);
  // Three segments filled: each completed durably on its own.
  EXPECT_EQ(sink.segments_completed(), 3u);
  EXPECT_EQ(sink.durable_lsn(), start + 3 * kTestSegmentSize);
  EXPECT_EQ(sink.position(), start + wal.size());
  sink.flush();
  EXPECT_EQ(sink.durable_lsn(), start + wal.size());
  sink.finish();

  for (uint64_t i = 0; i < 3; ++i) {
    const fs::path path = repo.segment_path(tli, SegmentNo(3 + i), compression(), false);
    ASSERT_TRUE(fs::exists(path)) << path;
    EXPECT_EQ(content_of(path, compression()),
              as_string(std::span(wal).subspan(i * kTestSegmentSize, kTestSegmentSize)))
        << path;
    EXPECT_FALSE(fs::exists(repo.segment_path(tli, SegmentNo(3 + i), compression(), true)));
  }
  // The incomplete segment stays .partial, and a durable .partial is a whole lz4 frame.
  const fs::path partial = repo.segment_path(tli, SegmentNo(6), compression(), true);
  ASSERT_TRUE(fs::exists(partial));
  EXPECT_FALSE(fs::exists(repo.segment_path(tli, SegmentNo(6), compression(), false)));
  EXPECT_EQ(content_of(partial, compression()),
            as_string(std::span(wal).subspan(3 * kTestSegmentSize)));
  // Modes: files 0600.
  EXPECT_EQ(fs::status(partial).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);

  const TimelineWal inv = scan_timeline_wal(repo, tli);
  ASSERT_EQ(inv.ranges.size(), 1u);
  EXPECT_EQ(inv.ranges[0], (WalRange{start, start + wal.size()}));
}

TEST_P(SegmentSinkTest, ResumesFromATornPartialWithoutGapOrDuplicate) {
  Repository repo = testing::make_test_repo(tmp_.path());
  const TimelineId tli(2);
  const Lsn start = segment_start(SegmentNo(10), kTestSegmentSize);
  const auto wal = wal_like_bytes(2 * kTestSegmentSize + 12345, 11);
  const size_t durable_part = kTestSegmentSize + 300'001;  // inside the second segment
  const size_t crashed_part = durable_part + 200'000;      // received, never flushed

  {
    SegmentSink sink(repo, compression(), *writer_);
    sink.open(tli, start);
    feed(sink, start, std::span(wal).first(durable_part), 65'536);
    sink.flush();
    feed(sink, start + durable_part,
         std::span(wal).subspan(durable_part, crashed_part - durable_part), 65'536);
    // Destroyed without finish(): like kill -9 (whatever reached the file stays there).
  }
  const fs::path partial = repo.segment_path(tli, SegmentNo(11), compression(), true);
  ASSERT_TRUE(fs::exists(partial));
  {
    // A torn tail: half a block of garbage, as a crash in the middle of a write leaves.
    UniqueFd fd = open_or_throw(partial, O_WRONLY | O_APPEND);
    const std::string garbage(70'000, '\x5a');
    write_all(fd.get(), as_bytes(garbage), partial);
  }

  const TimelineWal inv = scan_timeline_wal(repo, tli);
  ASSERT_EQ(inv.ranges.size(), 1u);
  const Lsn resume = inv.ranges[0].end;
  if (compression() == Compression::lz4) {
    // Only whole, verified blocks count: at least what was flushed, at most what was received.
    EXPECT_GE(resume, start + durable_part);
    EXPECT_LE(resume, start + crashed_part);
  } else {
    // An uncompressed partial has no checksums: the test's garbage is indistinguishable.
    fs::resize_file(partial, crashed_part - kTestSegmentSize);
  }
  const Lsn resume_at = compression() == Compression::lz4 ? resume : start + crashed_part;

  {
    SegmentSink sink(repo, compression(), *writer_);
    sink.open(tli, resume_at);
    EXPECT_EQ(sink.durable_lsn(), resume_at);
    feed(sink, resume_at, std::span(wal).subspan(resume_at - start), 77'777);
    sink.finish();
  }
  EXPECT_EQ(content_of(repo.segment_path(tli, SegmentNo(10), compression(), false), compression()),
            as_string(std::span(wal).first(kTestSegmentSize)));
  EXPECT_EQ(content_of(repo.segment_path(tli, SegmentNo(11), compression(), false), compression()),
            as_string(std::span(wal).subspan(kTestSegmentSize, kTestSegmentSize)));
  EXPECT_FALSE(fs::exists(partial));
  EXPECT_EQ(content_of(repo.segment_path(tli, SegmentNo(12), compression(), true), compression()),
            as_string(std::span(wal).subspan(2 * kTestSegmentSize)));
}

TEST_P(SegmentSinkTest, ACompletedSegmentIsNeverOverwrittenWithDifferentBytes) {
  Repository repo = testing::make_test_repo(tmp_.path());
  const TimelineId tli(1);
  const Lsn start = segment_start(SegmentNo(5), kTestSegmentSize);
  const auto wal = wal_like_bytes(kTestSegmentSize, 3);
  const fs::path done = repo.segment_path(tli, SegmentNo(5), compression(), false);
  {
    SegmentSink sink(repo, compression(), *writer_);
    sink.open(tli, start);
    feed(sink, start, wal);
    sink.finish();
  }
  const auto before = fs::last_write_time(done);
  {  // the same bytes again: a no-op
    SegmentSink sink(repo, compression(), *writer_);
    sink.open(tli, start);
    feed(sink, start, wal);
    sink.finish();
    EXPECT_EQ(sink.durable_lsn(), start + kTestSegmentSize);
  }
  EXPECT_EQ(fs::last_write_time(done), before);
  EXPECT_FALSE(fs::exists(repo.segment_path(tli, SegmentNo(5), compression(), true)));

  auto different = wal;
  different[4242] ^= std::byte(1);
  SegmentSink sink(repo, compression(), *writer_);
  sink.open(tli, start);
  try {
    feed(sink, start, different);
    FAIL() << "a different segment was accepted";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("000000010000000000000005 is already archived with different content"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("archived sha256 "), std::string::npos) << what;
    EXPECT_NE(what.find("received sha256 "), std::string::npos) << what;
  }
  EXPECT_EQ(content_of(done, compression()), as_string(wal));
  EXPECT_EQ(sink.durable_lsn(), start);
}

TEST_P(SegmentSinkTest, WritesOutOfOrderAreRefused) {
  Repository repo = testing::make_test_repo(tmp_.path());
  SegmentSink sink(repo, compression(), *writer_);
  const Lsn start = segment_start(SegmentNo(1), kTestSegmentSize);
  sink.open(TimelineId(1), start);
  const auto wal = wal_like_bytes(1000, 1);
  sink.write(start, wal);
  EXPECT_THROW(sink.write(start + 999, wal), Error);
  EXPECT_THROW(sink.write(start + 1001, wal), Error);
}

// A real kernel short write on both backends: with RLIMIT_FSIZE the write that crosses the
// limit is cut short, the resubmitted rest fails with EFBIG. Runs in a child process (the
// limit is per process) through a death test; exits 0 when the error came, and came after
// every byte below the limit was written.
constexpr uint64_t kFileSizeLimit = 300'001;

[[noreturn]] void write_past_file_size_limit(const Repository& repo, Backend backend,
                                             Compression compression) {
  ::signal(SIGXFSZ, SIG_IGN);
  rlimit limit{kFileSizeLimit, kFileSizeLimit};
  ::setrlimit(RLIMIT_FSIZE, &limit);
  std::string why;
  std::unique_ptr<FileWriter> writer;
  if (backend == Backend::uring) {
    writer = make_uring_writer(&why);
  } else {
    writer = std::make_unique<PwriteWriter>();
  }
  const Lsn start = segment_start(SegmentNo(1), kTestSegmentSize);
  const auto wal = wal_like_bytes(kTestSegmentSize, 8);
  try {
    SegmentSink sink(repo, compression, *writer);
    sink.open(TimelineId(1), start);
    feed(sink, start, wal, 1 << 20);
    sink.flush();
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    const fs::path partial = repo.segment_path(TimelineId(1), SegmentNo(1), compression, true);
    ::_exit(fs::file_size(partial) == kFileSizeLimit ? 0 : 2);
  }
  ::_exit(1);
}

// kill -9 after a full segment's fdatasync but before its rename: the .partial holds the
// whole segment and the archive's end is the next segment's start. The next run must still
// turn it into a completed segment (found by CI: the file stayed .partial forever).
TEST_P(SegmentSinkTest, AFullPartialLeftByACrashBeforeTheRenameIsCompletedOnOpen) {
  Repository repo = testing::make_test_repo(tmp_.path());
  const TimelineId tli(1);
  const Lsn start = segment_start(SegmentNo(7), kTestSegmentSize);
  const auto wal = wal_like_bytes(kTestSegmentSize + 4096, 21);
  const fs::path done = repo.segment_path(tli, SegmentNo(7), compression(), false);
  const fs::path partial = repo.segment_path(tli, SegmentNo(7), compression(), true);
  {
    SegmentSink sink(repo, compression(), *writer_);
    sink.open(tli, start);
    feed(sink, start, std::span(wal).first(kTestSegmentSize));
    sink.finish();
  }
  fs::rename(done, partial);
  const TimelineWal inv = scan_timeline_wal(repo, tli);
  ASSERT_EQ(inv.ranges.size(), 1u);
  const Lsn next = start + kTestSegmentSize;
  ASSERT_EQ(inv.ranges[0].end, next);
  {
    SegmentSink sink(repo, compression(), *writer_);
    sink.open(tli, next);
    EXPECT_EQ(sink.durable_lsn(), next);
    EXPECT_TRUE(fs::exists(done));
    EXPECT_FALSE(fs::exists(partial));
    feed(sink, next, std::span(wal).subspan(kTestSegmentSize));
    sink.finish();
  }
  EXPECT_EQ(content_of(done, compression()), as_string(std::span(wal).first(kTestSegmentSize)));
  EXPECT_EQ(content_of(repo.segment_path(tli, SegmentNo(8), compression(), true), compression()),
            as_string(std::span(wal).subspan(kTestSegmentSize)));

  // The same state met by a run that needs no streaming (--endpos already archived).
  fs::rename(done, partial);
  {
    SegmentSink sink(repo, compression(), *writer_);
    sink.sync_archived(tli, next);
    EXPECT_FALSE(sink.is_open());
  }
  EXPECT_FALSE(fs::exists(partial));
  EXPECT_EQ(content_of(done, compression()), as_string(std::span(wal).first(kTestSegmentSize)));
}

// A partial segment that is short is not touched by an open at the next segment's start.
TEST_P(SegmentSinkTest, AShortPartialBeforeTheStartIsLeftAlone) {
  Repository repo = testing::make_test_repo(tmp_.path());
  const TimelineId tli(1);
  const Lsn start = segment_start(SegmentNo(4), kTestSegmentSize);
  const auto wal = wal_like_bytes(300'000, 22);
  {
    SegmentSink sink(repo, compression(), *writer_);
    sink.open(tli, start);
    feed(sink, start, wal);
    sink.finish();
  }
  const fs::path partial = repo.segment_path(tli, SegmentNo(4), compression(), true);
  const std::string before = read_file(partial);
  SegmentSink sink(repo, compression(), *writer_);
  sink.open(tli, start + kTestSegmentSize);
  EXPECT_EQ(read_file(partial), before);
  EXPECT_FALSE(fs::exists(repo.segment_path(tli, SegmentNo(4), compression(), false)));
}

TEST_P(SegmentSinkTest, AShortWriteFromTheKernelIsResubmittedAndItsErrorReported) {
  Repository repo = testing::make_test_repo(tmp_.path());
  writer_.reset();  // the child makes its own
  EXPECT_EXIT(write_past_file_size_limit(repo, GetParam().backend, GetParam().compression),
              ::testing::ExitedWithCode(0), "could not write to .*: File too large");
}

INSTANTIATE_TEST_SUITE_P(Backends, SegmentSinkTest,
                         ::testing::Values(SinkParam{Backend::pwrite, Compression::lz4},
                                           SinkParam{Backend::uring, Compression::lz4},
                                           SinkParam{Backend::pwrite, Compression::none},
                                           SinkParam{Backend::uring, Compression::none}),
                         param_name);

TEST(SegmentSink, ConvertsAPartialOfTheOtherCompression) {
  TempDir tmp;
  Repository repo = testing::make_test_repo(tmp.path());
  PwriteWriter writer;
  const TimelineId tli(1);
  const Lsn start = segment_start(SegmentNo(2), kTestSegmentSize);
  const auto wal = wal_like_bytes(kTestSegmentSize + 5000, 5);
  {
    SegmentSink sink(repo, Compression::none, writer);
    sink.open(tli, start);
    feed(sink, start, std::span(wal).first(400'000));
    sink.finish();
  }
  SegmentSink sink(repo, Compression::lz4, writer);
  sink.open(tli, start + 400'000);
  EXPECT_FALSE(fs::exists(repo.segment_path(tli, SegmentNo(2), Compression::none, true)));
  feed(sink, start + 400'000, std::span(wal).subspan(400'000));
  sink.finish();
  EXPECT_EQ(
      content_of(repo.segment_path(tli, SegmentNo(2), Compression::lz4, false), Compression::lz4),
      as_string(std::span(wal).first(kTestSegmentSize)));
}

TEST(SegmentSink, AFullPartialOfTheOtherCompressionIsCompletedInOurs) {
  TempDir tmp;
  Repository repo = testing::make_test_repo(tmp.path());
  PwriteWriter writer;
  const TimelineId tli(1);
  const Lsn start = segment_start(SegmentNo(2), kTestSegmentSize);
  const auto wal = wal_like_bytes(kTestSegmentSize, 6);
  {
    SegmentSink sink(repo, Compression::none, writer);
    sink.open(tli, start);
    feed(sink, start, wal);
    sink.finish();
  }
  fs::rename(repo.segment_path(tli, SegmentNo(2), Compression::none, false),
             repo.segment_path(tli, SegmentNo(2), Compression::none, true));
  {
    SegmentSink sink(repo, Compression::lz4, writer);
    sink.open(tli, start + kTestSegmentSize);
    sink.finish();
  }
  EXPECT_FALSE(fs::exists(repo.segment_path(tli, SegmentNo(2), Compression::none, true)));
  EXPECT_EQ(
      content_of(repo.segment_path(tli, SegmentNo(2), Compression::lz4, false), Compression::lz4),
      as_string(wal));
}

TEST(SegmentSink, ResumeInsideASegmentWithoutAPartialIsAnError) {
  TempDir tmp;
  Repository repo = testing::make_test_repo(tmp.path());
  PwriteWriter writer;
  SegmentSink sink(repo, Compression::lz4, writer);
  EXPECT_THROW(sink.open(TimelineId(1), segment_start(SegmentNo(2), kTestSegmentSize) + 8192),
               Error);
}

// ---------------------------------------------------------------- fault injection

// pwrite + fdatasync with faults: writes at most max_write_bytes per call (short writes),
// ENOSPC once more than space_bytes were written, EIO from fdatasync when asked.
class FaultInjectingWriter : public PwriteWriter {
 public:
  size_t max_write_bytes = SIZE_MAX;
  uint64_t space_bytes = UINT64_MAX;
  bool fail_sync = false;
  uint64_t write_calls = 0;
  uint64_t written = 0;
  uint64_t syncs = 0;

 protected:
  ssize_t sys_pwrite(int fd, const void* buf, size_t len, uint64_t offset) override {
    ++write_calls;
    if (written >= space_bytes) {
      errno = ENOSPC;
      return -1;
    }
    len = std::min<uint64_t>({len, max_write_bytes, space_bytes - written});
    const ssize_t n = PwriteWriter::sys_pwrite(fd, buf, len, offset);
    if (n > 0) written += uint64_t(n);
    return n;
  }
  int sys_fdatasync(int fd) override {
    if (fail_sync) {
      errno = EIO;
      return -1;
    }
    ++syncs;
    return PwriteWriter::sys_fdatasync(fd);
  }
};

TEST(SegmentSinkFaults, ShortWritesAreResubmitted) {
  TempDir tmp;
  Repository repo = testing::make_test_repo(tmp.path());
  FaultInjectingWriter writer;
  writer.max_write_bytes = 4093;
  const TimelineId tli(1);
  const Lsn start = segment_start(SegmentNo(1), kTestSegmentSize);
  const auto wal = wal_like_bytes(kTestSegmentSize + 1000, 9);
  {
    SegmentSink sink(repo, Compression::none, writer);
    sink.open(tli, start);
    feed(sink, start, wal);
    sink.finish();
  }
  EXPECT_GT(writer.write_calls, wal.size() / 4093);
  EXPECT_EQ(read_file(repo.segment_path(tli, SegmentNo(1), Compression::none, false)),
            as_string(std::span(wal).first(kTestSegmentSize)));
  EXPECT_EQ(read_file(repo.segment_path(tli, SegmentNo(2), Compression::none, true)),
            as_string(std::span(wal).subspan(kTestSegmentSize)));
}

TEST(SegmentSinkFaults, NoSpaceIsAClearErrorAndNothingBecomesDurable) {
  TempDir tmp;
  Repository repo = testing::make_test_repo(tmp.path());
  FaultInjectingWriter writer;
  writer.space_bytes = 300'000;
  const Lsn start = segment_start(SegmentNo(1), kTestSegmentSize);
  const auto wal = wal_like_bytes(kTestSegmentSize, 2);
  SegmentSink sink(repo, Compression::lz4, writer);
  sink.open(TimelineId(1), start);
  try {
    feed(sink, start, wal);
    sink.flush();
    FAIL() << "ENOSPC was not reported";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("could not write to \""), std::string::npos) << what;
    EXPECT_NE(what.find("000000010000000000000001.lz4.partial"), std::string::npos) << what;
    EXPECT_NE(what.find(std::strerror(ENOSPC)), std::string::npos) << what;
    EXPECT_NE(e.hint().find("free space"), std::string::npos) << e.hint();
  }
  EXPECT_EQ(sink.durable_lsn(), start);
  EXPECT_EQ(writer.syncs, 0u);
  EXPECT_FALSE(fs::exists(repo.segment_path(TimelineId(1), SegmentNo(1), Compression::lz4, false)));
}

TEST(SegmentSinkFaults, FsyncFailureIsFatalAndTheDurableLsnDoesNotMove) {
  TempDir tmp;
  Repository repo = testing::make_test_repo(tmp.path());
  FaultInjectingWriter writer;
  const Lsn start = segment_start(SegmentNo(1), kTestSegmentSize);
  const auto wal = wal_like_bytes(500'000, 4);
  SegmentSink sink(repo, Compression::lz4, writer);
  sink.open(TimelineId(1), start);
  feed(sink, start, std::span(wal).first(200'000));
  sink.flush();
  EXPECT_EQ(sink.durable_lsn(), start + 200'000);
  feed(sink, start + 200'000, std::span(wal).subspan(200'000));
  writer.fail_sync = true;
  try {
    sink.flush();
    FAIL() << "EIO from fdatasync was not reported";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("could not fdatasync"), std::string::npos) << what;
    EXPECT_NE(what.find(std::strerror(EIO)), std::string::npos) << what;
    EXPECT_NE(e.hint().find("never retried"), std::string::npos) << e.hint();
  }
  EXPECT_EQ(sink.durable_lsn(), start + 200'000);
  EXPECT_EQ(sink.position(), start + wal.size());
}

TEST(IoMode, Parses) {
  EXPECT_EQ(parse_io_mode("auto"), IoMode::automatic);
  EXPECT_EQ(parse_io_mode("uring"), IoMode::uring);
  EXPECT_EQ(parse_io_mode("pwrite"), IoMode::pwrite);
  EXPECT_EQ(parse_io_mode("mmap"), std::nullopt);
}

}  // namespace
}  // namespace walvault
