#pragma once
// Where streaming starts, so that a restart at any moment (kill -9 included) leaves no gap
// and no duplicate:
//  1. the archive's own end: on the newest archived timeline that the server's history
//     contains, the end of its last contiguous range (a complete segment -> the next
//     segment's start; a .partial -> exactly its verified prefix). When that timeline is
//     an ancestor already archived up to its end, the child timeline at the segment start
//     of the switch point;
//  2. otherwise the slot's restart_lsn, rounded down to its segment start;
//  3. otherwise the server's current position, rounded down to its segment start.

#include <optional>
#include <string>

#include "core/lsn.h"
#include "core/repository.h"
#include "walarchiver/replication_source.h"

namespace walvault {

struct StartPoint {
  TimelineId timeline;
  Lsn lsn;
  std::string why;  // for the log: "the archive's end", "slot restart_lsn", ...
};

struct ArchivedEnd {
  TimelineId timeline;
  Lsn end;  // exclusive end of the last contiguous archived range
};

// The end of what the repository holds on its newest timeline not above max_timeline.
std::optional<ArchivedEnd> archived_end(const Repository& repo, TimelineId max_timeline);

StartPoint find_start_point(const Repository& repo, ReplicationSource& source,
                            const SystemInfo& server, const std::string& slot);

// For an explicit start (walvault backup streaming its own WAL): the end of the archived
// range that contains start on tli, or start rounded down to its segment start.
StartPoint start_point_from(const Repository& repo, TimelineId tli, Lsn start);

}  // namespace walvault
