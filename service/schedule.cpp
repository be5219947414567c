#include "service/schedule.h"

#include <algorithm>
#include <cctype>
#include <ctime>

namespace walvault {
namespace {

constexpr int64_t kMaxSeconds = 366LL * 24 * 3600;
constexpr int64_t kUsPerSecond = 1'000'000;

std::string two_digits(int v) {
  return std::string(1, char('0' + v / 10 % 10)) + char('0' + v % 10);
}

// The instant of minute_of_day on the local calendar day `day` days after the one of t.
// mktime normalises day overflow and, with tm_isdst = -1, picks the zone's offset itself.
int64_t local_slot_unix(int64_t t_unix, int day, int minute_of_day) {
  const std::time_t t = std::time_t(t_unix);
  std::tm tm{};
  localtime_r(&t, &tm);
  tm.tm_mday += day;
  tm.tm_hour = minute_of_day / 60;
  tm.tm_min = minute_of_day % 60;
  tm.tm_sec = 0;
  tm.tm_isdst = -1;
  return int64_t(std::mktime(&tm));
}

}  // namespace

std::optional<std::chrono::seconds> parse_duration(const std::string& text) {
  int64_t total = 0;
  size_t i = 0;
  if (text.empty()) return std::nullopt;
  while (i < text.size()) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return std::nullopt;
    int64_t n = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      n = n * 10 + (text[i] - '0');
      if (n > kMaxSeconds) return std::nullopt;
      ++i;
    }
    size_t j = i;
    while (j < text.size() && std::isalpha(static_cast<unsigned char>(text[j]))) ++j;
    const std::string unit = text.substr(i, j - i);
    i = j;
    int64_t scale = 0;
    if (unit == "s")
      scale = 1;
    else if (unit == "m" || unit == "min")
      scale = 60;
    else if (unit == "h")
      scale = 3600;
    else if (unit == "d")
      scale = 86400;
    else
      return std::nullopt;
    total += n * scale;
    if (total > kMaxSeconds) return std::nullopt;
  }
  if (total == 0) return std::nullopt;
  return std::chrono::seconds(total);
}

std::string format_duration(std::chrono::seconds d) {
  int64_t s = d.count();
  std::string out;
  for (const auto& [scale, unit] :
       {std::pair<int64_t, const char*>{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}}) {
    if (s >= scale) {
      out += std::to_string(s / scale) + unit;
      s %= scale;
    }
  }
  return out.empty() ? "0s" : out;
}

std::optional<int> parse_time_of_day(const std::string& text) {
  if (text.size() != 5 || text[2] != ':') return std::nullopt;
  for (size_t i : {0u, 1u, 3u, 4u}) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return std::nullopt;
  }
  const int h = (text[0] - '0') * 10 + (text[1] - '0');
  const int m = (text[3] - '0') * 10 + (text[4] - '0');
  if (h > 23 || m > 59) return std::nullopt;
  return h * 60 + m;
}

std::string Schedule::describe() const {
  if (interval) return "every " + format_duration(*interval);
  if (minutes_of_day.empty()) return "never";
  std::string out = "at ";
  for (size_t i = 0; i < minutes_of_day.size(); ++i) {
    if (i) out += i + 1 == minutes_of_day.size() ? " and " : ", ";
    out += two_digits(minutes_of_day[i] / 60) + ":" + two_digits(minutes_of_day[i] % 60);
  }
  return out + " (local time)";
}

std::optional<Timestamp> next_slot(const Schedule& schedule, std::optional<Timestamp> last_attempt,
                                   Timestamp now) {
  if (!schedule.enabled()) return std::nullopt;
  if (!last_attempt) return now;
  if (schedule.interval) {
    return Timestamp{last_attempt->unix_us + schedule.interval->count() * kUsPerSecond};
  }
  // Whole seconds: a slot is a minute boundary, an attempt at 02:30:00.4 is after 02:30.
  const int64_t last_s = last_attempt->unix_us / kUsPerSecond;
  std::optional<int64_t> best;
  // Today, tomorrow and the day after (a day can be 23 or 25 hours long).
  for (int day = 0; day <= 2; ++day) {
    for (int minute : schedule.minutes_of_day) {
      const int64_t t = local_slot_unix(last_s, day, minute);
      if (t * kUsPerSecond > last_attempt->unix_us && (!best || t < *best)) best = t;
    }
    if (best) break;
  }
  return Timestamp{*best * kUsPerSecond};
}

}  // namespace walvault
