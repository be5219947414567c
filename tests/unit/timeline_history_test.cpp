#include "core/timeline_history.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace walvault {
namespace {

Lsn L(const char* s) {
  return *Lsn::parse(s);
}

TEST(TimelineHistory, ParsesPostgresFile) {
  // As written by PostgreSQL 15 on promotion (reason text varies).
  const char* text =
      "1\t0/3000158\tno recovery target specified\n"
      "\n"
      "# a comment\n"
      "2\t0/5000000\tat restore point \"before upgrade\"\n";
  auto sw = parse_timeline_history(text, TimelineId(3), "00000003.history");
  ASSERT_EQ(sw.size(), 2u);
  EXPECT_EQ(sw[0].parent, TimelineId(1));
  EXPECT_EQ(sw[0].switch_lsn, L("0/3000158"));
  EXPECT_EQ(sw[0].reason, "no recovery target specified");
  EXPECT_EQ(sw[1].parent, TimelineId(2));
  EXPECT_EQ(sw[1].switch_lsn, L("0/5000000"));
  EXPECT_EQ(sw[1].reason, "at restore point \"before upgrade\"");
}

TEST(TimelineHistory, AcceptsMissingReasonAndCrLf) {
  auto sw = parse_timeline_history("1\t0/16B3F30\r\n", TimelineId(2), "x");
  ASSERT_EQ(sw.size(), 1u);
  EXPECT_EQ(sw[0].switch_lsn, L("0/16B3F30"));
  EXPECT_EQ(sw[0].reason, "");
}

TEST(TimelineHistory, RejectsMalformed) {
  for (const char* bad : {"x\t0/1\treason\n", "1\tnot-an-lsn\n", "1\n", "0\t0/1\n",
                          "2\t0/1\n1\t0/2\n",  // timelines go backwards
                          "1\t0/5\n2\t0/4\n",  // switch points go backwards
                          "3\t0/5\n"}) {       // parent not older than the timeline
    EXPECT_THROW(parse_timeline_history(bad, TimelineId(3), "f"), Error) << bad;
  }
}

TEST(TimelineHistory, AncestryAndTimelineOfPoint) {
  // Timeline 4 branched from 2 (timeline 3 is a sibling branch, not an ancestor).
  TimelineHistory h(TimelineId(4),
                    {{TimelineId(1), L("0/3000158"), ""}, {TimelineId(2), L("0/5000060"), ""}});
  EXPECT_EQ(h.target(), TimelineId(4));
  ASSERT_EQ(h.spans().size(), 3u);
  EXPECT_EQ(h.spans()[0], (TimelineSpan{TimelineId(1), Lsn(0), L("0/3000158")}));
  EXPECT_EQ(h.spans()[2], (TimelineSpan{TimelineId(4), L("0/5000060"), std::nullopt}));
  EXPECT_TRUE(h.contains(TimelineId(1)));
  EXPECT_TRUE(h.contains(TimelineId(2)));
  EXPECT_FALSE(h.contains(TimelineId(3)));
  EXPECT_TRUE(h.contains(TimelineId(4)));
  EXPECT_EQ(h.parent_of(TimelineId(4)), TimelineId(2));
  EXPECT_EQ(h.parent_of(TimelineId(2)), TimelineId(1));
  EXPECT_EQ(h.parent_of(TimelineId(1)), std::nullopt);

  EXPECT_EQ(h.timeline_of(L("0/1000000")), TimelineId(1));
  EXPECT_EQ(h.timeline_of(L("0/3000157")), TimelineId(1));
  EXPECT_EQ(h.timeline_of(L("0/3000158")), TimelineId(2));  // the switch point is the child's
  EXPECT_EQ(h.timeline_of(L("0/500005F")), TimelineId(2));
  EXPECT_EQ(h.timeline_of(L("0/5000060")), TimelineId(4));
  EXPECT_EQ(h.timeline_of(L("7/0")), TimelineId(4));
}

TEST(TimelineHistory, SegmentFilesFollowTheNewestTimelineThatBeganByThen) {
  const uint64_t seg = 16 << 20;
  TimelineHistory h(TimelineId(3),
                    {{TimelineId(1), L("0/3000158"), ""}, {TimelineId(2), L("0/5000000"), ""}});
  EXPECT_EQ(h.timeline_of_segment(SegmentNo(2), seg), TimelineId(1));
  // Segment 3 holds the switch point: timeline 2's copy of it holds timeline 1's WAL before.
  EXPECT_EQ(h.timeline_of_segment(SegmentNo(3), seg), TimelineId(2));
  EXPECT_EQ(h.timeline_of_segment(SegmentNo(4), seg), TimelineId(2));
  // A switch exactly on a segment boundary.
  EXPECT_EQ(h.timeline_of_segment(SegmentNo(5), seg), TimelineId(3));
  EXPECT_EQ(h.timeline_of_segment(SegmentNo(99), seg), TimelineId(3));
}

TEST(TimelineHistory, TimelineAlone) {
  TimelineHistory h(TimelineId(1));
  EXPECT_EQ(h.target(), TimelineId(1));
  EXPECT_EQ(h.timeline_of(L("5/0")), TimelineId(1));
  EXPECT_EQ(h.timeline_of_segment(SegmentNo(7), 1 << 20), TimelineId(1));
}

}  // namespace
}  // namespace walvault
