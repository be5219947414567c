#pragma once
// What WAL a repository holds for one timeline: contiguous archived ranges, computed from
// complete segments and the durable (verified) prefix of a `.partial`. Shared by the
// archiver (where to resume) and pitr (what can be restored, where the gaps are).

#include <optional>
#include <vector>

#include "core/lsn.h"
#include "core/repository.h"

namespace walvault {

struct WalRange {
  Lsn start;  // inclusive
  Lsn end;    // exclusive
  friend bool operator==(const WalRange&, const WalRange&) = default;
};

struct TimelineWal {
  TimelineId timeline;
  std::vector<WalRange> ranges;            // ascending, non-adjacent (merged)
  std::optional<WalFileEntry> partial;     // a .partial not superseded by a complete file
  uint64_t partial_bytes = 0;              // its durable content bytes
  std::optional<SegmentNo> last_complete;  // highest complete segment
};

// Durable content bytes of a `.partial`: for lz4, the verified prefix of whole blocks
// (a torn tail is not content); uncompressed partials are never preallocated, so their
// size is their content.
uint64_t partial_durable_bytes(const WalFileEntry& partial);

TimelineWal scan_timeline_wal(const Repository& repo, TimelineId tli);

// Merges [start,end) ranges of whole segments into contiguous ranges.
std::vector<WalRange> merge_ranges(std::vector<WalRange> ranges);

}  // namespace walvault
