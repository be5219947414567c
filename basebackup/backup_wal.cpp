#include "basebackup/backup_wal.h"

#include <thread>
#include <vector>

#include "core/error.h"
#include "core/wal_inventory.h"

namespace walvault {

std::optional<Lsn> first_missing_wal(const Repository& repo, TimelineId start_tli,
                                     TimelineId stop_tli, Lsn start, Lsn stop) {
  if (stop <= start) return std::nullopt;
  std::vector<WalRange> ranges = scan_timeline_wal(repo, start_tli).ranges;
  if (stop_tli != start_tli) {
    auto more = scan_timeline_wal(repo, stop_tli).ranges;
    ranges.insert(ranges.end(), more.begin(), more.end());
    ranges = merge_ranges(std::move(ranges));
  }
  for (const auto& r : ranges) {
    if (r.start <= start && start < r.end)
      return r.end >= stop ? std::nullopt : std::optional(r.end);
  }
  return start;
}

bool wait_for_wal(const Repository& repo, TimelineId start_tli, TimelineId stop_tli, Lsn start,
                  Lsn stop, std::chrono::milliseconds timeout,
                  const std::function<bool()>& stop_requested) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (!first_missing_wal(repo, start_tli, stop_tli, start, stop)) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (stop_requested && stop_requested()) {
      throw Error("interrupted while waiting for the WAL of the backup",
                  "the backup is marked failed; run it again");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

}  // namespace walvault
