#include "pitr/wal_records.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/pg_versions.h"
#include "pitr/crc32c.h"

namespace walvault {
namespace {

// xlog_internal.h
constexpr uint16_t kXlpFirstIsContrecord = 0x0001;
constexpr uint16_t kXlpLongHeader = 0x0002;
constexpr uint16_t kXlpFirstIsOverwriteContrecord = 0x0008;
constexpr size_t kShortPageHeaderBytes = 24;  // MAXALIGN(sizeof(XLogPageHeaderData))
constexpr size_t kLongPageHeaderBytes = 40;   // MAXALIGN(sizeof(XLogLongPageHeaderData))
constexpr uint64_t kMaxAlign = 8;

// xlogrecord.h
constexpr size_t kRecordHeaderBytes = 24;  // SizeOfXLogRecord
constexpr size_t kCrcOffset = 20;          // offsetof(XLogRecord, xl_crc)
constexpr uint32_t kMaxRecordBytes = 1u << 30;
constexpr uint8_t kXlrInfoMask = 0x0F;
constexpr uint8_t kBlockIdDataShort = 255;
constexpr uint8_t kBlockIdDataLong = 254;
constexpr uint8_t kBlockIdOrigin = 253;
constexpr uint8_t kBlockIdToplevelXid = 252;
constexpr uint8_t kMaxBlockId = 32;
constexpr uint8_t kBkpBlockHasImage = 0x10;
constexpr uint8_t kBkpBlockSameRel = 0x80;
constexpr uint8_t kBkpImageHasHole = 0x01;
constexpr size_t kRelFileNodeBytes = 12;

// rmgrlist.h, pg_control.h, xact.h
constexpr uint8_t kRmXlogId = 0;
constexpr uint8_t kRmXactId = 1;
constexpr uint8_t kXlogSwitch = 0x40;
constexpr uint8_t kXlogRestorePoint = 0x70;
constexpr uint8_t kXactOpMask = 0x70;
constexpr uint8_t kXactCommit = 0x00;
constexpr uint8_t kXactAbort = 0x20;
constexpr uint8_t kXactCommitPrepared = 0x30;
constexpr uint8_t kXactAbortPrepared = 0x40;
constexpr uint8_t kXactHasInfo = 0x80;
constexpr uint32_t kXinfoHasDbinfo = 1u << 0;
constexpr uint32_t kXinfoHasSubxacts = 1u << 1;
constexpr uint32_t kXinfoHasRelfilenodes = 1u << 2;
constexpr uint32_t kXinfoHasInvals = 1u << 3;
constexpr uint32_t kXinfoHasTwophase = 1u << 4;
constexpr uint32_t kXinfoHasDroppedStats = 1u << 8;  // PostgreSQL 15 and later
constexpr size_t kInvalMessageBytes = 16;            // sizeof(SharedInvalidationMessage)
constexpr size_t kRestorePointNameBytes = 64;        // MAXFNAMELEN

template <typename T>
T load(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Bounds-checked little reader over a record's bytes.
class Reader {
 public:
  explicit Reader(std::span<const std::byte> data, size_t off = 0) : data_(data), off_(off) {}
  template <typename T>
  bool read(T& out) {
    if (off_ > data_.size() || data_.size() - off_ < sizeof(T)) return false;
    out = load<T>(data_.data() + off_);
    off_ += sizeof(T);
    return true;
  }
  bool skip(uint64_t n) {
    if (off_ > data_.size() || data_.size() - off_ < n) return false;
    off_ += size_t(n);
    return true;
  }
  size_t offset() const { return off_; }

 private:
  std::span<const std::byte> data_;
  size_t off_;
};

// The main data of a record: its last main_data_len bytes, found by walking the headers as
// DecodeXLogRecord does (headers end where the declared data lengths account for the rest).
bool find_main_data(std::span<const std::byte> record, int pg_major,
                    std::span<const std::byte>& main) {
  Reader r(record, kRecordHeaderBytes);
  uint64_t data_total = 0;
  uint32_t main_len = 0;
  while (record.size() - r.offset() > data_total) {
    uint8_t id;
    if (!r.read(id)) return false;
    if (id == kBlockIdDataShort) {
      uint8_t len;
      if (!r.read(len)) return false;
      main_len = len;
      data_total += len;
    } else if (id == kBlockIdDataLong) {
      if (!r.read(main_len)) return false;
      data_total += main_len;
    } else if (id == kBlockIdOrigin) {
      if (!r.skip(2)) return false;
    } else if (id == kBlockIdToplevelXid) {
      if (!r.skip(4)) return false;
    } else if (id <= kMaxBlockId) {
      uint8_t fork_flags;
      uint16_t data_len;
      if (!r.read(fork_flags) || !r.read(data_len)) return false;
      data_total += data_len;
      if (fork_flags & kBkpBlockHasImage) {
        uint16_t image_len, hole_offset;
        uint8_t bimg_info;
        if (!r.read(image_len) || !r.read(hole_offset) || !r.read(bimg_info)) return false;
        data_total += image_len;
        // BKPIMAGE_COMPRESSED(): one flag before 15, one per method since.
        const bool compressed = pg_major >= 15 ? (bimg_info & 0x1C) != 0 : (bimg_info & 0x02) != 0;
        if ((bimg_info & kBkpImageHasHole) && compressed && !r.skip(2)) return false;
      }
      if (!(fork_flags & kBkpBlockSameRel) && !r.skip(kRelFileNodeBytes)) return false;
      if (!r.skip(4)) return false;  // block number
    } else {
      return false;
    }
  }
  if (record.size() - r.offset() != data_total) return false;
  main = record.subspan(record.size() - main_len, main_len);
  return true;
}

// The prepared transaction's xid in a COMMIT/ABORT PREPARED record (ParseCommitRecord,
// ParseAbortRecord): the fields before xl_xact_twophase, in order.
bool twophase_xid(std::span<const std::byte> main, uint8_t info, bool commit, int pg_major,
                  uint32_t& xid) {
  Reader r(main, 8);  // after xact_time
  uint32_t xinfo = 0;
  if ((info & kXactHasInfo) && !r.read(xinfo)) return false;
  auto skip_array = [&](size_t item_bytes) {
    int32_t n;
    return r.read(n) && n >= 0 && r.skip(uint64_t(n) * item_bytes);
  };
  if ((xinfo & kXinfoHasDbinfo) && !r.skip(8)) return false;
  if ((xinfo & kXinfoHasSubxacts) && !skip_array(4)) return false;
  if ((xinfo & kXinfoHasRelfilenodes) && !skip_array(kRelFileNodeBytes)) return false;
  if (pg_major >= 15 && (xinfo & kXinfoHasDroppedStats) && !skip_array(pg_major >= 18 ? 16 : 12)) {
    return false;
  }
  if (commit && (xinfo & kXinfoHasInvals) && !skip_array(kInvalMessageBytes)) return false;
  if (!(xinfo & kXinfoHasTwophase)) return false;
  return r.read(xid);
}

}  // namespace

std::string_view to_string(WalEventKind kind) {
  switch (kind) {
    case WalEventKind::commit:
      return "commit";
    case WalEventKind::abort:
      return "abort";
    case WalEventKind::commit_prepared:
      return "commit_prepared";
    case WalEventKind::abort_prepared:
      return "abort_prepared";
    case WalEventKind::restore_point:
      return "restore_point";
  }
  return "unknown";
}

WalRecordScanner::WalRecordScanner(uint64_t segment_size_bytes, int pg_major, EventSink sink)
    : segment_size_(segment_size_bytes), pg_major_(pg_major), sink_(std::move(sink)) {}

void WalRecordScanner::restart(Lsn at) {
  started_ = true;
  fresh_ = true;
  mode_ = Mode::between_records;
  pos_ = at;
  magic_ = 0;
  last_page_tli_ = 0;
  header_need_ = 0;
  header_have_ = 0;
  record_.clear();
  record_len_ = 0;
  skip_remaining_ = 0;
  prev_lsn_ = Lsn();
  end_ = at;
  stop_ = WalScanStop::none;
  problem_.clear();
}

void WalRecordScanner::halt(WalScanStop why, std::string problem) {
  mode_ = Mode::stopped;
  stop_ = why;
  problem_ = std::move(problem);
}

void WalRecordScanner::feed(Lsn at, std::span<const std::byte> bytes) {
  if (!started_ || at != pos_) {
    if (segment_offset(at, segment_size_) != 0) {
      throw Error("WAL scan: bytes at " + at.str() + " do not continue " + pos_.str() +
                  " and do not begin a segment");
    }
    restart(at);
  }
  size_t i = 0;
  while (i < bytes.size()) {
    const size_t left = bytes.size() - i;
    if (mode_ == Mode::stopped) {
      advance(left);
      return;
    }
    if (mode_ == Mode::skip_to_segment_end) {
      const uint64_t to_end = segment_size_ - segment_offset(pos_, segment_size_);
      const size_t n = size_t(std::min<uint64_t>(to_end, left));
      advance(n);
      i += n;
      if (segment_offset(pos_, segment_size_) == 0) mode_ = Mode::between_records;
      continue;
    }
    if (header_need_ == 0 && pos_.value % page_size_ == 0) {
      header_need_ =
          segment_offset(pos_, segment_size_) == 0 ? kLongPageHeaderBytes : kShortPageHeaderBytes;
      header_have_ = 0;
    }
    if (header_need_ != 0) {
      const size_t n = std::min(header_need_ - header_have_, left);
      std::memcpy(header_ + header_have_, bytes.data() + i, n);
      header_have_ += n;
      advance(n);
      i += n;
      if (header_have_ == header_need_) {
        const size_t hdr = header_need_;
        header_need_ = 0;
        on_page_header(Lsn(pos_.value - hdr), hdr);
      }
      continue;
    }
    const uint64_t page_left = page_size_ - pos_.value % page_size_;
    const size_t avail = size_t(std::min<uint64_t>(page_left, left));
    switch (mode_) {
      case Mode::skip_continuation: {
        const size_t n = size_t(std::min<uint64_t>(skip_remaining_, avail));
        skip_remaining_ -= n;
        advance(n);
        i += n;
        if (skip_remaining_ == 0) mode_ = Mode::between_records;
        break;
      }
      case Mode::between_records: {
        const uint64_t misalign = pos_.value % kMaxAlign;
        if (misalign != 0) {
          const size_t n = size_t(std::min<uint64_t>(kMaxAlign - misalign, avail));
          advance(n);
          i += n;
          break;
        }
        record_lsn_ = pos_;
        record_.clear();
        record_len_ = 0;
        mode_ = Mode::in_record;
        break;
      }
      case Mode::in_record: {
        const size_t want = record_len_ == 0 ? 4 - record_.size() : record_len_ - record_.size();
        const size_t n = std::min(want, avail);
        record_.insert(record_.end(), bytes.begin() + long(i), bytes.begin() + long(i + n));
        advance(n);
        i += n;
        if (record_len_ == 0 && record_.size() == 4) {
          const uint32_t tot = load<uint32_t>(record_.data());
          if (tot == 0) {
            halt(WalScanStop::end_of_wal, "no record at " + record_lsn_.str() + " (zeros)");
            break;
          }
          if (tot < kRecordHeaderBytes || tot > kMaxRecordBytes) {
            halt(WalScanStop::invalid,
                 "invalid record length " + std::to_string(tot) + " at " + record_lsn_.str());
            break;
          }
          record_len_ = tot;
          record_.reserve(std::min<size_t>(tot, 1 << 20));
        }
        if (record_len_ != 0 && record_.size() == record_len_) on_record_complete();
        break;
      }
      case Mode::skip_to_segment_end:
      case Mode::stopped:
        break;
    }
  }
}

void WalRecordScanner::on_page_header(Lsn page_lsn, size_t header_bytes) {
  const uint16_t magic = load<uint16_t>(header_);
  const uint16_t info = load<uint16_t>(header_ + 2);
  const uint64_t pageaddr = load<uint64_t>(header_ + 8);
  const uint32_t rem_len = load<uint32_t>(header_ + 16);
  const bool was_fresh = fresh_;
  fresh_ = false;
  if (pageaddr != page_lsn.value || magic == 0) {
    bool zeros =
        std::all_of(header_, header_ + header_bytes, [](std::byte b) { return b == std::byte{0}; });
    if (zeros) {
      halt(WalScanStop::end_of_wal, "no page at " + page_lsn.str() + " (zeros)");
    } else {
      halt(WalScanStop::invalid,
           "page at " + page_lsn.str() + " has the address of " + Lsn(pageaddr).str());
    }
    return;
  }
  if (magic_ != 0 && magic != magic_) {
    halt(WalScanStop::invalid, "page at " + page_lsn.str() + " has another WAL format (magic)");
    return;
  }
  // The record layouts below are the ones of pg_major: WAL of another major (a foreign file
  // in the repository) is not read as if it were, just as PostgreSQL's own reader refuses a
  // page whose magic is not its XLOG_PAGE_MAGIC.
  if (auto expected = wal_page_magic(pg_major_); expected && magic != *expected) {
    const auto writer = major_of_wal_page_magic(magic);
    halt(WalScanStop::invalid,
         "page at " + page_lsn.str() + " holds WAL of " +
             (writer ? "PostgreSQL " + std::to_string(*writer) : std::string("an unknown format")) +
             ", not of PostgreSQL " + std::to_string(pg_major_));
    return;
  }
  magic_ = magic;
  if (header_bytes == kLongPageHeaderBytes) {
    const uint32_t seg_size = load<uint32_t>(header_ + 32);
    const uint32_t blcksz = load<uint32_t>(header_ + 36);
    if (!(info & kXlpLongHeader) || seg_size != segment_size_ || blcksz < 1024 || blcksz > 65536 ||
        (blcksz & (blcksz - 1)) != 0) {
      halt(WalScanStop::invalid, "segment header at " + page_lsn.str() + " is invalid");
      return;
    }
    page_size_ = blcksz;
    seen_sysid_ = load<uint64_t>(header_ + 24);
  }
  if (!check_expectations(page_lsn, header_bytes)) return;
  const bool continues = info & kXlpFirstIsContrecord;
  switch (mode_) {
    case Mode::in_record:
      if (!continues) {
        if (info & kXlpFirstIsOverwriteContrecord) {
          // The server abandoned the record (its rest was lost in a crash) and went on.
          mode_ = Mode::between_records;
          record_.clear();
          return;
        }
        halt(WalScanStop::invalid,
             "record at " + record_lsn_.str() + " is not continued on page " + page_lsn.str());
        return;
      }
      if (record_len_ == 0 || rem_len != record_len_ - record_.size()) {
        halt(WalScanStop::invalid,
             "page " + page_lsn.str() + " continues a record with the wrong length");
      }
      return;
    case Mode::skip_continuation:
      if (!continues) {
        halt(WalScanStop::invalid, "page " + page_lsn.str() + " does not continue a record");
        return;
      }
      skip_remaining_ = rem_len;
      return;
    case Mode::between_records:
      if (continues) {
        if (!was_fresh) {
          halt(WalScanStop::invalid, "page " + page_lsn.str() + " continues a record that ended");
          return;
        }
        // The record began before the first byte we were given: skip its rest.
        skip_remaining_ = rem_len;
        mode_ = rem_len == 0 ? Mode::between_records : Mode::skip_continuation;
      }
      return;
    case Mode::skip_to_segment_end:
    case Mode::stopped:
      return;
  }
}

bool WalRecordScanner::check_expectations(Lsn page_lsn, size_t header_bytes) {
  if (header_bytes == kLongPageHeaderBytes && expect_.system_identifier != 0 &&
      seen_sysid_ != expect_.system_identifier) {
    halt(WalScanStop::invalid, "segment at " + page_lsn.str() + " belongs to database system " +
                                   std::to_string(seen_sysid_) + ", not " +
                                   std::to_string(expect_.system_identifier));
    return false;
  }
  if (expect_.timeline.value == 0) return true;
  const uint32_t tli = load<uint32_t>(header_ + 4);
  const bool ancestor =
      tli < expect_.timeline.value && tli != 0 &&
      (expect_.ancestors.empty() || std::find(expect_.ancestors.begin(), expect_.ancestors.end(),
                                              TimelineId(tli)) != expect_.ancestors.end());
  if (tli != expect_.timeline.value && !ancestor) {
    halt(WalScanStop::invalid, "page at " + page_lsn.str() + " carries timeline " +
                                   std::to_string(tli) + ", not timeline " +
                                   std::to_string(expect_.timeline.value) +
                                   " or one of its ancestors");
    return false;
  }
  if (tli < last_page_tli_) {
    halt(WalScanStop::invalid, "page at " + page_lsn.str() + " goes back from timeline " +
                                   std::to_string(last_page_tli_) + " to " + std::to_string(tli));
    return false;
  }
  last_page_tli_ = tli;
  return true;
}

void WalRecordScanner::on_record_complete() {
  const std::byte* r = record_.data();
  const uint32_t xid = load<uint32_t>(r + 4);
  const uint64_t prev = load<uint64_t>(r + 8);
  const uint8_t info = load<uint8_t>(r + 16);
  const uint8_t rmid = load<uint8_t>(r + 17);
  const uint32_t crc = load<uint32_t>(r + kCrcOffset);
  uint32_t c = crc32c_init();
  c = crc32c_update(c, std::span(record_).subspan(kRecordHeaderBytes));
  c = crc32c_update(c, std::span(record_).first(kCrcOffset));
  if (crc32c_finish(c) != crc) {
    halt(WalScanStop::invalid, "record at " + record_lsn_.str() + " has an incorrect checksum");
    return;
  }
  if (prev_lsn_.valid() && prev != prev_lsn_.value) {
    halt(WalScanStop::invalid, "record at " + record_lsn_.str() + " links back to " +
                                   Lsn(prev).str() + ", not to " + prev_lsn_.str());
    return;
  }
  prev_lsn_ = record_lsn_;
  end_ = pos_;
  ++records_;
  mode_ = Mode::between_records;
  interpret(rmid, info, xid);
  if (rmid == kRmXlogId && (info & ~kXlrInfoMask) == kXlogSwitch) {
    // The rest of the segment is padding; WAL continues at the next segment.
    if (segment_offset(pos_, segment_size_) != 0) {
      mode_ = Mode::skip_to_segment_end;
      end_ = Lsn(pos_.value - segment_offset(pos_, segment_size_) + segment_size_);
    }
  }
  record_.clear();
  record_len_ = 0;
}

void WalRecordScanner::interpret(uint8_t rmid, uint8_t info, uint32_t xid) {
  if (!sink_) return;
  if (rmid == kRmXlogId && (info & ~kXlrInfoMask) == kXlogRestorePoint) {
    std::span<const std::byte> main;
    if (!find_main_data(record_, pg_major_, main) || main.size() < 8) return;
    WalEvent e;
    e.kind = WalEventKind::restore_point;
    e.lsn = record_lsn_;
    e.end_lsn = pos_;
    e.time = from_pg_timestamp(load<int64_t>(main.data()));
    const char* name = reinterpret_cast<const char*>(main.data() + 8);
    e.name.assign(name, strnlen(name, std::min(kRestorePointNameBytes, main.size() - 8)));
    sink_(e);
    return;
  }
  if (rmid != kRmXactId) return;
  const uint8_t op = info & kXactOpMask;
  WalEvent e;
  switch (op) {
    case kXactCommit:
      e.kind = WalEventKind::commit;
      break;
    case kXactAbort:
      e.kind = WalEventKind::abort;
      break;
    case kXactCommitPrepared:
      e.kind = WalEventKind::commit_prepared;
      break;
    case kXactAbortPrepared:
      e.kind = WalEventKind::abort_prepared;
      break;
    default:
      return;
  }
  std::span<const std::byte> main;
  if (!find_main_data(record_, pg_major_, main) || main.size() < 8) return;
  e.lsn = record_lsn_;
  e.end_lsn = pos_;
  e.time = from_pg_timestamp(load<int64_t>(main.data()));
  e.xid = xid;
  if (op == kXactCommitPrepared || op == kXactAbortPrepared) {
    uint32_t prepared = 0;
    if (twophase_xid(main, info, op == kXactCommitPrepared, pg_major_, prepared)) e.xid = prepared;
  }
  sink_(e);
}

std::vector<WalEvent> scan_wal_events(Lsn start, std::span<const std::byte> bytes,
                                      uint64_t segment_size_bytes, int pg_major) {
  std::vector<WalEvent> out;
  WalRecordScanner scanner(segment_size_bytes, pg_major,
                           [&](const WalEvent& e) { out.push_back(e); });
  scanner.feed(start, bytes);
  return out;
}

}  // namespace walvault
