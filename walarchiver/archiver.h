#pragma once
// `walvault archive` as a library function: connect, open (or create) the repository, take
// its archiver lock, find the start, stream, reconnect with backoff. Also what
// `walvault backup` calls to archive the WAL of its own backup when no archiver runs.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/fs.h"
#include "core/io.h"
#include "core/lsn.h"
#include "core/repository.h"
#include "walarchiver/archiver_stats.h"

namespace walvault {

struct ArchiveOptions {
  fs::path repo;
  std::string conninfo;  // --dbname; may be empty (PG* environment variables)
  std::string application_name = "walvault";
  std::string slot;
  bool create_slot = false;  // create the slot (PHYSICAL RESERVE_WAL) when it does not exist
  // Explicit start (walvault backup): stream from here on start_timeline (default: the
  // server's), continuing after what the archive already holds from there. Without it the
  // start is the archive's end, the slot's restart_lsn or the server's position.
  std::optional<Lsn> start;
  std::optional<TimelineId> start_timeline;
  std::optional<Lsn> endpos;  // stop with exit 0 once everything up to here is durable
  bool no_loop = false;       // a lost connection ends the command instead of reconnecting
  bool synchronous = false;
  // When the server no longer has the WAL at the archive's end: record the gap
  // (wal/<TLI>/gaps.json) and continue at the server's oldest WAL instead of failing.
  bool allow_gap = false;
  Compression compression = Compression::lz4;
  IoMode io = IoMode::automatic;
  int status_interval_ms = 10'000;
  int max_backoff_ms = 60'000;
  std::function<bool()> stop_requested;  // e.g. set by SIGINT/SIGTERM
  ArchiverStats* stats = nullptr;        // published for monitoring when set (walvault service)
};

struct ArchiveResult {
  bool endpos_reached = false;  // false: stopped on request
  TimelineId timeline;
  Lsn durable;  // everything before it is durable in the repository
  uint64_t bytes_received = 0;
};

// Runs until endpos, a stop request, or an Error (a lost connection is one only with
// no_loop). Sets umask 077: repository files are 0600, directories 0700.
ArchiveResult run_archiver(const ArchiveOptions& options);

// A gap the archiver had to leave: WAL [start, end) on timeline was removed by the server
// before it was archived. Appended to wal/<TLI>/gaps.json (docs/repository-format.md).
struct RecordedGap {
  TimelineId timeline;
  Lsn start;
  Lsn end;
  std::string detected_at;  // ISO 8601
  std::string reason;
};
void record_gap(const Repository& repo, const RecordedGap& gap);
std::vector<RecordedGap> recorded_gaps(const Repository& repo, TimelineId tli);
// Removes the entries of wal/<TLI>/gaps.json that end at or before `keep_from` (expire removed
// the WAL around them; nullopt: every entry) and the file when none is left. Holds the gaps
// lock while it reads and rewrites. Returns how many entries it removed.
size_t drop_recorded_gaps(const Repository& repo, TimelineId tli, std::optional<Lsn> keep_from);

// DROP_REPLICATION_SLOT (for --drop-slot).
void drop_replication_slot(const std::string& conninfo, const std::string& slot);

}  // namespace walvault
