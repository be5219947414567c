#pragma once
// The PostgreSQL server majors walvault supports, and the per-major facts the rest of the
// code branches on. One place, so that adding a major is one reviewed change (see
// docs/install.md, "Server versions", for what differs between them and how it is handled).

#include <cstdint>
#include <optional>
#include <string>

namespace walvault {

constexpr int kMinServerMajor = 14;
constexpr int kMaxServerMajor = 18;

// 150018 -> 15, 180004 -> 18 (server_version_num of PostgreSQL 10 and later).
constexpr int pg_major_of(int version_num) {
  return version_num / 10000;
}

constexpr bool is_supported_major(int major) {
  return major >= kMinServerMajor && major <= kMaxServerMajor;
}

// Throws Error "<what> runs PostgreSQL N, which walvault does not support" with a hint
// naming the supported range, unless major is supported. what: "the server", ...
void require_supported_major(int major, const std::string& what);

// "14, 15, 16, 17 and 18".
std::string supported_majors_text();

// XLOG_PAGE_MAGIC of a major's WAL (the first two bytes of every WAL page); it changes
// whenever the WAL format does, so it tells which major wrote a segment.
std::optional<uint16_t> wal_page_magic(int major);

// The major whose WAL carries this page magic, if it is one of the supported ones.
std::optional<int> major_of_wal_page_magic(uint16_t magic);

// BASE_BACKUP: PostgreSQL 15 introduced the parenthesized option list and the single COPY
// stream of typed messages ('n', 'd', 'm', 'p'); 14 uses bare keywords and one COPY OUT
// result per tablespace, then one for the manifest.
constexpr bool has_new_base_backup_protocol(int major) {
  return major >= 15;
}

// READ_REPLICATION_SLOT exists from PostgreSQL 15.
constexpr bool has_read_replication_slot(int major) {
  return major >= 15;
}

}  // namespace walvault
