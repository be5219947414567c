#pragma once
// Wall-clock times: parsed from what users type (ISO 8601 or PostgreSQL style, with or
// without a zone; without one the tool's local zone applies) and printed with an explicit
// offset, always UTC, so nothing downstream ever guesses a zone.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace walvault {

struct Timestamp {
  int64_t unix_us = 0;  // microseconds since 1970-01-01 00:00:00 UTC
  friend constexpr auto operator<=>(Timestamp, Timestamp) = default;
};

// PostgreSQL's TimestampTz counts microseconds from 2000-01-01 00:00:00 UTC.
constexpr int64_t kPgEpochUnixUs = 946684800LL * 1000000LL;
constexpr Timestamp from_pg_timestamp(int64_t pg_us) {
  return Timestamp{pg_us + kPgEpochUnixUs};
}
constexpr int64_t to_pg_timestamp(Timestamp t) {
  return t.unix_us - kPgEpochUnixUs;
}

Timestamp now();

// "2026-12-03T14:05:00.123456+00:00" (fraction only when non-zero).
std::string format_iso8601_utc(Timestamp t);
// "2026-12-03 14:05:00.123456+00" — PostgreSQL's own notation, for recovery_target_time.
std::string format_pg_utc(Timestamp t);
// "20261203T140500Z" — used for backup ids.
std::string format_compact_utc(Timestamp t);

struct ParsedTimestamp {
  Timestamp time;
  bool had_zone = false;  // false: read in the local zone
};
// Accepts "YYYY-MM-DD[ T]HH:MM[:SS[.ffffff]][zone]" where zone is Z, UTC, +HH, +HHMM or +HH:MM
// (or -), and a bare "YYYY-MM-DD" (midnight). Returns nullopt for anything else, and for a
// local time that the zone's daylight-saving change makes ambiguous (the hour that repeats)
// or nonexistent (the hour that is skipped): guessing would restore to the wrong moment.
// *why, when given, then says which of these it was.
std::optional<ParsedTimestamp> parse_timestamp(std::string_view text, std::string* why = nullptr);

}  // namespace walvault
