#pragma once
// `walvault backup` as a library function:
//   connect (replication) -> open or create the repository (checks the system identifier)
//   -> backups/<id>/backup.json "running" -> BASE_BACKUP, archives stored as LZ4 frames and
//   the manifest verbatim -> the backup's WAL (start LSN .. stop LSN) in the repository,
//   from a running archiver or streamed here -> "complete".
// Any failure after backup.json exists marks it "failed" with the error; never "complete".

#include <functional>
#include <string>
#include <vector>

#include "basebackup/backup_stream.h"
#include "core/backup_info.h"
#include "core/fs.h"
#include "core/repository.h"

namespace walvault {

struct BackupOptions {
  fs::path repo;
  std::string conninfo;  // --dbname; may be empty (PG* environment variables)
  std::string label;     // empty: the backup id
  CheckpointMode checkpoint = CheckpointMode::spread;
  int wal_timeout_s = 120;     // how long to wait for a running archiver to archive the WAL
  uint32_t max_rate_kbps = 0;  // BASE_BACKUP MAX_RATE (kB/s, 32 .. 1048576); 0: no limit
  std::function<bool()> stop_requested;  // e.g. set by SIGINT/SIGTERM
  // `backup --dir`: takes the directory snapshots once the repository is open and the backup
  // is "running", before BASE_BACKUP starts (so any target this backup reaches is at or after
  // them); returns their ids, recorded in backup.json. A failure fails the backup.
  std::function<std::vector<std::string>(const Repository&, const std::string& backup_id)>
      take_snapshots;
};

// Returns the backup.json content of the complete backup; throws Error otherwise.
// Throws a usage Error before connecting for a label PostgreSQL would choke on.
BackupInfo run_backup(const BackupOptions& options);

}  // namespace walvault
