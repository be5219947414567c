#pragma once
// The receive loop, in the three layers of pg_receivewal:
//   stream()            one timeline after the other: history file, START_REPLICATION,
//                       the copy loop, then the end of the timeline and the next one
//   copy_loop()         messages until endpos, a stop request or the server's CopyDone,
//                       with the status-update timer
//   handle_xlog_data()  one XLogData message into the sink (which splits it at segment
//                       boundaries)
// The flush position sent to the server is the sink's durable LSN, nothing more.

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "core/lsn.h"
#include "core/repository.h"
#include "walarchiver/archiver_stats.h"
#include "walarchiver/replication_source.h"
#include "walarchiver/segment_sink.h"

namespace walvault {

struct StreamOptions {
  std::string slot;
  std::optional<Lsn> endpos;  // stop once everything up to here is durable
  // Flush and report as soon as the stream goes idle (walvault as a synchronous standby).
  bool synchronous = false;
  int status_interval_ms = 10'000;
  std::function<bool()> stop_requested;  // polled at least every kPollIntervalMs
  ArchiverStats* stats = nullptr;        // updated as messages arrive (walvault service)
};

enum class StreamStop { endpos_reached, stop_requested };

struct StreamResult {
  StreamStop reason;
  TimelineId timeline;
  Lsn durable;
};

class WalReceiver {
 public:
  static constexpr int kPollIntervalMs = 100;
  static constexpr int kEndOfStreamTimeoutMs = 30'000;

  WalReceiver(ReplicationSource& source, const Repository& repo, SegmentSink& sink,
              StreamOptions options);

  // Streams from start on tli until endpos or a stop request, following timeline switches.
  // When the connection is lost (ConnectionLost), what was received is made durable first.
  StreamResult stream(TimelineId tli, Lsn start);

  uint64_t bytes_received() const { return bytes_received_; }

 private:
  enum class CopyEnd { endpos_reached, stop_requested, server_done };
  using Clock = std::chrono::steady_clock;

  StreamResult stream_timelines(TimelineId tli, Lsn start);
  CopyEnd copy_loop();
  void handle_xlog_data(const StreamMessage& message);
  void send_status(bool reply_requested);
  void flush_and_report();
  void end_stream_ourselves();
  void store_history(TimelineId tli);
  bool endpos_reached() const;
  bool stop_requested() const;
  void publish(Lsn server_wal_end);

  ReplicationSource& source_;
  const Repository& repo_;
  SegmentSink& sink_;
  StreamOptions options_;
  Clock::time_point next_status_;
  Lsn reported_flush_;
  uint64_t bytes_received_ = 0;
  uint64_t segments_published_ = 0;  // sink_.segments_completed() already counted in stats
};

// Stores REPO/wal/<TLI>.history durably; identical content is a no-op, different an Error.
void store_timeline_history(const Repository& repo, TimelineId tli, const std::string& content);

}  // namespace walvault
