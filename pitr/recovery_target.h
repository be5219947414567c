#pragma once
// What the user asks to recover to, and how it is told to PostgreSQL.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/lsn.h"
#include "core/timestamp.h"

namespace walvault {

enum class TargetKind { time, lsn, xid, name, immediate, latest };
std::string_view to_string(TargetKind kind);

enum class TargetAction { pause, promote, shutdown };
std::string_view to_string(TargetAction action);
std::optional<TargetAction> parse_target_action(std::string_view text);

// --target-timeline: latest (the newest timeline in the repository), current (the chosen
// backup's timeline) or a number.
struct TimelineChoice {
  enum class Kind { latest, current, given } kind = Kind::latest;
  TimelineId timeline;  // for given
};
std::optional<TimelineChoice> parse_timeline_choice(std::string_view text);

struct RecoveryTarget {
  TargetKind kind = TargetKind::latest;
  Timestamp time;         // time
  Lsn lsn;                // lsn
  uint32_t xid = 0;       // xid
  std::string name;       // name (a restore point)
  bool inclusive = true;  // false: --target-exclusive
  TimelineChoice timeline;
  TargetAction action = TargetAction::pause;

  // "2026-12-03T14:05:00+00:00", "0/5D000C90", "745", the name, "immediate", "latest".
  std::string value_text() const;
};

// The time as a user typed it: with or without a zone (without: the local zone of this
// process). A usage error (exit 2) when it cannot be read.
Timestamp parse_target_time(std::string_view text);

}  // namespace walvault
