#include <gtest/gtest.h>
#include <stdlib.h>
#include <time.h>

#include <string>

#include "core/timestamp.h"

namespace walvault {
namespace {

// Sets TZ for one test and puts it back.
class ScopedTz {
 public:
  explicit ScopedTz(const char* tz) {
    if (const char* old = getenv("TZ")) old_ = old;
    setenv("TZ", tz, 1);
    tzset();
  }
  ~ScopedTz() {
    if (old_.empty())
      unsetenv("TZ");
    else
      setenv("TZ", old_.c_str(), 1);
    tzset();
  }

 private:
  std::string old_;
};

TEST(TimestampDst, LocalTimeInSummerAndWinter) {
  ScopedTz tz("Europe/Berlin");
  auto summer = parse_timestamp("2026-07-01 12:00:00");
  ASSERT_TRUE(summer);
  EXPECT_FALSE(summer->had_zone);
  EXPECT_EQ(format_iso8601_utc(summer->time), "2026-07-01T10:00:00+00:00");
  auto winter = parse_timestamp("2026-12-03 14:05");
  ASSERT_TRUE(winter);
  EXPECT_EQ(format_iso8601_utc(winter->time), "2026-12-03T13:05:00+00:00");
}

TEST(TimestampDst, RepeatedHourIsRefused) {
  ScopedTz tz("Europe/Berlin");
  std::string why;
  EXPECT_FALSE(parse_timestamp("2026-10-25 02:30:00", &why));
  EXPECT_EQ(why, "that local time happens twice (the clocks go back for daylight saving)");
  // With an offset it is one moment again.
  auto explicit_offset = parse_timestamp("2026-10-25 02:30:00+01:00");
  ASSERT_TRUE(explicit_offset);
  EXPECT_EQ(format_iso8601_utc(explicit_offset->time), "2026-10-25T01:30:00+00:00");
}

TEST(TimestampDst, SkippedHourIsRefused) {
  ScopedTz tz("Europe/Berlin");
  std::string why;
  EXPECT_FALSE(parse_timestamp("2026-03-29 02:30:00", &why));
  EXPECT_EQ(why, "that local time does not exist (the clocks skip it for daylight saving)");
}

TEST(TimestampDst, ImpossibleDatesAreNotDaylightSaving) {
  ScopedTz tz("Europe/Berlin");
  std::string why;
  EXPECT_FALSE(parse_timestamp("2026-02-30 10:00:00", &why));
  EXPECT_EQ(why, "");
  EXPECT_FALSE(parse_timestamp("2026-02-29 10:00:00"));
  EXPECT_TRUE(parse_timestamp("2028-02-29 10:00:00"));
  // Second 60 is plainly invalid, not a daylight-saving gap.
  why.clear();
  EXPECT_FALSE(parse_timestamp("2026-12-04 08:47:60", &why));
  EXPECT_EQ(why, "");
  EXPECT_FALSE(parse_timestamp("2026-12-04 08:47:60+00"));
}

}  // namespace
}  // namespace walvault

namespace walvault {
namespace {

// Found by fuzz_target_spec (tests/fuzz/regressions/target_spec/year-0221-three-digits):
// strftime's %Y printed "221", which neither parse_timestamp nor PostgreSQL reads as the year
// 221.
TEST(TimestampFormat, EarlyYearsKeepFourDigits) {
  const auto t = parse_timestamp("0221-03-26-00");
  ASSERT_TRUE(t);
  EXPECT_EQ(format_iso8601_utc(t->time), "0221-03-26T00:00:00+00:00");
  EXPECT_EQ(format_pg_utc(t->time), "0221-03-26 00:00:00+00");
  EXPECT_EQ(format_compact_utc(t->time), "02210326T000000Z");
  const auto again = parse_timestamp(format_iso8601_utc(t->time));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->time, t->time);
}

}  // namespace
}  // namespace walvault
