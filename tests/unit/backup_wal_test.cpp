#include "basebackup/backup_wal.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/lz4_frame.h"

namespace walvault {
namespace {

constexpr uint64_t kSeg = 1 << 20;

class TempRepo {
 public:
  TempRepo() {
    std::string tmpl = (fs::temp_directory_path() / "walvault-bwal-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempRepo() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  Repository repo() const {
    return Repository::open_or_create(path_ / "r", {"7300000000000000002", 150010, kSeg});
  }

 private:
  fs::path path_;
};

void complete_segment(const Repository& repo, TimelineId tli, uint64_t segno) {
  make_dirs(repo.wal_dir(tli));
  write_file_durable(repo.segment_path(tli, SegmentNo(segno), Compression::lz4, false), "x");
}

void partial_segment(const Repository& repo, TimelineId tli, uint64_t segno, size_t bytes) {
  make_dirs(repo.wal_dir(tli));
  Lz4FrameEncoder enc;
  std::string frame(Lz4FrameEncoder::kHeaderBytes, '\0');
  enc.write_header(reinterpret_cast<std::byte*>(frame.data()));
  std::string content(bytes, 'w');
  std::vector<std::byte> block(Lz4FrameEncoder::max_block_bytes());
  for (size_t pos = 0; pos < bytes; pos += Lz4FrameEncoder::kBlockSize) {
    const size_t n = std::min(Lz4FrameEncoder::kBlockSize, bytes - pos);
    const size_t w =
        enc.write_block(as_bytes(std::string_view(content).substr(pos, n)), block.data());
    frame.append(reinterpret_cast<const char*>(block.data()), w);
  }
  write_file_durable(repo.segment_path(tli, SegmentNo(segno), Compression::lz4, true), frame);
}

TEST(BackupWal, FindsTheFirstMissingByte) {
  TempRepo t;
  Repository repo = t.repo();
  const TimelineId tli(1);
  const Lsn start(2 * kSeg + 0x28), stop(3 * kSeg + 0x100);
  EXPECT_EQ(first_missing_wal(repo, tli, tli, start, stop), start);
  complete_segment(repo, tli, 2);
  EXPECT_EQ(first_missing_wal(repo, tli, tli, start, stop), Lsn(3 * kSeg));
  partial_segment(repo, tli, 3, 0x80);  // verified prefix short of the stop LSN
  EXPECT_EQ(first_missing_wal(repo, tli, tli, start, stop), Lsn(3 * kSeg + 0x80));
  partial_segment(repo, tli, 3, 300 * 1024);  // two blocks, beyond the stop LSN
  EXPECT_EQ(first_missing_wal(repo, tli, tli, start, stop), std::nullopt);
  complete_segment(repo, tli, 3);
  EXPECT_EQ(first_missing_wal(repo, tli, tli, start, stop), std::nullopt);
  EXPECT_TRUE(wait_for_wal(repo, tli, tli, start, stop, std::chrono::milliseconds(0)));
}

TEST(BackupWal, AGapBeforeTheStartDoesNotMatterButOneInsideDoes) {
  TempRepo t;
  Repository repo = t.repo();
  const TimelineId tli(1);
  complete_segment(repo, tli, 5);
  complete_segment(repo, tli, 7);
  EXPECT_EQ(first_missing_wal(repo, tli, tli, Lsn(5 * kSeg + 10), Lsn(5 * kSeg + 20)),
            std::nullopt);
  EXPECT_EQ(first_missing_wal(repo, tli, tli, Lsn(5 * kSeg + 10), Lsn(7 * kSeg + 20)),
            Lsn(6 * kSeg));
  EXPECT_FALSE(wait_for_wal(repo, tli, tli, Lsn(5 * kSeg + 10), Lsn(7 * kSeg + 20),
                            std::chrono::milliseconds(300)));
}

TEST(BackupWal, PromotionDuringTheBackupCountsBothTimelines) {
  TempRepo t;
  Repository repo = t.repo();
  complete_segment(repo, TimelineId(1), 4);
  complete_segment(repo, TimelineId(2), 5);
  EXPECT_EQ(
      first_missing_wal(repo, TimelineId(1), TimelineId(2), Lsn(4 * kSeg + 40), Lsn(5 * kSeg + 40)),
      std::nullopt);
}

TEST(BackupWal, AStopRequestEndsTheWait) {
  TempRepo t;
  Repository repo = t.repo();
  EXPECT_THROW(wait_for_wal(repo, TimelineId(1), TimelineId(1), Lsn(kSeg), Lsn(2 * kSeg),
                            std::chrono::seconds(30), [] { return true; }),
               Error);
}

}  // namespace
}  // namespace walvault
