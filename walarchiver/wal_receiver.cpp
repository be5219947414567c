#include "walarchiver/wal_receiver.h"

#include <algorithm>

#include "core/error.h"
#include "core/log.h"
#include "core/timestamp.h"

namespace walvault {

void store_timeline_history(const Repository& repo, TimelineId tli, const std::string& content) {
  const fs::path path = repo.history_path(tli);
  if (auto existing = read_file_if_exists(path)) {
    if (*existing == content) return;
    throw Error("timeline history \"" + path.string() + "\" differs from the server's",
                "the repository may hold WAL of another server; investigate before archiving "
                "further");
  }
  make_dirs(path.parent_path());
  write_file_durable(path, content);
  log::info("archived timeline history " + history_file_name(tli));
}

WalReceiver::WalReceiver(ReplicationSource& source, const Repository& repo, SegmentSink& sink,
                         StreamOptions options)
    : source_(source), repo_(repo), sink_(sink), options_(std::move(options)) {}

bool WalReceiver::endpos_reached() const {
  return options_.endpos && sink_.position() >= *options_.endpos;
}

bool WalReceiver::stop_requested() const {
  return options_.stop_requested && options_.stop_requested();
}

StreamResult WalReceiver::stream(TimelineId tli, Lsn start) {
  // Streaming only while in here; whichever way it is left.
  struct StreamingFlag {
    ArchiverStats* stats;
    explicit StreamingFlag(ArchiverStats* s) : stats(s) {}
    ~StreamingFlag() {
      if (stats) stats->streaming = false;
    }
  } streaming_flag(options_.stats);
  segments_published_ = sink_.segments_completed();
  try {
    const StreamResult result = stream_timelines(tli, start);
    publish(Lsn());
    return result;
  } catch (const ConnectionLost&) {
    // What arrived is valid WAL: keep it, so that the next attempt continues after it.
    if (sink_.is_open()) sink_.finish();
    throw;
  } catch (const WalRemoved&) {
    // The same: everything before the missing WAL stays archived (a gap starts after it).
    if (sink_.is_open()) sink_.finish();
    throw;
  }
}

void WalReceiver::store_history(TimelineId tli) {
  if (tli.value > 1) store_timeline_history(repo_, tli, source_.timeline_history(tli));
}

StreamResult WalReceiver::stream_timelines(TimelineId tli, Lsn start) {
  for (;;) {
    store_history(tli);
    if (options_.endpos && start >= *options_.endpos) {
      // Already archived: nothing to stream and nothing to rewrite.
      sink_.sync_archived(tli, start);
      return {StreamStop::endpos_reached, tli, start};
    }
    sink_.open(tli, start);
    log::info("streaming WAL from " + start.str() + " on timeline " + std::to_string(tli.value));
    source_.start_streaming(options_.slot, start, tli);
    reported_flush_ = Lsn();
    const CopyEnd end = copy_loop();
    if (end != CopyEnd::server_done) {
      end_stream_ourselves();
      sink_.finish();
      return {
          end == CopyEnd::endpos_reached ? StreamStop::endpos_reached : StreamStop::stop_requested,
          tli, sink_.durable_lsn()};
    }
    // The server ended the stream: at the end of the timeline it names the next one.
    const StreamEnd server_end = source_.finish_streaming();
    const Lsn stopped_at = sink_.position();
    sink_.finish();  // the old timeline's last segment stays .partial, durably
    if (!server_end.next_timeline) {
      throw ConnectionLost("the server ended the WAL stream on timeline " +
                               std::to_string(tli.value) + " at " + stopped_at.str(),
                           "the server may be shutting down; walvault reconnects by itself "
                           "unless --no-loop is given");
    }
    const TimelineId next = *server_end.next_timeline;
    if (next <= tli || server_end.next_timeline_start > stopped_at) {
      throw Error("the server ended timeline " + std::to_string(tli.value) + " at " +
                  stopped_at.str() + " but reported next timeline " + std::to_string(next.value) +
                  " to begin at " + server_end.next_timeline_start.str());
    }
    log::info("timeline " + std::to_string(tli.value) + " ended at " +
              server_end.next_timeline_start.str() + "; following timeline " +
              std::to_string(next.value));
    // The new timeline's first segment holds the old timeline's bytes before the switch:
    // stream it whole, as the server keeps it.
    const uint64_t seg = repo_.segment_size();
    tli = next;
    start = segment_start(segment_of(server_end.next_timeline_start, seg), seg);
  }
}

void WalReceiver::send_status(bool reply_requested) {
  source_.send_status(sink_.position(), sink_.durable_lsn(), Lsn(), reply_requested);
  reported_flush_ = sink_.durable_lsn();
  next_status_ = Clock::now() + std::chrono::milliseconds(options_.status_interval_ms);
}

void WalReceiver::flush_and_report() {
  if (sink_.position() > sink_.durable_lsn()) sink_.flush();
  send_status(false);
  publish(Lsn());
}

WalReceiver::CopyEnd WalReceiver::copy_loop() {
  send_status(false);  // tells the server at once how far the archive is durable
  for (;;) {
    if (endpos_reached()) return CopyEnd::endpos_reached;
    if (stop_requested()) return CopyEnd::stop_requested;
    const auto now = Clock::now();
    if (now >= next_status_) flush_and_report();
    const bool unflushed = sink_.position() > sink_.durable_lsn();
    int timeout_ms = 0;
    if (!(options_.synchronous && unflushed)) {
      const auto until_status =
          std::chrono::duration_cast<std::chrono::milliseconds>(next_status_ - Clock::now());
      timeout_ms = int(std::clamp<int64_t>(until_status.count(), 0, kPollIntervalMs));
    }
    const StreamMessage message = source_.next_message(timeout_ms);
    publish(message.wal_end);
    switch (message.kind) {
      case StreamMessage::Kind::xlog_data:
        handle_xlog_data(message);
        if (options_.synchronous && sink_.durable_lsn() > reported_flush_) send_status(false);
        break;
      case StreamMessage::Kind::keepalive:
        // The server asks when it needs an answer (wal_sender_timeout, or at shutdown, where
        // it waits until the flush position reaches what it sent and asks again at once):
        // make what arrived durable, so that the answer moves the flush position.
        if (message.reply_requested) flush_and_report();
        break;
      case StreamMessage::Kind::timeout:
        // The stream is idle: a synchronous standby makes everything durable and says so.
        if (options_.synchronous && unflushed) flush_and_report();
        break;
      case StreamMessage::Kind::copy_done:
        return CopyEnd::server_done;
    }
  }
}

void WalReceiver::handle_xlog_data(const StreamMessage& message) {
  sink_.write(message.data_start, message.data);
  bytes_received_ += message.data.size();
  if (options_.stats) {
    options_.stats->bytes_received += message.data.size();
    publish(message.wal_end);
  }
}

void WalReceiver::publish(Lsn server_wal_end) {
  ArchiverStats* stats = options_.stats;
  if (!stats) return;
  stats->streaming = true;
  stats->timeline = sink_.timeline().value;
  stats->received_lsn = sink_.position().value;
  stats->flushed_lsn = sink_.durable_lsn().value;
  if (server_wal_end.valid()) stats->server_wal_end = server_wal_end.value;
  const uint64_t completed = sink_.segments_completed();
  if (completed > segments_published_) {
    stats->segments_archived += completed - segments_published_;
    stats->last_segment_unix_us = now().unix_us;
    segments_published_ = completed;
  }
}

void WalReceiver::end_stream_ourselves() {
  // Durable first, then tell the server, then CopyDone and wait for the server's.
  flush_and_report();
  source_.end_copy();
  const auto deadline = Clock::now() + std::chrono::milliseconds(kEndOfStreamTimeoutMs);
  for (;;) {
    const StreamMessage m = source_.next_message(kPollIntervalMs);
    if (m.kind == StreamMessage::Kind::copy_done) break;
    if (Clock::now() >= deadline) {
      throw ConnectionLost("the server did not end the WAL stream after ours ended");
    }
  }
  source_.finish_streaming();
}

}  // namespace walvault
