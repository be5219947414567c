#pragma once
// Timeline history: PostgreSQL's `<TLI>.history` files (kept verbatim in the repository) and
// the ancestry they describe.
//
// A history file of timeline N lists every ancestor of N, oldest first, one line each:
//     <parent TLI> \t <switch point LSN> \t <reason>
// meaning "timeline <parent> ended at <switch point>; its successor on the way to N begins
// there". Blank lines and lines starting with '#' are comments. Timeline 1 has no file.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/lsn.h"

namespace walvault {

class Repository;

// One line of a history file.
struct TimelineSwitch {
  TimelineId parent;
  Lsn switch_lsn;
  std::string reason;
};

// Parses the text of `<tli>.history`. Throws Error (naming what_for_errors) on malformed lines,
// timelines that do not increase, switch points that go backwards or a parent >= tli.
std::vector<TimelineSwitch> parse_timeline_history(std::string_view text, TimelineId tli,
                                                   const std::string& what_for_errors);

// Checks a stored history file as a whole before it is used or handed to PostgreSQL: it parses,
// names at least one parent (timeline 1 has no file) and ends with a newline (PostgreSQL ends
// every line with one: a file without is truncated, maybe inside a switch point). Throws Error
// naming what_for_errors.
std::vector<TimelineSwitch> check_timeline_history_file(std::string_view text, TimelineId tli,
                                                        const std::string& what_for_errors);

// The part of WAL history that one timeline contributes on the way to a target timeline:
// [begin, end); end is nullopt for the target timeline itself (open-ended).
struct TimelineSpan {
  TimelineId timeline;
  Lsn begin;               // Lsn(0) for the first timeline
  std::optional<Lsn> end;  // the switch point where the next timeline begins
  friend bool operator==(const TimelineSpan&, const TimelineSpan&) = default;
};

// The ancestry of one timeline, oldest first; the last span is the timeline itself.
class TimelineHistory {
 public:
  // Timeline `tli` with no known ancestors (timeline 1, or a history file that is absent).
  explicit TimelineHistory(TimelineId tli);
  TimelineHistory(TimelineId tli, const std::vector<TimelineSwitch>& switches);

  TimelineId target() const { return spans_.back().timeline; }
  const std::vector<TimelineSpan>& spans() const { return spans_; }

  // True when tli is the target or one of its ancestors.
  bool contains(TimelineId tli) const;
  // The timeline that wrote the WAL at lsn on the way to target(), as PostgreSQL's
  // tliOfPointInHistory: begin <= lsn < end.
  TimelineId timeline_of(Lsn lsn) const;
  // The span of tli on this path (nullopt when tli is not on it).
  std::optional<TimelineSpan> span_of(TimelineId tli) const;
  // The timeline whose WAL file PostgreSQL restores for segment segno when recovering along
  // this path: the newest timeline that begins at or before the segment (XLogFileReadAnyTLI).
  // Its file holds the older timeline's WAL up to the switch point as well.
  TimelineId timeline_of_segment(SegmentNo segno, uint64_t segment_size_bytes) const;
  // The timeline's parent on this path and the LSN where the timeline begins.
  std::optional<TimelineId> parent_of(TimelineId tli) const;

 private:
  std::vector<TimelineSpan> spans_;
};

// Reads REPO/wal/<tli>.history. Timeline 1 never has one; for a later timeline whose file is
// absent, has_file is false and the history holds the timeline alone.
struct LoadedHistory {
  TimelineHistory history;
  bool has_file = false;
};
LoadedHistory load_timeline_history(const Repository& repo, TimelineId tli);

}  // namespace walvault
