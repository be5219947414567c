#pragma once
// PostgreSQL's backup_manifest (the server sends it after the archives of BASE_BACKUP; kept
// verbatim in the repository): a JSON object with
//   "PostgreSQL-Backup-Manifest-Version": 1 (PostgreSQL 13 to 16) or 2 (17, with
//   "System-Identifier"), "Files": [{"Path" | "Encoded-Path", "Size", "Last-Modified",
//   "Checksum-Algorithm", "Checksum"}], "WAL-Ranges": [{"Timeline", "Start-LSN", "End-LSN"}],
//   "Manifest-Checksum": SHA-256 (hex) of every byte before the line that holds it.
// Read, never written, by walvault: `verify` checks it (pg_verifybackup does the rest).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/lsn.h"

namespace walvault {

struct ManifestFile {
  std::string path;  // decoded (Encoded-Path is hex)
  uint64_t size = 0;
  std::string checksum_algorithm;  // "CRC32C", "SHA256", ..., "NONE"
  std::string checksum;
};

struct ManifestWalRange {
  TimelineId timeline;
  Lsn start;
  Lsn end;
};

struct BackupManifest {
  int version = 0;
  uint64_t system_identifier = 0;  // version 2 only
  std::vector<ManifestFile> files;
  std::vector<ManifestWalRange> wal_ranges;
};

// Parses and checks a manifest: its structure, every field's type, and the manifest's own
// SHA-256. Throws Error saying what is wrong (no file name: the caller adds it).
BackupManifest parse_backup_manifest(std::string_view text);

}  // namespace walvault
