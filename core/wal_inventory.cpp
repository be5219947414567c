#include "core/wal_inventory.h"

#include <algorithm>

#include "core/fs.h"
#include "core/lz4_frame.h"

namespace walvault {

uint64_t partial_durable_bytes(const WalFileEntry& partial) {
  if (partial.compression == Compression::none) {
    std::error_code ec;
    auto size = fs::file_size(partial.path, ec);
    return ec ? 0 : size;
  }
  const std::string frame = read_file(partial.path);
  auto scan =
      scan_lz4_frame({reinterpret_cast<const std::byte*>(frame.data()), frame.size()}, nullptr);
  return scan.content_bytes;
}

std::vector<WalRange> merge_ranges(std::vector<WalRange> ranges) {
  std::sort(ranges.begin(), ranges.end(),
            [](const WalRange& a, const WalRange& b) { return a.start < b.start; });
  std::vector<WalRange> out;
  for (const auto& r : ranges) {
    if (r.end <= r.start) continue;
    if (!out.empty() && r.start <= out.back().end) {
      out.back().end = std::max(out.back().end, r.end);
    } else {
      out.push_back(r);
    }
  }
  return out;
}

TimelineWal scan_timeline_wal(const Repository& repo, TimelineId tli) {
  TimelineWal out;
  out.timeline = tli;
  const uint64_t seg = repo.segment_size();
  std::vector<WalRange> ranges;
  std::vector<WalFileEntry> partials;
  for (auto& e : repo.list_wal(tli)) {
    if (e.partial) {
      partials.push_back(std::move(e));
      continue;
    }
    const Lsn start = segment_start(e.segno, seg);
    ranges.push_back({start, start + seg});
    if (!out.last_complete || e.segno > *out.last_complete) out.last_complete = e.segno;
  }
  // Every .partial without a complete file of the same segment holds durable WAL: the
  // newest is the segment being received; an older one is where an archiver stopped before
  // a hole (or the end of an abandoned timeline). Counting it lets the hole show as a gap.
  std::optional<SegmentNo> previous;
  for (auto& p : partials) {
    const bool superseded = std::any_of(ranges.begin(), ranges.end(), [&](const WalRange& r) {
      return r.start == segment_start(p.segno, seg) && r.end == r.start + seg;
    });
    if (superseded || (previous && *previous == p.segno)) continue;
    previous = p.segno;
    const uint64_t bytes = partial_durable_bytes(p);
    const Lsn start = segment_start(p.segno, seg);
    ranges.push_back({start, start + bytes});
    if (!out.last_complete || p.segno > *out.last_complete) {
      out.partial = p;
      out.partial_bytes = bytes;
    }
  }
  out.ranges = merge_ranges(std::move(ranges));
  return out;
}

}  // namespace walvault
