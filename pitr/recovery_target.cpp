#include "pitr/recovery_target.h"

#include "core/error.h"

namespace walvault {

std::string_view to_string(TargetKind kind) {
  switch (kind) {
    case TargetKind::time:
      return "time";
    case TargetKind::lsn:
      return "lsn";
    case TargetKind::xid:
      return "xid";
    case TargetKind::name:
      return "name";
    case TargetKind::immediate:
      return "immediate";
    case TargetKind::latest:
      return "latest";
  }
  return "unknown";
}

std::string_view to_string(TargetAction action) {
  switch (action) {
    case TargetAction::pause:
      return "pause";
    case TargetAction::promote:
      return "promote";
    case TargetAction::shutdown:
      return "shutdown";
  }
  return "unknown";
}

std::optional<TargetAction> parse_target_action(std::string_view text) {
  if (text == "pause") return TargetAction::pause;
  if (text == "promote") return TargetAction::promote;
  if (text == "shutdown") return TargetAction::shutdown;
  return std::nullopt;
}

std::optional<TimelineChoice> parse_timeline_choice(std::string_view text) {
  if (text == "latest") return TimelineChoice{TimelineChoice::Kind::latest, {}};
  if (text == "current") return TimelineChoice{TimelineChoice::Kind::current, {}};
  auto n = parse_u32(text);
  if (!n || *n == 0) return std::nullopt;
  return TimelineChoice{TimelineChoice::Kind::given, TimelineId(*n)};
}

std::string RecoveryTarget::value_text() const {
  switch (kind) {
    case TargetKind::time:
      return format_iso8601_utc(time);
    case TargetKind::lsn:
      return lsn.str();
    case TargetKind::xid:
      return std::to_string(xid);
    case TargetKind::name:
      return name;
    case TargetKind::immediate:
      return "immediate";
    case TargetKind::latest:
      return "latest";
  }
  return {};
}

Timestamp parse_target_time(std::string_view text) {
  std::string why;
  auto parsed = parse_timestamp(text, &why);
  if (!parsed && !why.empty()) {
    throw usage_error("invalid --target-time \"" + std::string(text) + "\": " + why,
                      "give the time with its UTC offset, e.g. +01:00 or +02:00");
  }
  if (!parsed) {
    throw usage_error("invalid --target-time \"" + std::string(text) + "\"",
                      "write it as YYYY-MM-DD HH:MM[:SS[.ffffff]] with an optional zone "
                      "(Z, +HH, +HH:MM); without one the local time zone applies");
  }
  return parsed->time;
}

}  // namespace walvault
