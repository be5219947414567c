#include "pitr/repo_wal.h"

#include "pitr/wal_files.h"

namespace walvault {

RepoWal::RepoWal(const Repository& repo)
    : repo_(repo),
      segment_size_(repo.segment_size()),
      pg_major_(repo.identity().pg_version_num / 10000) {
  for (TimelineId tli : repo.wal_timelines()) {
    // A .partial completed while it is read makes the inventory stale: take it again.
    for (int attempt = 0;; ++attempt) {
      try {
        TimelineWal tw = scan_timeline_wal(repo, tli);
        ranges_[tli] = tw.ranges;
        inventory_[tli] = std::move(tw);
        break;
      } catch (const Error&) {
        if (attempt >= 3) throw;
      }
    }
  }
}

std::optional<WalFileEntry> RepoWal::file_for(TimelineId tli, SegmentNo segno) {
  auto it = inventory_.find(tli);
  if (it == inventory_.end()) return std::nullopt;
  const TimelineWal& tw = it->second;
  if (tw.partial && tw.partial->segno == segno) {
    // The inventory saw it in progress; it may have been completed since.
    if (auto done = repo_.find_complete_segment(tli, segno)) return done;
    return tw.partial;
  }
  const Lsn start = segment_start(segno, segment_size_);
  for (const auto& r : tw.ranges) {
    if (r.start <= start && start + segment_size_ <= r.end) {
      return repo_.find_complete_segment(tli, segno);
    }
  }
  return std::nullopt;
}

std::optional<std::vector<std::byte>> RepoWal::read(TimelineId tli, SegmentNo segno, bool& partial,
                                                    std::string* file_name) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto file = file_for(tli, segno);
    if (!file) return std::nullopt;
    if (file_name) *file_name = file->path.string();
    try {
      WalFileContent c = read_wal_file(*file, segment_size_);
      partial = c.partial;
      return std::move(c.bytes);
    } catch (const WalFileVanished&) {
      continue;  // completed meanwhile: look again
    }
  }
  return std::nullopt;
}

std::shared_ptr<const RepoWal::SegmentScan> RepoWal::scan_segment(const TimelineHistory& path,
                                                                  SegmentNo segno) {
  const TimelineId tli = path.timeline_of_segment(segno, segment_size_);
  const bool has_prev = segno.value > 0;
  const TimelineId prev_tli =
      has_prev ? path.timeline_of_segment(SegmentNo(segno.value - 1), segment_size_) : tli;
  const CacheKey key{tli.value, segno.value, prev_tli.value};
  for (auto it = recent_.begin(); it != recent_.end(); ++it) {
    if (it->first == key) {
      recent_.splice(recent_.begin(), recent_, it);
      return recent_.front().second;
    }
  }
  bool partial = false;
  std::string file;
  auto bytes = read(tli, segno, partial, &file);
  if (!bytes) return nullptr;

  auto scan = std::make_shared<SegmentScan>();
  const bool continues_live = live_ && live_next_ == segno && live_prev_tli_ == prev_tli &&
                              live_->stop() == WalScanStop::none;
  if (!continues_live) {
    live_ = std::make_unique<WalRecordScanner>(segment_size_, pg_major_, [this](const WalEvent& e) {
      if (live_sink_) live_sink_->push_back(e);
    });
    bool prev_partial = false;
    if (has_prev) {
      if (auto prev = read(prev_tli, SegmentNo(segno.value - 1), prev_partial);
          prev && !prev_partial) {
        live_sink_ = nullptr;
        live_->feed(segment_start(SegmentNo(segno.value - 1), segment_size_), *prev);
      }
    }
    if (live_->stop() != WalScanStop::none) {
      // The segment before is damaged: read this one on its own.
      live_ =
          std::make_unique<WalRecordScanner>(segment_size_, pg_major_, [this](const WalEvent& e) {
            if (live_sink_) live_sink_->push_back(e);
          });
    }
  }
  live_sink_ = &scan->events;
  live_->feed(segment_start(segno, segment_size_), *bytes);
  live_sink_ = nullptr;
  scan->end_of_records = live_->end_of_records();
  scan->stop = live_->stop();
  scan->problem = live_->problem();
  scan->content_bytes = bytes->size();
  scan->partial = partial;
  scan->file = file;
  if (partial || bytes->size() != segment_size_) {
    live_.reset();  // a pass cannot continue after an incomplete segment
  } else {
    live_next_ = segno.next();
    live_prev_tli_ = tli;
  }
  recent_.emplace_front(key, scan);
  if (recent_.size() > 4) recent_.pop_back();
  return scan;
}

void RepoWal::throw_damaged(const SegmentScan& scan) const {
  throw Error("WAL in \"" + scan.file + "\" cannot be replayed: " + scan.problem,
              "run walvault verify on the repository; WAL past this point cannot be recovered");
}

WalReach RepoWal::reach(const TimelineHistory& path, Lsn from) {
  WalReach r = compute_reach(path, ranges_, segment_size_, from);
  if (segment_offset(r.end, segment_size_) != 0 && r.end > from) {
    // WAL ends inside a segment (a .partial): recovery can replay its whole records only.
    const SegmentNo segno = segment_of(r.end, segment_size_);
    std::shared_ptr<const SegmentScan> scan;
    try {
      scan = scan_segment(path, segno);
    } catch (const Error& e) {
      // The .partial cannot be read: WAL is replayable up to its segment only.
      r.limit = WalReach::Limit::damaged;
      r.detail = e.what();
      r.end = std::max(from, segment_start(segno, segment_size_));
      return r;
    }
    if (scan) {
      if (scan->stop == WalScanStop::invalid) {
        r.limit = WalReach::Limit::damaged;
        r.detail = scan->problem;
      }
      if (scan->end_of_records < r.end) r.end = std::max(from, scan->end_of_records);
    }
  }
  return r;
}

void RepoWal::scan_events(const TimelineHistory& path, Lsn from, Lsn until,
                          const WalEventVisitor& visit) {
  if (until <= from) return;
  const uint64_t last = segment_of(Lsn(until.value - 1), segment_size_).value;
  for (uint64_t s = segment_of(from, segment_size_).value; s <= last; ++s) {
    auto scan = scan_segment(path, SegmentNo(s));
    if (!scan) return;
    for (const auto& e : scan->events) {
      if (e.lsn < from || e.end_lsn > until) continue;
      if (!visit(e)) return;
    }
    if (scan->damaged()) throw_damaged(*scan);
    if (scan->stop != WalScanStop::none) return;
  }
}

std::optional<WalEvent> RepoWal::last_event(const TimelineHistory& path, Lsn from, Lsn until,
                                            const std::function<bool(const WalEvent&)>& pred) {
  if (until <= from) return std::nullopt;
  const uint64_t first = segment_of(from, segment_size_).value;
  for (uint64_t s = segment_of(Lsn(until.value - 1), segment_size_).value + 1; s-- > first;) {
    auto scan = scan_segment(path, SegmentNo(s));
    if (!scan) continue;
    if (scan->damaged()) throw_damaged(*scan);
    for (auto it = scan->events.rbegin(); it != scan->events.rend(); ++it) {
      if (it->lsn < from) return std::nullopt;
      if (it->end_lsn > until) continue;
      if (pred(*it)) return *it;
    }
  }
  return std::nullopt;
}

}  // namespace walvault
