#pragma once
// When walvault service runs a scheduled job (base backups, snapshots): every INTERVAL
// (`backup-interval = 24h`) or at times of day (`backup-time = 02:30`, local time,
// repeatable). The rule for both: the next run is the first slot strictly after the last
// attempt (failed attempts count: a failing job is retried at the next slot, not in a
// loop); a slot already past (the service was down) runs once, at once.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "core/timestamp.h"

namespace walvault {

struct Schedule {
  std::optional<std::chrono::seconds> interval;
  std::vector<int> minutes_of_day;  // sorted, distinct, 0..1439, in the local time zone
  bool enabled() const { return interval || !minutes_of_day.empty(); }
  std::string describe() const;  // "every 24h", "at 02:30 and 14:30 (local time)", "never"
};

// "90s", "15min", "15m", "24h", "1d", "1h30m": a sum of numbers with units s, m|min, h, d.
// nullopt for anything else, for zero, and for more than 366 days.
std::optional<std::chrono::seconds> parse_duration(const std::string& text);
std::string format_duration(std::chrono::seconds d);  // "1h30m", "15m", "90s" -> "1m30s"

// "HH:MM" (00:00 .. 23:59) as minutes after midnight.
std::optional<int> parse_time_of_day(const std::string& text);

// The first slot strictly after last_attempt; nullopt when the schedule is disabled.
// Without a last attempt: now (nothing to wait for).
std::optional<Timestamp> next_slot(const Schedule& schedule, std::optional<Timestamp> last_attempt,
                                   Timestamp now);

}  // namespace walvault
