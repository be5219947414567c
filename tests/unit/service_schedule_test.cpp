// The scheduler's arithmetic: durations, times of day, and the next slot after an attempt.

#include <gtest/gtest.h>
#include <stdlib.h>
#include <time.h>

#include "service/schedule.h"

namespace walvault {
namespace {

using namespace std::chrono_literals;

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

Timestamp at(const char* iso) {
  auto t = parse_timestamp(iso);
  EXPECT_TRUE(t) << iso;
  return t->time;
}

std::string iso(std::optional<Timestamp> t) {
  return t ? format_iso8601_utc(*t) : "none";
}

TEST(ServiceSchedule, Durations) {
  EXPECT_EQ(parse_duration("90s"), 90s);
  EXPECT_EQ(parse_duration("15min"), 15min);
  EXPECT_EQ(parse_duration("15m"), 15min);
  EXPECT_EQ(parse_duration("24h"), 24h);
  EXPECT_EQ(parse_duration("1d"), 24h);
  EXPECT_EQ(parse_duration("1h30m"), 90min);
  EXPECT_EQ(parse_duration("366d"), std::chrono::hours(366 * 24));
  for (const char* bad : {"", "0s", "15", "h", "1.5h", "-1h", "1w", "15 min", "367d",
                          "99999999999999999999s", "1h-30m"}) {
    EXPECT_FALSE(parse_duration(bad)) << bad;
  }
  EXPECT_EQ(format_duration(90s), "1m30s");
  EXPECT_EQ(format_duration(24h), "1d");
  EXPECT_EQ(format_duration(15min), "15m");
}

TEST(ServiceSchedule, TimesOfDay) {
  EXPECT_EQ(parse_time_of_day("00:00"), 0);
  EXPECT_EQ(parse_time_of_day("02:30"), 150);
  EXPECT_EQ(parse_time_of_day("23:59"), 1439);
  for (const char* bad : {"24:00", "2:30", "02:60", "0230", "02:30:00", "ab:cd", ""}) {
    EXPECT_FALSE(parse_time_of_day(bad)) << bad;
  }
}

TEST(ServiceSchedule, IntervalCountsFromTheLastAttempt) {
  Schedule s;
  s.interval = 24h;
  const Timestamp now = at("2026-12-03T14:05:00Z");
  // Nothing yet: at once.
  EXPECT_EQ(iso(next_slot(s, std::nullopt, now)), iso(now));
  // Yesterday 20:00: today 20:00.
  EXPECT_EQ(iso(next_slot(s, at("2026-12-02T20:00:00Z"), now)), "2026-12-03T20:00:00+00:00");
  // Three days ago (the service was down): the slot is past, so it is due now, once.
  EXPECT_EQ(iso(next_slot(s, at("2026-11-30T20:00:00Z"), now)), "2026-12-01T20:00:00+00:00");
  EXPECT_FALSE(next_slot(Schedule{}, std::nullopt, now));
  EXPECT_EQ(Schedule{}.describe(), "never");
  EXPECT_EQ(s.describe(), "every 1d");
}

TEST(ServiceSchedule, TimesOfDayInUtc) {
  ScopedTz tz("UTC");
  Schedule s;
  s.minutes_of_day = {150, 870};  // 02:30 and 14:30
  EXPECT_EQ(s.describe(), "at 02:30 and 14:30 (local time)");
  const Timestamp now = at("2026-12-03T14:05:00Z");
  EXPECT_EQ(iso(next_slot(s, at("2026-12-03T02:30:00Z"), now)), "2026-12-03T14:30:00+00:00");
  EXPECT_EQ(iso(next_slot(s, at("2026-12-03T14:30:00.5Z"), now)), "2026-12-04T02:30:00+00:00");
  // An attempt a second before the slot: the slot itself is still after it.
  EXPECT_EQ(iso(next_slot(s, at("2026-12-03T14:29:59Z"), now)), "2026-12-03T14:30:00+00:00");
  // The last attempt days ago: the first slot after it, which is past, so due now.
  EXPECT_EQ(iso(next_slot(s, at("2026-11-20T15:00:00Z"), now)), "2026-11-21T02:30:00+00:00");
}

TEST(ServiceSchedule, TimesOfDayFollowTheLocalZoneAcrossDaylightSaving) {
  ScopedTz tz("Europe/Berlin");
  Schedule s;
  s.minutes_of_day = {150};  // 02:30 local
  // Winter: 02:30 CET is 01:30 UTC.
  EXPECT_EQ(iso(next_slot(s, at("2026-12-03T12:00:00Z"), {})), "2026-12-04T01:30:00+00:00");
  // Summer: 02:30 CEST is 00:30 UTC.
  EXPECT_EQ(iso(next_slot(s, at("2026-07-01T12:00:00Z"), {})), "2026-07-02T00:30:00+00:00");
  // Autumn change (25 October 2026, 03:00 CEST -> 02:00 CET): one slot that day, the next
  // day's slot is in CET.
  const auto oct25 = next_slot(s, at("2026-10-24T12:00:00Z"), {});
  ASSERT_TRUE(oct25);
  const auto oct26 = next_slot(s, *oct25, {});
  EXPECT_EQ(iso(oct26), "2026-10-26T01:30:00+00:00");
  // Spring change (29 March 2026, 02:00 CET -> 03:00 CEST): 02:30 does not exist; the slot
  // moves to the instant mktime normalises it to, and the next day is back at 02:30 CEST.
  const auto mar29 = next_slot(s, at("2026-03-28T12:00:00Z"), {});
  ASSERT_TRUE(mar29);
  EXPECT_GT(mar29->unix_us, at("2026-03-29T00:00:00Z").unix_us);
  EXPECT_LT(mar29->unix_us, at("2026-03-29T02:00:00Z").unix_us);
  EXPECT_EQ(iso(next_slot(s, *mar29, {})), "2026-03-30T00:30:00+00:00");
}

}  // namespace
}  // namespace walvault
