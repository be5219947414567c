#pragma once
// Strong types for WAL positions and the file-name arithmetic PostgreSQL uses for them.
// Segment size always comes from the server (initdb --wal-segsize), never a constant.

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace walvault {

// A WAL location ("log sequence number"), printed as PostgreSQL does: "0/5D000C90".
struct Lsn {
  uint64_t value = 0;

  constexpr Lsn() = default;
  constexpr explicit Lsn(uint64_t v) : value(v) {}
  static std::optional<Lsn> parse(std::string_view text);
  std::string str() const;
  constexpr bool valid() const { return value != 0; }
  friend constexpr auto operator<=>(Lsn, Lsn) = default;
  constexpr Lsn operator+(uint64_t bytes) const { return Lsn(value + bytes); }
  constexpr uint64_t operator-(Lsn other) const { return value - other.value; }
};

struct TimelineId {
  uint32_t value = 0;
  constexpr TimelineId() = default;
  constexpr explicit TimelineId(uint32_t v) : value(v) {}
  friend constexpr auto operator<=>(TimelineId, TimelineId) = default;
  std::string hex() const;  // "00000001"
};

struct SegmentNo {
  uint64_t value = 0;
  constexpr SegmentNo() = default;
  constexpr explicit SegmentNo(uint64_t v) : value(v) {}
  friend constexpr auto operator<=>(SegmentNo, SegmentNo) = default;
  constexpr SegmentNo next() const { return SegmentNo(value + 1); }
};

// Valid PostgreSQL segment sizes: powers of two from 1 MiB to 1 GiB.
bool is_valid_segment_size(uint64_t segment_size_bytes);

SegmentNo segment_of(Lsn lsn, uint64_t segment_size_bytes);
Lsn segment_start(SegmentNo segno, uint64_t segment_size_bytes);
uint64_t segment_offset(Lsn lsn, uint64_t segment_size_bytes);

// "000000010000000000000003": timeline, then the segment number split into
// "log id" and "segment within log id", which depends on the segment size.
std::string wal_file_name(TimelineId tli, SegmentNo segno, uint64_t segment_size_bytes);

struct WalFileName {
  TimelineId timeline;
  SegmentNo segno;
};
std::optional<WalFileName> parse_wal_file_name(std::string_view name, uint64_t segment_size_bytes);

std::string history_file_name(TimelineId tli);  // "00000002.history"
std::optional<TimelineId> parse_history_file_name(std::string_view name);

// Parses a decimal or hexadecimal ("0x...") unsigned 32-bit number, e.g. a timeline.
std::optional<uint32_t> parse_u32(std::string_view text);

}  // namespace walvault
