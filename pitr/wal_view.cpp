#include "pitr/wal_view.h"

#include <algorithm>

namespace walvault {
namespace {

const WalRange* range_containing(const std::vector<WalRange>* ranges, Lsn pos) {
  if (!ranges) return nullptr;
  for (const auto& r : *ranges) {
    if (r.start <= pos && pos < r.end) return &r;
  }
  return nullptr;
}

// The segments whose file comes from span i of the path: from the segment where the span
// begins up to the one before the segment where the next span begins.
struct SegmentInterval {
  uint64_t first;
  std::optional<uint64_t> last;
};
SegmentInterval segments_of_span(const TimelineHistory& path, size_t i, uint64_t seg) {
  const auto& spans = path.spans();
  SegmentInterval out{segment_of(spans[i].begin, seg).value, std::nullopt};
  if (i + 1 < spans.size()) {
    const uint64_t next = segment_of(spans[i + 1].begin, seg).value;
    if (next == 0) return {1, 0};  // empty
    out.last = next - 1;
  }
  return out;
}

// The first archived position on the path after segment `after`.
std::optional<Lsn> next_archived(const TimelineHistory& path, const WalRangesByTimeline& wal,
                                 uint64_t seg, uint64_t after) {
  std::optional<Lsn> best;
  const auto& spans = path.spans();
  for (size_t i = 0; i < spans.size(); ++i) {
    auto it = wal.find(spans[i].timeline);
    if (it == wal.end()) continue;
    const SegmentInterval iv = segments_of_span(path, i, seg);
    for (const auto& r : it->second) {
      if (r.end <= r.start) continue;
      uint64_t lo = std::max({segment_of(r.start, seg).value, iv.first, after + 1});
      uint64_t hi = segment_of(Lsn(r.end.value - 1), seg).value;
      if (iv.last) hi = std::min(hi, *iv.last);
      if (lo > hi) continue;
      const Lsn at = std::max(segment_start(SegmentNo(lo), seg), r.start);
      if (!best || at < *best) best = at;
    }
  }
  return best;
}

}  // namespace

WalReach compute_reach(const TimelineHistory& path, const WalRangesByTimeline& wal, uint64_t seg,
                       Lsn from) {
  WalReach out;
  out.start = from;
  Lsn pos = from;
  for (;;) {
    const SegmentNo segno = segment_of(pos, seg);
    const TimelineId tli = path.timeline_of_segment(segno, seg);
    auto it = wal.find(tli);
    const WalRange* r = range_containing(it == wal.end() ? nullptr : &it->second, pos);
    const Lsn seg_end = segment_start(segno, seg) + seg;
    if (r && r->end >= seg_end) {
      pos = seg_end;
      continue;
    }
    out.end = r ? r->end : pos;
    out.timeline = tli;
    out.resumes = next_archived(path, wal, seg, segno.value);
    out.limit = out.resumes ? WalReach::Limit::missing : WalReach::Limit::end_of_archive;
    return out;
  }
}

}  // namespace walvault
