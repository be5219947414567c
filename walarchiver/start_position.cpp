#include "walarchiver/start_position.h"

#include "core/log.h"
#include "core/timeline_history.h"
#include "core/wal_inventory.h"

namespace walvault {

std::optional<ArchivedEnd> archived_end(const Repository& repo, TimelineId max_timeline) {
  const auto timelines = repo.wal_timelines();
  for (auto it = timelines.rbegin(); it != timelines.rend(); ++it) {
    if (*it > max_timeline) continue;
    const TimelineWal wal = scan_timeline_wal(repo, *it);
    if (wal.ranges.empty()) continue;
    return ArchivedEnd{*it, wal.ranges.back().end};
  }
  return std::nullopt;
}

StartPoint find_start_point(const Repository& repo, ReplicationSource& source,
                            const SystemInfo& server, const std::string& slot) {
  const uint64_t seg = repo.segment_size();
  if (auto end = archived_end(repo, server.timeline)) {
    if (end->timeline == server.timeline) {
      return {end->timeline, end->end, "the archive's end"};
    }
    // The archive stopped on an ancestor of the server's timeline (a promotion happened
    // while nothing was archiving): finish that timeline, or go on with its child.
    const TimelineHistory history(
        server.timeline,
        parse_timeline_history(
            source.timeline_history(server.timeline), server.timeline,
            "the server's history of timeline " + std::to_string(server.timeline.value)));
    const auto& spans = history.spans();
    for (size_t i = 0; i + 1 < spans.size(); ++i) {
      if (spans[i].timeline != end->timeline || !spans[i].end) continue;
      const Lsn switch_lsn = *spans[i].end;
      if (end->end < switch_lsn) {
        return {end->timeline, end->end, "the archive's end on an older timeline"};
      }
      const TimelineId child = spans[i + 1].timeline;
      return {child, segment_start(segment_of(switch_lsn, seg), seg),
              "the start of timeline " + std::to_string(child.value) + " after the archive's end"};
    }
    log::warning("the archive ends on timeline " + std::to_string(end->timeline.value) +
                 ", which is not in the history of the server's timeline " +
                 std::to_string(server.timeline.value) + "; starting anew");
  }
  if (!slot.empty()) {
    if (auto info = source.read_replication_slot(slot); info && info->restart_lsn.valid()) {
      TimelineId tli = info->restart_tli;
      if (!tli.value) {
        // PostgreSQL 14 does not say on which timeline restart_lsn lies: the server's
        // history does (the timeline that wrote the WAL at that LSN).
        tli = server.timeline;
        if (server.timeline.value > 1) {
          const TimelineHistory history(
              server.timeline,
              parse_timeline_history(
                  source.timeline_history(server.timeline), server.timeline,
                  "the server's history of timeline " + std::to_string(server.timeline.value)));
          tli = history.timeline_of(info->restart_lsn);
        }
      }
      return {tli, segment_start(segment_of(info->restart_lsn, seg), seg),
              "the restart_lsn of slot \"" + slot + "\""};
    }
  }
  return {server.timeline, segment_start(segment_of(server.xlogpos, seg), seg),
          "the server's current position"};
}

StartPoint start_point_from(const Repository& repo, TimelineId tli, Lsn start) {
  const TimelineWal wal = scan_timeline_wal(repo, tli);
  for (const auto& r : wal.ranges) {
    if (r.start <= start && start <= r.end) return {tli, r.end, "the archive's end"};
  }
  const uint64_t seg = repo.segment_size();
  return {tli, segment_start(segment_of(start, seg), seg), "the requested start"};
}

}  // namespace walvault
