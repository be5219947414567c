#pragma once
// Parsing of timeline history files ("<parent tli>\t<switch lsn>\t<reason>" per line):
// where each ancestor timeline of a timeline ended.

#include <optional>
#include <string_view>
#include <vector>

#include "core/lsn.h"

namespace walvault {

struct TimelineSwitch {
  TimelineId timeline;  // an ancestor timeline
  Lsn end;              // where it ended (the child begins here)
};

// Ancestors in file order (oldest first). Throws Error on a malformed line.
std::vector<TimelineSwitch> parse_timeline_history(std::string_view content);

// Where `ancestor` ended according to the history, nullopt when it is not an ancestor.
std::optional<Lsn> timeline_end(const std::vector<TimelineSwitch>& history, TimelineId ancestor);

// The timeline that follows `ancestor` in the history of `newest` (whose history it is).
std::optional<TimelineId> child_timeline(const std::vector<TimelineSwitch>& history,
                                         TimelineId ancestor, TimelineId newest);

}  // namespace walvault
