#pragma once
// backup.json: what the basebackup component writes and the pitr component reads.
// The two meet only here and in docs/repository-format.md.

#include <string>
#include <vector>

#include "core/json.h"
#include "core/lsn.h"
#include "core/repository.h"
#include "core/timestamp.h"

namespace walvault {

enum class BackupStatus { running, complete, failed };
std::string_view to_string(BackupStatus s);

struct BackupFile {
  std::string name;           // as stored under backups/<id>/, e.g. "base.tar.lz4"
  uint64_t bytes = 0;         // uncompressed size
  uint64_t stored_bytes = 0;  // size in the repository
  std::string sha256;         // of the stored file
};

struct BackupTablespace {
  uint32_t oid = 0;
  std::string location;  // path on the server
  std::string file;      // stored archive, e.g. "16385.tar.lz4"
};

struct BackupInfo {
  std::string id;  // "20261203T140500Z": also the directory name
  std::string label;
  BackupStatus status = BackupStatus::running;
  TimelineId timeline;       // timeline of start_lsn
  TimelineId stop_timeline;  // timeline of stop_lsn
  Lsn start_lsn;             // redo point of the backup checkpoint
  Lsn stop_lsn;              // consistency point: recovery must replay at least this far
  Timestamp start_time;
  Timestamp stop_time;
  uint64_t bytes = 0;
  uint64_t stored_bytes = 0;
  int pg_version_num = 0;
  std::string system_identifier;
  std::vector<BackupFile> files;
  std::vector<BackupTablespace> tablespaces;
  std::vector<std::string> snapshots;  // ids of the snapshots `backup --dir` took with it
  std::string error;                   // why it failed, when it did
};

Json to_json(const BackupInfo& b);
BackupInfo backup_info_from_json(const Json& j);  // throws Json::exception on bad input

fs::path backup_dir(const Repository& repo, const std::string& id);
void save_backup_info(const Repository& repo, const BackupInfo& b);  // durable
// While `walvault backup` runs it holds REPO/lock/backup-<id>.lock (and removes the file when
// it ends). A backup.json that says "running" while nobody holds that lock belongs to a
// backup process that died (kill -9, a crash, a reboot): it will never complete.
std::string backup_lock_name(const std::string& backup_id);
bool backup_in_progress(const Repository& repo, const std::string& backup_id);

// Every backups/*/backup.json, ascending by start LSN. A "running" backup whose process is
// gone is returned as failed. A backup whose backup.json is
// damaged or missing is left out and described in *problems (one line each): one bad
// backup must not hide the others, nor disappear without a word.
std::vector<BackupInfo> load_backups(const Repository& repo,
                                     std::vector<std::string>* problems = nullptr);

}  // namespace walvault
