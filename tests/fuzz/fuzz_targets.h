#pragma once
// The bodies of the libFuzzer targets (scripts/fuzz.sh), one per parser of outside input. Each
// takes any bytes and returns 0: malformed input must end in walvault::Error (or, for JSON
// documents, nlohmann's parse/type errors that the callers turn into one); any other
// exception, a crash, a sanitizer report, a hang or a huge allocation is a finding. The unit
// tests replay the committed corpus and every regression input through the same functions
// (tests/unit/fuzz_corpus_test.cpp), so a fixed crash stays fixed in the normal test pass.
//
// Input layouts (the seeds under tests/fuzz/corpus/<name>/ follow them):
//   replication_message  one CopyData payload of START_REPLICATION ('w' XLogData, 'k' keepalive)
//   base_backup_stream   BASE_BACKUP CopyData messages, each prefixed by its length (2 bytes,
//                        little-endian); archives go through the tar reader, the manifest
//                        through the manifest parser
//   tar_archive          byte 0: feed chunk size (0: all at once), then a tar archive
//   timeline_history     4 bytes timeline (big-endian), 4 bytes probe, then a .history file
//   backup_manifest      a backup_manifest
//   json_metadata        byte 0 % 4 picks backup.json, walvault.json, snapshot.json or one
//                        snapshot entry line; then the document
//   target_spec          byte 0 % 6 picks --target-time, --target-lsn, --target-xid,
//                        --target-timeline, --target-action or a plain timestamp; then the text
//   wal_file_name        a file name from the archive directory
//   lz4_frame            an lz4 frame (a compressed segment)
//   service_config       a walvault service --config file
//   wal_records          byte 0: bits 0-1 PostgreSQL 13 + n, bits 2-3 segment size (16 MiB,
//                        1 MiB, 64 MiB, 1 GiB), bit 4 expectations follow (8 bytes system
//                        identifier, big-endian, 1 byte timeline); byte 1: segment number;
//                        byte 2: feed chunk size (0: all at once); then the segment's WAL bytes

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace walvault::fuzz {

int replication_message(const uint8_t* data, size_t size);
int base_backup_stream(const uint8_t* data, size_t size);
int tar_archive(const uint8_t* data, size_t size);
int timeline_history(const uint8_t* data, size_t size);
int backup_manifest(const uint8_t* data, size_t size);
int json_metadata(const uint8_t* data, size_t size);
int target_spec(const uint8_t* data, size_t size);
int wal_file_name(const uint8_t* data, size_t size);
int lz4_frame(const uint8_t* data, size_t size);
int wal_records(const uint8_t* data, size_t size);
int service_config(const uint8_t* data, size_t size);

struct NamedTarget {
  std::string_view name;
  int (*run)(const uint8_t* data, size_t size);
};

inline constexpr std::array<NamedTarget, 11> kTargets{{
    {"replication_message", replication_message},
    {"base_backup_stream", base_backup_stream},
    {"tar_archive", tar_archive},
    {"timeline_history", timeline_history},
    {"backup_manifest", backup_manifest},
    {"json_metadata", json_metadata},
    {"target_spec", target_spec},
    {"wal_file_name", wal_file_name},
    {"lz4_frame", lz4_frame},
    {"wal_records", wal_records},
    {"service_config", service_config},
}};

}  // namespace walvault::fuzz
