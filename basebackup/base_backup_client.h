#pragma once
// Runs BASE_BACKUP on a replication connection (ReplicationConnection::raw()) and feeds the
// COPY stream(s) to a BackupStreamSink. The results around the stream:
//   1. one row (recptr text, tli int8): the start LSN and its timeline;
//   2. the tablespaces (spcoid, spclocation, size in kB; NULL oid = the main directory);
//   3. the COPY OUT stream (15+), or one per tablespace and one for the manifest (14)
//      (backup_stream.h);
//   4. one row (recptr, tli): the stop LSN and its timeline.

#include <functional>
#include <string>
#include <vector>

#include <libpq-fe.h>

#include "basebackup/backup_stream.h"
#include "core/lsn.h"

namespace walvault {

struct BaseBackupResult {
  Lsn start_lsn;
  TimelineId start_timeline;
  Lsn stop_lsn;
  TimelineId stop_timeline;
  std::vector<TablespaceRow> tablespaces;
  uint64_t total_kb = 0;  // sum of the tablespace sizes the server estimated (PROGRESS)
};

struct BaseBackupCallbacks {
  // Called once the start LSN and the tablespaces are known, before any data.
  std::function<void(const BaseBackupResult&)> started;
  // Called about once a second while data streams (and while waiting for it).
  std::function<void()> tick;
  // Polled as often; returning true abandons the backup with an Error.
  std::function<bool()> stop_requested;
};

BaseBackupResult run_base_backup(PGconn* conn, const BaseBackupOptions& options,
                                 BackupStreamSink& sink, const BaseBackupCallbacks& callbacks);

// Parses the one-row (recptr, tli) result sent before and after the stream.
// Throws Error when it has another shape.
void parse_position_row(const std::vector<std::string>& row, Lsn& lsn, TimelineId& tli);

}  // namespace walvault
