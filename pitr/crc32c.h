#pragma once
// CRC-32C (Castagnoli), the checksum PostgreSQL puts in every WAL record (pg_crc32c).

#include <cstddef>
#include <cstdint>
#include <span>

namespace walvault {

// Continues a running CRC. Start with crc32c_init(), finish with crc32c_finish().
// Uses the CPU's crc32 instruction where there is one (x86-64 with SSE 4.2).
uint32_t crc32c_update(uint32_t crc, std::span<const std::byte> data);
// The table-driven version, for any CPU (and to test the other against).
uint32_t crc32c_update_portable(uint32_t crc, std::span<const std::byte> data);
constexpr uint32_t crc32c_init() {
  return 0xFFFFFFFFu;
}
constexpr uint32_t crc32c_finish(uint32_t crc) {
  return crc ^ 0xFFFFFFFFu;
}

}  // namespace walvault
