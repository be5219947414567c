#pragma once
// Checking one stored file of a base backup in a single streamed read: its size and SHA-256
// against backup.json and, by its kind, its content: a `.tar.lz4` archive must be one valid lz4
// frame (block and content checksums) holding `bytes` bytes of a well-formed tar archive that
// ends with its end marker; `backup_manifest` must parse and match its own checksum
// (core/backup_manifest.h). Used by `walvault verify`.

#include <cstdint>
#include <optional>
#include <string>

#include "core/backup_info.h"
#include "core/backup_manifest.h"
#include "core/fs.h"

namespace walvault {

struct BackupFileCheck {
  bool missing = false;
  std::string problem;  // empty when the file is fine; no file name (the caller has it)
  uint64_t stored_bytes = 0;
  uint64_t tar_members = 0;
  std::optional<BackupManifest> manifest;  // backup_manifest, when it parsed
  bool ok() const { return problem.empty(); }
};

BackupFileCheck check_backup_file(const fs::path& path, const BackupFile& expected);

}  // namespace walvault
