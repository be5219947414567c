#include "walarchiver/archiver.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "core/repo_lock.h"
#include "walarchiver/replication_connection.h"
#include "walarchiver/segment_sink.h"
#include "walarchiver/start_position.h"
#include "walarchiver/wal_receiver.h"

namespace walvault {
namespace {

constexpr int kFirstBackoffMs = 1000;

void ensure_slot(ReplicationConnection& conn, const ArchiveOptions& options) {
  if (options.slot.empty()) return;
  auto info = conn.read_replication_slot(options.slot);
  if (!info) {
    if (!options.create_slot) {
      throw Error("replication slot \"" + options.slot + "\" does not exist",
                  "add --create-slot, or create it on the server with "
                  "SELECT pg_create_physical_replication_slot('" +
                      options.slot + "', true)");
    }
    conn.create_physical_slot(options.slot);
    log::info("created physical replication slot \"" + options.slot + "\"");
    return;
  }
  if (info->slot_type != "physical") {
    throw Error("replication slot \"" + options.slot + "\" is a " + info->slot_type + " slot",
                "walvault archive needs a physical slot");
  }
}

// Sleeps for ms unless a stop is requested first; returns false when one was.
bool sleep_unless_stopped(int ms, const std::function<bool()>& stop_requested) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < until) {
    if (stop_requested && stop_requested()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return !(stop_requested && stop_requested());
}

}  // namespace

ArchiveResult run_archiver(const ArchiveOptions& options) {
  ::umask(077);
  std::optional<Repository> repo;
  std::optional<RepoLock> lock;
  std::unique_ptr<FileWriter> writer;
  std::optional<Lsn> explicit_start = options.start;
  std::optional<TimelineId> explicit_tli = options.start_timeline;
  int backoff_ms = kFirstBackoffMs;
  uint64_t bytes_received = 0;

  for (;;) {
    Lsn durable_before;
    std::optional<SegmentSink> sink;
    try {
      ReplicationConnection conn =
          ReplicationConnection::connect(options.conninfo, options.application_name);
      const SystemInfo server = conn.identify_system();
      RepoIdentity identity;
      identity.system_identifier = server.system_identifier;
      identity.pg_version_num = conn.server_version_num();
      identity.wal_segment_size = conn.wal_segment_size();
      // Checked on every connection: the server behind --dbname may have been replaced.
      Repository opened = Repository::open_or_create(options.repo, identity);
      if (!repo) {
        repo.emplace(std::move(opened));
        lock.emplace(RepoLock::acquire(*repo, kArchiverLockName, "walvault archive"));
        writer = make_file_writer(options.io);
      }
      ensure_slot(conn, options);

      StartPoint start;
      if (explicit_start) {
        start = start_point_from(*repo, explicit_tli.value_or(server.timeline), *explicit_start);
      } else {
        start = find_start_point(*repo, conn, server, options.slot);
      }
      log::info("starting at " + start.lsn.str() + " on timeline " +
                std::to_string(start.timeline.value) + " (" + start.why + ")");
      durable_before = start.lsn;

      StreamOptions stream_options;
      stream_options.slot = options.slot;
      stream_options.endpos = options.endpos;
      stream_options.synchronous = options.synchronous;
      stream_options.status_interval_ms = options.status_interval_ms;
      stream_options.stop_requested = options.stop_requested;
      sink.emplace(*repo, options.compression, *writer);
      WalReceiver receiver(conn, *repo, *sink, stream_options);
      StreamResult result;
      try {
        result = receiver.stream(start.timeline, start.lsn);
      } catch (...) {
        bytes_received += receiver.bytes_received();
        throw;
      }
      bytes_received += receiver.bytes_received();
      ArchiveResult out;
      out.endpos_reached = result.reason == StreamStop::endpos_reached;
      out.timeline = result.timeline;
      out.durable = result.durable;
      out.bytes_received = bytes_received;
      log::info(std::string(out.endpos_reached ? "reached --endpos" : "stopped") +
                "; the archive is durable up to " + out.durable.str() + " on timeline " +
                std::to_string(out.timeline.value));
      return out;
    } catch (const ConnectionLost& e) {
      if (options.no_loop) throw;
      if (sink && sink->durable_lsn() > durable_before) backoff_ms = kFirstBackoffMs;
      // An explicit start is consumed once: later attempts continue where this one ended.
      if (explicit_start && sink && sink->durable_lsn().valid()) {
        explicit_start = sink->durable_lsn();
        explicit_tli = sink->timeline();
      }
      log::warning(std::string(e.what()) + "; reconnecting in " +
                   std::to_string(backoff_ms / 1000.0).substr(0, 4) + " s");
      if (!sleep_unless_stopped(backoff_ms, options.stop_requested)) {
        ArchiveResult out;
        if (sink) {
          out.timeline = sink->timeline();
          out.durable = sink->durable_lsn();
        }
        out.bytes_received = bytes_received;
        log::info("stopped while waiting to reconnect");
        return out;
      }
      backoff_ms = std::min(backoff_ms * 2, options.max_backoff_ms);
    }
  }
}

void drop_replication_slot(const std::string& conninfo, const std::string& slot) {
  ReplicationConnection conn = ReplicationConnection::connect(conninfo);
  std::string quoted = "\"";
  for (char c : slot) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  quoted += '"';
  conn.exec("DROP_REPLICATION_SLOT " + quoted, PGRES_COMMAND_OK);
  log::info("dropped replication slot \"" + slot + "\"");
}

}  // namespace walvault
