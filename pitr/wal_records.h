#pragma once
// Reads PostgreSQL WAL records out of the bytes of WAL segments, the way xlogreader.c walks
// them, and reports the records point-in-time recovery stops at: transaction commits and
// aborts (prepared ones too) with their timestamps, and named restore points.
//
// Layout (src/include/access/xlog_internal.h, xlogrecord.h, xact.h):
//  - every page (XLOG_BLCKSZ, from the segment's long header) starts with a page header: 40
//    bytes (long) at a segment start, 24 (short) elsewhere; xlp_pageaddr is the page's LSN;
//    XLP_FIRST_IS_CONTRECORD + xlp_rem_len say how much of a record from the previous page
//    continues here;
//  - records begin MAXALIGNed (8) and may cross pages and segments, header included;
//  - a record is a 24-byte XLogRecord header, block reference headers, an optional main
//    data header, then block data, then the main data: the record's last N bytes;
//  - every record carries a CRC-32C of its data and header, and xl_prev, the LSN of the
//    record before it;
//  - after an XLOG_SWITCH record the rest of the segment is padding.
//
// The scanner is pure and streaming: it holds one record at a time, whatever the size of the
// chunks it is fed.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/lsn.h"
#include "core/timestamp.h"

namespace walvault {

enum class WalEventKind : uint8_t {
  commit,
  abort,
  commit_prepared,
  abort_prepared,
  restore_point,
};
std::string_view to_string(WalEventKind kind);  // "commit", ..., "restore_point"

struct WalEvent {
  WalEventKind kind = WalEventKind::commit;
  Lsn lsn;           // where the record begins (pg_waldump's "lsn")
  Lsn end_lsn;       // the first byte after the record (xlogreader's EndRecPtr)
  uint32_t xid = 0;  // the transaction; for *_prepared the prepared transaction's xid
  Timestamp time;    // xact_time, or rp_time of a restore point
  std::string name;  // restore point name
  bool is_xact() const { return kind != WalEventKind::restore_point; }
  friend bool operator==(const WalEvent&, const WalEvent&) = default;
};

enum class WalScanStop {
  none,        // still reading (or the input simply ran out)
  end_of_wal,  // zeros where a page or record should be: WAL ends here
  invalid,     // a page header, record length, checksum or back link is wrong
};

// What the pages of one WAL file must say besides their own address, as PostgreSQL's
// XLogReaderValidatePageHeader checks them: the database system in every segment's long
// header, and timelines.
struct WalPageExpectations {
  uint64_t system_identifier = 0;  // 0: not checked
  // The file's timeline (0: not checked). Its pages carry this timeline or an ancestor (a
  // segment that begins a timeline holds the parent's WAL up to the switch point), never a
  // later one, and the timeline never goes back from one page to the next.
  TimelineId timeline;
  std::vector<TimelineId> ancestors;  // when known: the only earlier timelines allowed
};

class WalRecordScanner {
 public:
  using EventSink = std::function<void(const WalEvent&)>;

  // pg_major selects the few layout details that changed between releases (13 and later).
  WalRecordScanner(uint64_t segment_size_bytes, int pg_major, EventSink sink);

  // Checks every page header from now on against e (see WalPageExpectations).
  void expect(WalPageExpectations e) { expect_ = std::move(e); }
  // The system identifier in the last segment long header seen (0 before one).
  uint64_t seen_system_identifier() const { return seen_sysid_; }

  // Feeds WAL bytes that begin at `at`. Each call continues where the previous one ended;
  // a call at any other position must be at a segment start and restarts the scanner there
  // (a record continued from the unseen previous segment is skipped).
  void feed(Lsn at, std::span<const std::byte> bytes);

  Lsn position() const { return pos_; }        // the next byte expected
  Lsn end_of_records() const { return end_; }  // end of the last whole, valid record
  Lsn last_record_lsn() const { return prev_lsn_; }
  uint64_t records() const { return records_; }
  WalScanStop stop() const { return stop_; }
  const std::string& problem() const { return problem_; }  // why it stopped
  uint64_t page_size() const { return page_size_; }

 private:
  enum class Mode { between_records, in_record, skip_continuation, skip_to_segment_end, stopped };

  void restart(Lsn at);
  void advance(size_t n) { pos_ = pos_ + n; }
  void on_page_header(Lsn page_lsn, size_t header_bytes);
  void on_record_complete();
  void interpret(uint8_t rmid, uint8_t info, uint32_t xid);
  void halt(WalScanStop why, std::string problem);

  bool check_expectations(Lsn page_lsn, size_t header_bytes);

  uint64_t segment_size_;
  int pg_major_;
  WalPageExpectations expect_;
  uint32_t last_page_tli_ = 0;
  uint64_t seen_sysid_ = 0;
  EventSink sink_;
  uint64_t page_size_ = 8192;  // XLOG_BLCKSZ, read from each long page header

  bool started_ = false;
  bool fresh_ = true;  // no page seen since the restart: a continuation cannot be read
  Mode mode_ = Mode::between_records;
  Lsn pos_;
  uint16_t magic_ = 0;

  std::byte header_[40];
  size_t header_need_ = 0;  // bytes of the page header at the current page, 0 when done
  size_t header_have_ = 0;

  std::vector<std::byte> record_;
  uint32_t record_len_ = 0;  // xl_tot_len once its 4 bytes are in
  Lsn record_lsn_;
  uint64_t skip_remaining_ = 0;

  Lsn prev_lsn_;  // start of the last valid record (its xl_prev check for the next one)
  Lsn end_;
  uint64_t records_ = 0;
  WalScanStop stop_ = WalScanStop::none;
  std::string problem_;
};

// Scans a run of consecutive segments (or a prefix of the last one) given as decoded bytes;
// a convenience over WalRecordScanner for tests and small jobs.
std::vector<WalEvent> scan_wal_events(Lsn start, std::span<const std::byte> bytes,
                                      uint64_t segment_size_bytes, int pg_major);

}  // namespace walvault
