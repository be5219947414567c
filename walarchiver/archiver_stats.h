#pragma once
// What a running archiver publishes for monitoring (walvault service's metrics): plain
// atomics written by the receive loop and read by any other thread, nothing that could
// block or fail on the streaming path.

#include <atomic>
#include <cstdint>

namespace walvault {

struct ArchiverStats {
  std::atomic<bool> streaming{false};  // inside START_REPLICATION's copy loop
  std::atomic<uint32_t> timeline{0};
  std::atomic<uint64_t> received_lsn{0};    // everything received (Lsn::value)
  std::atomic<uint64_t> flushed_lsn{0};     // everything durable in the repository
  std::atomic<uint64_t> server_wal_end{0};  // the server's WAL end, as last reported by it
  std::atomic<uint64_t> bytes_received{0};
  std::atomic<uint64_t> segments_archived{0};    // completed (renamed) segments
  std::atomic<int64_t> last_segment_unix_us{0};  // when the newest of them was completed
};

}  // namespace walvault
