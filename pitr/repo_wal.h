#pragma once
// WalView over a repository: the WAL inventory of every timeline (taken once, when the
// object is made, so that a running archiver does not change the picture halfway) and
// events read by decoding segments on demand.
//
// Events of a record are found in the segment where the record ends; to see a record that
// crosses into a segment, the segment before it is decoded first ("priming"). A forward pass
// over consecutive segments keeps one scanner running, so each segment is decoded once.
// Nothing is written to the repository: `info` and `restore --dry-run` leave it untouched.

#include <list>
#include <map>
#include <memory>
#include <optional>

#include "core/repository.h"
#include "core/wal_inventory.h"
#include "pitr/wal_view.h"

namespace walvault {

class RepoWal : public WalView {
 public:
  explicit RepoWal(const Repository& repo);

  const std::map<TimelineId, TimelineWal>& inventory() const { return inventory_; }
  const WalRangesByTimeline& ranges() const { return ranges_; }

  WalReach reach(const TimelineHistory& path, Lsn from) override;
  void scan_events(const TimelineHistory& path, Lsn from, Lsn until,
                   const WalEventVisitor& visit) override;
  std::optional<WalEvent> last_event(const TimelineHistory& path, Lsn from, Lsn until,
                                     const std::function<bool(const WalEvent&)>& pred) override;

  // What scanning one segment found: events of records that end in it.
  struct SegmentScan {
    std::vector<WalEvent> events;
    Lsn end_of_records;  // end of the last whole record read (may lie in the segment before)
    WalScanStop stop = WalScanStop::none;
    std::string problem;
    uint64_t content_bytes = 0;  // a .partial's durable prefix, or the segment size
    bool partial = false;
    std::string file;  // the file read, for messages
    // Records that stop before the end of a complete segment (or are invalid anywhere)
    // mean the WAL cannot be replayed past this point.
    bool damaged() const {
      return stop == WalScanStop::invalid || (stop == WalScanStop::end_of_wal && !partial);
    }
  };
  // nullptr when the path has no file for the segment.
  std::shared_ptr<const SegmentScan> scan_segment(const TimelineHistory& path, SegmentNo segno);

 private:
  std::optional<WalFileEntry> file_for(TimelineId tli, SegmentNo segno);
  std::optional<std::vector<std::byte>> read(TimelineId tli, SegmentNo segno, bool& partial,
                                             std::string* file = nullptr);
  [[noreturn]] void throw_damaged(const SegmentScan& scan) const;

  const Repository& repo_;
  uint64_t segment_size_;
  int pg_major_;
  std::map<TimelineId, TimelineWal> inventory_;
  WalRangesByTimeline ranges_;

  // The scanner of the last forward pass, positioned after segment live_next_ - 1 read
  // from timeline live_tli_.
  std::unique_ptr<WalRecordScanner> live_;
  std::vector<WalEvent>* live_sink_ = nullptr;
  SegmentNo live_next_;
  TimelineId live_prev_tli_;

  // A few recent scans (backward searches look at a segment and its predecessor).
  struct CacheKey {
    uint32_t tli;
    uint64_t segno;
    uint32_t prev_tli;
    friend auto operator<=>(const CacheKey&, const CacheKey&) = default;
  };
  std::list<std::pair<CacheKey, std::shared_ptr<const SegmentScan>>> recent_;
};

}  // namespace walvault
