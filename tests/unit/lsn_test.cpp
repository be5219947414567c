#include "core/lsn.h"

#include <gtest/gtest.h>

namespace walvault {
namespace {

TEST(Lsn, ParsesAndPrintsPostgresNotation) {
  auto lsn = Lsn::parse("0/5D000C90");
  ASSERT_TRUE(lsn);
  EXPECT_EQ(lsn->value, 0x5D000C90u);
  EXPECT_EQ(lsn->str(), "0/5D000C90");
  EXPECT_EQ(Lsn::parse("16/B374D848")->value, (uint64_t(0x16) << 32) | 0xB374D848u);
  EXPECT_EQ(Lsn(uint64_t(0x16) << 32 | 0xB374D848u).str(), "16/B374D848");
  EXPECT_EQ(Lsn::parse("0/0")->value, 0u);
  EXPECT_EQ(Lsn::parse("ff/ff")->str(), "FF/FF");
}

TEST(Lsn, RejectsMalformed) {
  for (const char* bad :
       {"", "zz", "0", "/1", "1/", "0/1/2", "G/0", "123456789/0", "0/ 1", "-1/0"}) {
    EXPECT_FALSE(Lsn::parse(bad)) << bad;
  }
}

TEST(SegmentName, SixteenMegabyteSegments) {
  const uint64_t seg = 16 << 20;
  EXPECT_EQ(wal_file_name(TimelineId(1), SegmentNo(3), seg), "000000010000000000000003");
  // 256 segments of 16 MiB per 4 GiB "log id".
  EXPECT_EQ(wal_file_name(TimelineId(1), SegmentNo(256), seg), "000000010000000100000000");
  EXPECT_EQ(wal_file_name(TimelineId(0x1A), SegmentNo(0x2FF), seg), "0000001A00000002000000FF");
  EXPECT_EQ(segment_of(*Lsn::parse("1/2A000010"), seg).value, 256u + 0x2A);
}

TEST(SegmentName, OneMegabyteAndOneGigabyteSegments) {
  const uint64_t one_mb = 1 << 20;
  EXPECT_EQ(wal_file_name(TimelineId(2), SegmentNo(4096), one_mb), "000000020000000100000000");
  EXPECT_EQ(wal_file_name(TimelineId(2), SegmentNo(4095), one_mb), "000000020000000000000FFF");
  const uint64_t one_gb = 1 << 30;
  EXPECT_EQ(wal_file_name(TimelineId(1), SegmentNo(5), one_gb), "000000010000000100000001");
}

TEST(SegmentName, RoundTripsForEverySize) {
  for (uint64_t size = 1 << 20; size <= (1u << 30); size <<= 1) {
    for (uint64_t segno : {0ull, 1ull, 255ull, 4095ull, 4096ull, 123456ull}) {
      std::string name = wal_file_name(TimelineId(7), SegmentNo(segno), size);
      auto parsed = parse_wal_file_name(name, size);
      ASSERT_TRUE(parsed) << name;
      EXPECT_EQ(parsed->segno.value, segno);
      EXPECT_EQ(parsed->timeline.value, 7u);
    }
  }
}

TEST(SegmentName, RejectsMalformed) {
  const uint64_t seg = 16 << 20;
  EXPECT_FALSE(parse_wal_file_name("00000001000000000000003", seg));      // 23 chars
  EXPECT_FALSE(parse_wal_file_name("00000001000000000000000g", seg));     // lower case / not hex
  EXPECT_FALSE(parse_wal_file_name("000000010000000000000100", seg));     // seg 0x100 > 0xFF
  EXPECT_FALSE(parse_wal_file_name("000000000000000000000001", seg));     // timeline 0
  EXPECT_TRUE(parse_wal_file_name("000000010000000000000100", 1 << 20));  // valid for 1 MiB
}

TEST(SegmentMath, StartAndOffset) {
  const uint64_t seg = 1 << 20;
  Lsn lsn = *Lsn::parse("0/3123456");
  EXPECT_EQ(segment_of(lsn, seg).value, 0x31u);
  EXPECT_EQ(segment_start(SegmentNo(0x31), seg).str(), "0/3100000");
  EXPECT_EQ(segment_offset(lsn, seg), 0x23456u);
  EXPECT_TRUE(is_valid_segment_size(1 << 20));
  EXPECT_TRUE(is_valid_segment_size(1u << 30));
  EXPECT_FALSE(is_valid_segment_size(3 << 20));
  EXPECT_FALSE(is_valid_segment_size(1 << 19));
}

TEST(HistoryName, FormatAndParse) {
  EXPECT_EQ(history_file_name(TimelineId(2)), "00000002.history");
  EXPECT_EQ(parse_history_file_name("0000000A.history")->value, 10u);
  EXPECT_FALSE(parse_history_file_name("0000000a.history"));
  EXPECT_FALSE(parse_history_file_name("00000000.history"));
  EXPECT_FALSE(parse_history_file_name("00000002.histor"));
}

}  // namespace
}  // namespace walvault
