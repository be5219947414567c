#pragma once
// CRC-32C (Castagnoli), the checksum PostgreSQL puts in every WAL record (pg_crc32c).

#include <cstddef>
#include <cstdint>
#include <span>

namespace walvault {

// Continues a running CRC. Start with crc32c_init(), finish with crc32c_finish().
uint32_t crc32c_update(uint32_t crc, std::span<const std::byte> data);
constexpr uint32_t crc32c_init() { return 0xFFFFFFFFu; }
constexpr uint32_t crc32c_finish(uint32_t crc) { return crc ^ 0xFFFFFFFFu; }

}  // namespace walvault
