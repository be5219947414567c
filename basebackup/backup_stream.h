#pragma once
// The BASE_BACKUP command and its COPY stream, for both protocol generations:
//
// PostgreSQL 15 and later: parenthesized options, and one COPY OUT stream of typed CopyData
// messages (protocol-replication.html, "BASE_BACKUP"):
//   'n' archive name '\0' tablespace location '\0'   a new archive starts ("" = main dir)
//   'd' bytes                                          archive data, or manifest data after 'm'
//   'p' int64 (network order)                          bytes of the backup sent so far
//   'm'                                                the backup manifest follows
// An archive ends where the next one starts, where the manifest starts, or where the stream
// ends.
//
// PostgreSQL 14: bare keyword options, and one COPY OUT result per tablespace (in the order
// of the tablespace result set, the main directory last) whose CopyData is raw tar without
// the end-of-archive blocks, then one COPY OUT result holding the manifest. The client
// (base_backup_client.cpp) drives the decoder's typed calls for that.
//
// BackupStreamDecoder turns either into calls on a BackupStreamSink and refuses anything out
// of order; it never touches libpq, so unit tests feed it scripted bytes.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/lsn.h"

namespace walvault {

enum class CheckpointMode { fast, spread };

struct BaseBackupOptions {
  std::string label = "walvault";
  CheckpointMode checkpoint = CheckpointMode::fast;
  bool progress = true;  // the server sizes every tablespace first, for progress reports
  // MAX_RATE: the server sends at most this many kB/s (32 .. 1048576), so that a backup
  // does not compete with the database for disk and network; 0 = no limit.
  uint32_t max_rate_kbps = 0;
};

// 15 and later: "BASE_BACKUP (LABEL '...', PROGRESS, CHECKPOINT 'fast', WAIT false, MANIFEST
// 'yes', MANIFEST_CHECKSUMS 'CRC32C')"; 14: "BASE_BACKUP LABEL '...' PROGRESS FAST NOWAIT
// MANIFEST 'yes' MANIFEST_CHECKSUMS 'CRC32C'" (the same request). The label is quoted as an
// SQL literal. server_major: the server's major version (core/pg_versions.h).
std::string base_backup_command(const BaseBackupOptions& options, int server_major);

// A row of the tablespace result set sent before the COPY stream.
struct TablespaceRow {
  std::optional<uint32_t> oid;      // none for the main data directory
  std::string location;             // empty for the main data directory
  std::optional<uint64_t> size_kb;  // with PROGRESS only
};

class BackupStreamSink {
 public:
  virtual ~BackupStreamSink() = default;
  // location: the tablespace directory on the server, empty for the main data directory.
  virtual void begin_archive(const std::string& name, const std::string& location) = 0;
  virtual void archive_data(std::span<const std::byte> data) = 0;
  virtual void end_archive() = 0;
  virtual void manifest_data(std::span<const std::byte> data) = 0;
  virtual void progress(uint64_t bytes_done) { (void)bytes_done; }
};

class BackupStreamDecoder {
 public:
  explicit BackupStreamDecoder(BackupStreamSink& sink) : sink_(sink) {}

  // One CopyData payload of the 15+ stream. Throws Error on an unknown type, a malformed
  // message, or a message out of order (data before any archive, a new archive after the
  // manifest).
  void on_message(std::span<const std::byte> message);

  // The same events, typed (what each message means); the 14 stream is fed through these.
  void begin_archive(const std::string& name, const std::string& location);
  void data(std::span<const std::byte> bytes);
  void begin_manifest();
  void progress(uint64_t bytes_done) { sink_.progress(bytes_done); }
  // The COPY stream ended (CopyDone): closes the open archive.
  void finish();

  bool saw_manifest() const { return saw_manifest_; }
  const std::vector<std::string>& archives() const { return archives_; }

 private:
  enum class State { start, archive, manifest, finished };
  BackupStreamSink& sink_;
  State state_ = State::start;
  bool saw_manifest_ = false;
  std::vector<std::string> archives_;
};

// Archive names PostgreSQL sends: "base.tar" and "<tablespace oid>.tar". Returns the oid
// for a tablespace archive, nullopt for base.tar; throws Error for anything else (so a
// name never becomes a path in the repository without being checked).
std::optional<uint32_t> tablespace_oid_of_archive(const std::string& archive_name);

}  // namespace walvault
