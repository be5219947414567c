#include "core/lsn.h"

#include <charconv>
#include <cstdio>

namespace walvault {
namespace {

template <typename T>
std::optional<T> parse_hex(std::string_view text, size_t max_digits) {
  if (text.empty() || text.size() > max_digits) return std::nullopt;
  T out{};
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out, 16);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return out;
}

bool all_upper_hex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'))) return false;
  }
  return true;
}

uint64_t segments_per_xlog_id(uint64_t segment_size_bytes) {
  return 0x100000000ULL / segment_size_bytes;
}

}  // namespace

std::optional<Lsn> Lsn::parse(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto hi = parse_hex<uint32_t>(text.substr(0, slash), 8);
  auto lo = parse_hex<uint32_t>(text.substr(slash + 1), 8);
  if (!hi || !lo) return std::nullopt;
  return Lsn((uint64_t(*hi) << 32) | *lo);
}

std::string Lsn::str() const {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%X/%X", unsigned(value >> 32), unsigned(value & 0xffffffffu));
  return buf;
}

std::string TimelineId::hex() const {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08X", value);
  return buf;
}

bool is_valid_segment_size(uint64_t s) {
  return s >= (1u << 20) && s <= (1u << 30) && (s & (s - 1)) == 0;
}

SegmentNo segment_of(Lsn lsn, uint64_t segment_size_bytes) {
  return SegmentNo(lsn.value / segment_size_bytes);
}

Lsn segment_start(SegmentNo segno, uint64_t segment_size_bytes) {
  return Lsn(segno.value * segment_size_bytes);
}

uint64_t segment_offset(Lsn lsn, uint64_t segment_size_bytes) {
  return lsn.value % segment_size_bytes;
}

std::string wal_file_name(TimelineId tli, SegmentNo segno, uint64_t segment_size_bytes) {
  const uint64_t per_id = segments_per_xlog_id(segment_size_bytes);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%08X%08X%08X", tli.value, unsigned(segno.value / per_id),
                unsigned(segno.value % per_id));
  return buf;
}

std::optional<WalFileName> parse_wal_file_name(std::string_view name, uint64_t segment_size_bytes) {
  if (name.size() != 24 || !all_upper_hex(name)) return std::nullopt;
  auto tli = parse_hex<uint32_t>(name.substr(0, 8), 8);
  auto log = parse_hex<uint32_t>(name.substr(8, 8), 8);
  auto seg = parse_hex<uint32_t>(name.substr(16, 8), 8);
  if (!tli || !log || !seg || *tli == 0) return std::nullopt;
  const uint64_t per_id = segments_per_xlog_id(segment_size_bytes);
  if (*seg >= per_id) return std::nullopt;
  return WalFileName{TimelineId(*tli), SegmentNo(uint64_t(*log) * per_id + *seg)};
}

std::string history_file_name(TimelineId tli) {
  return tli.hex() + ".history";
}

std::optional<TimelineId> parse_history_file_name(std::string_view name) {
  constexpr std::string_view suffix = ".history";
  if (name.size() != 8 + suffix.size() || !name.ends_with(suffix)) return std::nullopt;
  if (!all_upper_hex(name.substr(0, 8))) return std::nullopt;
  auto tli = parse_hex<uint32_t>(name.substr(0, 8), 8);
  if (!tli || *tli == 0) return std::nullopt;
  return TimelineId(*tli);
}

std::optional<uint32_t> parse_u32(std::string_view text) {
  int base = 10;
  if (text.starts_with("0x") || text.starts_with("0X")) {
    text.remove_prefix(2);
    base = 16;
  }
  if (text.empty()) return std::nullopt;
  uint32_t out = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out, base);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return out;
}

}  // namespace walvault
