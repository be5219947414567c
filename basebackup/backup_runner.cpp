#include "basebackup/backup_runner.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>

#include "basebackup/archive_store.h"
#include "basebackup/backup_wal.h"
#include "basebackup/base_backup_client.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/repo_lock.h"
#include "core/repository.h"
#include "core/wal_inventory.h"
#include "walarchiver/archiver.h"
#include "walarchiver/replication_connection.h"

namespace walvault {
namespace {

using Clock = std::chrono::steady_clock;

std::string mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", double(bytes) / (1024.0 * 1024.0));
  return buf;
}

std::string fixed1(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// backups/<compact start time>, or with "-2", "-3", ... when taken (two backups within a
// second). mkdir is the claim: two concurrent backups never share a directory.
std::string claim_backup_id(const Repository& repo, Timestamp start) {
  make_dirs(repo.backups_dir());
  const std::string base = format_compact_utc(start);
  for (int n = 1; n < 1000; ++n) {
    const std::string id = n == 1 ? base : base + "-" + std::to_string(n);
    const fs::path dir = backup_dir(repo, id);
    if (::mkdir(dir.c_str(), kDirMode) == 0) {
      fsync_dir(repo.backups_dir());
      return id;
    }
    if (errno != EEXIST) throw errno_error("could not create \"" + dir.string() + "\"", errno);
  }
  throw Error("could not find a free backup id for " + base);
}

// The WAL a slot reserves from its creation on. A temporary slot lives as long as this
// connection, so the server keeps the backup's WAL (from before its start checkpoint) until
// walvault has it, even when the backup takes longer than wal_keep_size covers.
void reserve_wal(ReplicationConnection& conn) {
  const std::string slot = "walvault_backup_" + std::to_string(::getpid());
  try {
    conn.exec("CREATE_REPLICATION_SLOT " + slot + " TEMPORARY PHYSICAL RESERVE_WAL",
              PGRES_TUPLES_OK);
    log::debug("reserved WAL with temporary replication slot " + slot);
  } catch (const ConnectionLost&) {
    throw;
  } catch (const Error& e) {
    log::warning(std::string("could not create a temporary replication slot (") + e.what() +
                 "); the server may recycle WAL this backup needs before it is archived");
  }
}

// BASE_BACKUP into backups/<id>/: the archives through the pipeline, then the manifest;
// records LSNs, files and sizes in info and saves it (still "running").
void receive_backup(ReplicationConnection& conn, const BackupOptions& o, const Repository& repo,
                    BackupInfo& info) {
  const fs::path dir = backup_dir(repo, info.id);
  BaseBackupOptions bo;
  bo.label = info.label;
  bo.checkpoint = o.checkpoint;
  bo.max_rate_kbps = o.max_rate_kbps;
  ArchiveWriterPipeline pipe(dir);
  const auto t0 = Clock::now();
  auto last_log = t0;
  uint64_t total_bytes = 0;
  BaseBackupCallbacks cb;
  cb.stop_requested = o.stop_requested;
  cb.started = [&](const BaseBackupResult& r) {
    total_bytes = r.total_kb * 1024;
    // Recorded at once: a backup that dies from here on still says where it began.
    info.start_lsn = r.start_lsn;
    info.timeline = r.start_timeline;
    save_backup_info(repo, info);
    log::info("backup " + info.id + " started at " + r.start_lsn.str() + " on timeline " +
              std::to_string(r.start_timeline.value) + " (about " + mib(total_bytes) + ")");
  };
  cb.tick = [&] {
    if (Clock::now() - last_log < std::chrono::seconds(10)) return;
    last_log = Clock::now();
    std::string msg = "backup " + info.id + ": " + mib(pipe.received_bytes());
    if (total_bytes) msg += " of about " + mib(total_bytes);
    log::info(msg);
  };
  log::info("starting base backup " + info.id + " (checkpoint " +
            (o.checkpoint == CheckpointMode::fast ? "fast" : "spread") + ")");
  const BaseBackupResult r = run_base_backup(conn.raw(), bo, pipe, cb);
  const std::vector<StoredArchive> archives = pipe.finish();
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  const std::string& manifest = pipe.manifest();
  write_file_durable(dir / "backup_manifest", manifest);

  info.timeline = r.start_timeline;
  info.stop_timeline = r.stop_timeline;
  info.start_lsn = r.start_lsn;
  info.stop_lsn = r.stop_lsn;
  info.stop_time = now();
  bool has_base = false;
  for (const auto& a : archives) {
    info.files.push_back(a.file);
    if (a.tablespace_oid) {
      info.tablespaces.push_back({*a.tablespace_oid, a.location, a.file.name});
    } else {
      has_base = true;
    }
  }
  if (!has_base) throw Error("base backup failed: the server sent no base.tar");
  info.files.push_back({"backup_manifest", manifest.size(), manifest.size(), sha256_hex(manifest)});
  for (const auto& f : info.files) {
    info.bytes += f.bytes;
    info.stored_bytes += f.stored_bytes;
  }
  save_backup_info(repo, info);
  log::info("backup " + info.id + " received: " + mib(info.bytes) + " in " + fixed1(seconds) +
            " s (" + fixed1(double(info.bytes) / 1048576.0 / std::max(seconds, 1e-3)) +
            " MiB/s), stored " + mib(info.stored_bytes) + "; stop LSN " + info.stop_lsn.str());
}

void ensure_wal(const BackupOptions& o, const Repository& repo, const BackupInfo& info) {
  auto missing =
      first_missing_wal(repo, info.timeline, info.stop_timeline, info.start_lsn, info.stop_lsn);
  if (!missing) return;
  const std::string range = info.start_lsn.str() + " to " + info.stop_lsn.str();
  if (!archiver_running(repo)) {
    log::info("no walvault archive runs on this repository: archiving the WAL of the backup (" +
              range + ") here");
    ArchiveOptions a;
    a.repo = o.repo;
    a.conninfo = o.conninfo;
    a.application_name = "walvault backup";
    a.start = info.start_lsn;
    a.start_timeline = info.timeline;
    a.endpos = info.stop_lsn;
    a.no_loop = true;
    a.stop_requested = o.stop_requested;
    // Close the archive's own tail first: streaming only the backup's range would leave a
    // hole between the archive's end and the backup's start, which a later archiver run
    // (resuming from the archive's end) never fills, and commits in it could not be restored.
    const TimelineWal archived = scan_timeline_wal(repo, info.timeline);
    if (!archived.ranges.empty() && archived.ranges.back().end < info.start_lsn) {
      a.start = archived.ranges.back().end;
    }
    try {
      ArchiveResult res;
      try {
        res = run_archiver(a);
      } catch (const Error& e) {
        if (*a.start == info.start_lsn || archiver_running(repo)) throw;
        log::warning("could not archive the WAL between the archive's end " + a.start->str() +
                     " and the backup's start " + info.start_lsn.str() + " (" + e.what() +
                     "); the archive keeps a gap there");
        a.start = info.start_lsn;
        res = run_archiver(a);
      }
      if (!res.endpos_reached) {
        throw Error("interrupted while archiving the WAL of the backup",
                    "the backup is marked failed; run it again");
      }
    } catch (const Error& e) {
      // An archiver that started meanwhile holds the lock: then wait for it below.
      if (!archiver_running(repo)) throw;
      log::info(std::string("an archiver started meanwhile (") + e.what() + "); waiting for it");
    }
    missing =
        first_missing_wal(repo, info.timeline, info.stop_timeline, info.start_lsn, info.stop_lsn);
    if (!missing) return;
    if (!archiver_running(repo)) {
      throw Error(
          "the WAL of the backup is not in the repository after streaming it (missing from " +
          missing->str() + ", needed " + range + ")");
    }
  }
  log::info("waiting up to " + std::to_string(o.wal_timeout_s) +
            " s for the running archiver to archive the WAL of the backup (" + range + ")");
  if (!wait_for_wal(repo, info.timeline, info.stop_timeline, info.start_lsn, info.stop_lsn,
                    std::chrono::seconds(o.wal_timeout_s), o.stop_requested)) {
    missing =
        first_missing_wal(repo, info.timeline, info.stop_timeline, info.start_lsn, info.stop_lsn);
    throw Error("the WAL of the backup (" + range + ") did not reach the repository within " +
                    std::to_string(o.wal_timeout_s) + " s (missing from " +
                    (missing ? missing->str() : std::string("?")) + ")",
                "check that walvault archive streams from this server, or raise --wal-timeout-s");
  }
}

// PostgreSQL writes the label into backup_label as "LABEL: <label>\n" and reads it back
// line by line: a newline in it would corrupt the restored directory.
void check_label(const std::string& label) {
  if (label.size() > 1000) throw usage_error("--label is longer than 1000 bytes");
  for (unsigned char c : label) {
    if (c < 0x20 || c == 0x7f) throw usage_error("--label must not contain control characters");
  }
}

void mark_failed(const Repository& repo, BackupInfo& info, const std::string& error) {
  info.status = BackupStatus::failed;
  info.error = error;
  info.stop_time = now();
  try {
    save_backup_info(repo, info);
  } catch (const std::exception& e) {
    log::error("could not mark backup " + info.id + " failed: " + e.what());
  }
}

}  // namespace

BackupInfo run_backup(const BackupOptions& o) {
  check_label(o.label);
  ReplicationConnection conn = ReplicationConnection::connect(o.conninfo, "walvault backup");
  const RepoIdentity server = conn.repo_identity();
  ::umask(077);
  Repository repo = Repository::open_or_create(o.repo, server);

  BackupInfo info;
  info.start_time = now();
  info.stop_time = info.start_time;
  info.id = claim_backup_id(repo, info.start_time);
  RepoLock lock = RepoLock::acquire(repo, backup_lock_name(info.id), "backup " + info.id);
  // Removed while still held: nobody else ever takes a backup's lock.
  struct RemoveLockFile {
    fs::path path;
    ~RemoveLockFile() { ::unlink(path.c_str()); }
  } remove_lock_file{lock_file_path(repo, backup_lock_name(info.id))};
  info.label = o.label.empty() ? info.id : o.label;
  info.status = BackupStatus::running;
  info.pg_version_num = server.pg_version_num;
  info.system_identifier = server.system_identifier;
  try {
    save_backup_info(repo, info);
    if (o.take_snapshots) {
      info.snapshots = o.take_snapshots(repo, info.id);
      save_backup_info(repo, info);
    }
    reserve_wal(conn);
    receive_backup(conn, o, repo, info);
    ensure_wal(o, repo, info);
    info.status = BackupStatus::complete;
    save_backup_info(repo, info);
    log::info("backup " + info.id + " complete: WAL " + info.start_lsn.str() + " to " +
              info.stop_lsn.str() + " is archived");
    return info;
  } catch (const std::exception& e) {
    mark_failed(repo, info, e.what());
    throw;
  }
}

}  // namespace walvault
