#pragma once
// Unpacking a stored base backup into a restore target (used by pitr's restore builder).
//
// What lands in the target is exactly what the server put into its tar archives: the
// backup_manifest is NOT copied into the data directory. pg_verifybackup reads the
// repository's copy through --manifest-path, and a manifest inside a data directory would
// go stale as soon as the restored server writes anything (and would travel into the next
// base backup of that server). The repository copy stays the one authority.

#include <cstdint>
#include <map>

#include "core/backup_info.h"
#include "core/fs.h"
#include "core/repository.h"

namespace walvault {

// Checks every stored file of the backup (archives and manifest) against the size and
// sha256 recorded in backup.json. Throws Error naming the first damaged or missing file.
void verify_backup_files(const Repository& repo, const BackupInfo& backup);

struct ExtractStats {
  uint64_t files = 0;
  uint64_t bytes = 0;
};

// Verifies each stored file's sha256 before writing anything, then unpacks base.tar.lz4 into
// target_dir and each tablespace archive into tablespace_dirs[oid] (default: its original
// location); pg_tblspc/<oid> in the target then points at that directory. Regular files,
// directories, symlinks and hard links keep their modes. Everything is fsynced once at the
// end. target_dir and every tablespace directory must be absent or empty (they are created
// with mode 0700). Throws Error on anything wrong; a half-written target is left for the
// caller to remove.
// files_verified: the caller has just run verify_backup_files (the archives are not read
// twice).
ExtractStats extract_backup(const Repository& repo, const BackupInfo& backup,
                            const fs::path& target_dir,
                            const std::map<uint32_t, fs::path>& tablespace_dirs,
                            bool files_verified = false);

}  // namespace walvault
