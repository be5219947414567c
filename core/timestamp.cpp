#include "core/timestamp.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace walvault {
namespace {

bool take_digits(std::string_view& s, size_t n, int& out) {
  if (s.size() < n) return false;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  out = v;
  s.remove_prefix(n);
  return true;
}

bool take_char(std::string_view& s, char c) {
  if (s.empty() || s[0] != c) return false;
  s.remove_prefix(1);
  return true;
}

struct tm to_utc_tm(Timestamp t, int& micros) {
  int64_t secs = t.unix_us / 1000000;
  int64_t us = t.unix_us % 1000000;
  if (us < 0) {
    us += 1000000;
    secs -= 1;
  }
  micros = int(us);
  time_t tt = time_t(secs);
  struct tm tm;
  gmtime_r(&tt, &tm);
  return tm;
}

}  // namespace

Timestamp now() {
  auto d = std::chrono::system_clock::now().time_since_epoch();
  return Timestamp{std::chrono::duration_cast<std::chrono::microseconds>(d).count()};
}

// Years are printed with four digits (strftime's %Y prints 221 for the year 221): PostgreSQL,
// and parse_timestamp, read them back as written.
std::string format_iso8601_utc(Timestamp t) {
  int us;
  struct tm tm = to_utc_tm(t, us);
  char buf[64];
  size_t n =
      size_t(std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec));
  if (us) n += size_t(std::snprintf(buf + n, sizeof buf - n, ".%06d", us));
  std::snprintf(buf + n, sizeof buf - n, "+00:00");
  return buf;
}

std::string format_pg_utc(Timestamp t) {
  int us;
  struct tm tm = to_utc_tm(t, us);
  char buf[64];
  size_t n =
      size_t(std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900,
                           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec));
  if (us) n += size_t(std::snprintf(buf + n, sizeof buf - n, ".%06d", us));
  std::snprintf(buf + n, sizeof buf - n, "+00");
  return buf;
}

std::string format_compact_utc(Timestamp t) {
  int us;
  struct tm tm = to_utc_tm(t, us);
  char buf[80];
  std::snprintf(buf, sizeof buf, "%04d%02d%02dT%02d%02d%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::optional<ParsedTimestamp> parse_timestamp(std::string_view s, std::string* why) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  struct tm tm = {};
  int year, month, day, hour = 0, minute = 0, second = 0, micros = 0;
  if (!take_digits(s, 4, year) || !take_char(s, '-') || !take_digits(s, 2, month) ||
      !take_char(s, '-') || !take_digits(s, 2, day)) {
    return std::nullopt;
  }
  if (!s.empty() && (s[0] == 'T' || s[0] == ' ')) {
    s.remove_prefix(1);
    if (!take_digits(s, 2, hour) || !take_char(s, ':') || !take_digits(s, 2, minute)) {
      return std::nullopt;
    }
    if (take_char(s, ':')) {
      if (!take_digits(s, 2, second)) return std::nullopt;
      if (take_char(s, '.')) {
        size_t digits = 0;
        while (!s.empty() && s[0] >= '0' && s[0] <= '9') {
          if (digits < 6) micros = micros * 10 + (s[0] - '0');
          ++digits;
          s.remove_prefix(1);
        }
        if (digits == 0) return std::nullopt;
        for (size_t i = digits; i < 6; ++i) micros *= 10;
      }
    }
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) {
    return std::nullopt;
  }
  static constexpr int kDaysInMonth[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (day > kDaysInMonth[month - 1] || (month == 2 && day == 29 && !leap)) return std::nullopt;
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  bool had_zone = false;
  int offset_s = 0;
  if (s == "Z" || s == "z" || s == "UTC" || s == "utc" || s == "GMT") {
    had_zone = true;
    s = {};
  } else if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    const int sign = s[0] == '-' ? -1 : 1;
    s.remove_prefix(1);
    int oh = 0, om = 0;
    if (!take_digits(s, 2, oh)) return std::nullopt;
    if (take_char(s, ':')) {
      if (!take_digits(s, 2, om)) return std::nullopt;
    } else if (!s.empty()) {
      if (!take_digits(s, 2, om)) return std::nullopt;
    }
    if (oh > 15 || om > 59) return std::nullopt;
    offset_s = sign * (oh * 3600 + om * 60);
    had_zone = true;
  }
  if (!s.empty()) return std::nullopt;

  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  time_t secs;
  if (had_zone) {
    secs = timegm(&tm) - offset_s;
  } else {
    // Try the wall-clock time as standard and as daylight time; keep the readings that map
    // back to the same wall clock. Two different ones: ambiguous; none: skipped by the zone.
    std::optional<time_t> found;
    bool ambiguous = false;
    for (int dst : {0, 1}) {
      struct tm attempt = tm;
      attempt.tm_isdst = dst;
      const time_t t = mktime(&attempt);
      struct tm back;
      localtime_r(&t, &back);
      if (back.tm_hour != hour || back.tm_min != minute || back.tm_mday != day) continue;
      if (found && *found != t) ambiguous = true;
      if (!found) found = t;
    }
    if (!found) {
      if (why) *why = "that local time does not exist (the clocks skip it for daylight saving)";
      return std::nullopt;
    }
    if (ambiguous) {
      if (why) *why = "that local time happens twice (the clocks go back for daylight saving)";
      return std::nullopt;
    }
    secs = *found;
  }
  // Reject dates that normalised to another day (e.g. February 30).
  struct tm check;
  if (had_zone) {
    time_t local = secs + offset_s;
    gmtime_r(&local, &check);
  } else {
    localtime_r(&secs, &check);
  }
  if (check.tm_mday != day || check.tm_mon != month - 1) return std::nullopt;
  return ParsedTimestamp{Timestamp{int64_t(secs) * 1000000 + micros}, had_zone};
}

}  // namespace walvault
