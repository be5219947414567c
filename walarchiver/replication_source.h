#pragma once
// What the receive loop needs from a server streaming physical WAL. The libpq implementation
// is ReplicationConnection (replication_connection.h); unit tests use a scripted fake.
// Nothing outside walarchiver/ parses replication messages.

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "core/error.h"
#include "core/lsn.h"

namespace walvault {

// The connection to the server failed or was lost. The archiver reconnects after this one
// (unless --no-loop); every other Error ends the command.
class ConnectionLost : public Error {
 public:
  using Error::Error;
};

// The server no longer has WAL that was asked for ("requested WAL segment ... has already
// been removed"): streaming from there cannot succeed, however often it is retried.
class WalRemoved : public Error {
 public:
  WalRemoved(std::string message, std::string segment)
      : Error(std::move(message)), segment_(std::move(segment)) {}
  const std::string& segment() const { return segment_; }

 private:
  std::string segment_;
};

// Throws WalRemoved when a server message says that requested WAL has been removed.
void throw_if_wal_removed(const std::string& server_message);

struct SystemInfo {
  std::string system_identifier;  // decimal, as IDENTIFY_SYSTEM prints it
  TimelineId timeline;
  Lsn xlogpos;
};

struct ReplicationSlotInfo {
  std::string slot_type;  // "physical" or "logical"
  Lsn restart_lsn;        // invalid (0) when the slot has not reserved WAL yet
  TimelineId restart_tli;
};

// One message of the COPY BOTH stream, or the lack of one.
struct StreamMessage {
  enum class Kind {
    xlog_data,  // 'w': data starts at data_start
    keepalive,  // 'k': the server's WAL end; reply_requested asks for a status update now
    timeout,    // nothing arrived within the wait
    copy_done,  // the server ended the stream (end of timeline, or our CopyDone answered)
  };
  Kind kind = Kind::timeout;
  Lsn data_start;              // xlog_data
  Lsn wal_end;                 // xlog_data, keepalive
  int64_t server_time_us = 0;  // microseconds since 2000-01-01 (PostgreSQL epoch)
  bool reply_requested = false;
  std::span<const std::byte> data;  // xlog_data; valid until the next call on the source
};

// Parses one CopyData message of the stream: 'w' (XLogData) or 'k' (keepalive). The
// message's data points into message. Throws Error when it is truncated or of another type.
StreamMessage parse_stream_message(std::span<const char> message);

// What the server said after the stream ended.
struct StreamEnd {
  // Set when the server ended the timeline being streamed: the next timeline and the LSN
  // where it starts (the old timeline's switch point).
  std::optional<TimelineId> next_timeline;
  Lsn next_timeline_start;
};

class ReplicationSource {
 public:
  virtual ~ReplicationSource() = default;

  virtual SystemInfo identify_system() = 0;
  virtual std::string timeline_history(TimelineId tli) = 0;  // the .history file content
  virtual std::optional<ReplicationSlotInfo> read_replication_slot(const std::string& slot) = 0;
  virtual void create_physical_slot(const std::string& slot) = 0;  // RESERVE_WAL

  // START_REPLICATION [SLOT slot] PHYSICAL start TIMELINE tli; the stream is then open.
  virtual void start_streaming(const std::string& slot, Lsn start, TimelineId tli) = 0;
  // Waits at most timeout_ms for the next message.
  virtual StreamMessage next_message(int timeout_ms) = 0;
  // Standby status update ('r'). flush must be durable in the archive.
  virtual void send_status(Lsn write, Lsn flush, Lsn apply, bool reply_requested) = 0;
  // Sends CopyDone: the client ends the stream (e.g. --endpos reached).
  virtual void end_copy() = 0;
  // After copy_done: reads the server's closing results.
  virtual StreamEnd finish_streaming() = 0;
};

}  // namespace walvault
