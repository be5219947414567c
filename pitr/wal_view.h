#pragma once
// The planner's view of archived WAL along one timeline path: how far it can be replayed
// without a hole, and the events (commits, aborts, restore points) in it. One real
// implementation reads the repository (pitr/repo_wal.h); tests use an in-memory fake.

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/lsn.h"
#include "core/timeline_history.h"
#include "core/wal_inventory.h"
#include "pitr/wal_records.h"

namespace walvault {

// How far WAL can be replayed from a point along a timeline path.
struct WalReach {
  enum class Limit {
    end_of_archive,  // nothing after `end` on the path: WAL simply ends there
    missing,         // a hole: `resumes` says where WAL on the path continues
    damaged,         // a file that cannot be read or whose records stop early
  };
  Lsn start;
  Lsn end;  // replayable from start to end (exclusive)
  Limit limit = Limit::end_of_archive;
  TimelineId timeline;         // the timeline whose WAL ends, is missing or damaged at `end`
  std::optional<Lsn> resumes;  // missing: where archived WAL on the path continues
  std::string detail;          // damaged: what is wrong (names the file)
};

// Visits events in LSN order; return false to stop.
using WalEventVisitor = std::function<bool(const WalEvent&)>;

class WalView {
 public:
  virtual ~WalView() = default;
  virtual WalReach reach(const TimelineHistory& path, Lsn from) = 0;
  // Events of records that begin at or after `from` and end at or before `until`, reading
  // along `path`, in LSN order.
  virtual void scan_events(const TimelineHistory& path, Lsn from, Lsn until,
                           const WalEventVisitor& visit) = 0;
  // The last event (by LSN) in [from, until) that pred accepts.
  virtual std::optional<WalEvent> last_event(const TimelineHistory& path, Lsn from, Lsn until,
                                             const std::function<bool(const WalEvent&)>& pred) = 0;
};

using WalRangesByTimeline = std::map<TimelineId, std::vector<WalRange>>;

// The pure part of reach(): from the archived byte ranges of each timeline (whole segments,
// the durable prefix of a .partial), following PostgreSQL's choice of one file per segment
// (TimelineHistory::timeline_of_segment).
WalReach compute_reach(const TimelineHistory& path, const WalRangesByTimeline& wal,
                       uint64_t segment_size_bytes, Lsn from);

}  // namespace walvault
