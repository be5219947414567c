#include "walarchiver/archiver.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <thread>

#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "core/pg.h"
#include "core/repo_lock.h"
#include "core/timestamp.h"
#include "walarchiver/replication_connection.h"
#include "walarchiver/segment_sink.h"
#include "walarchiver/start_position.h"
#include "walarchiver/wal_receiver.h"

namespace walvault {
namespace {

constexpr int kFirstBackoffMs = 1000;

// Refuses a slot that cannot be used; true when it must be created (--create-slot). Runs
// before the repository is created, so that a refusal leaves nothing behind (no repository
// bound to this server, no slot holding WAL on it).
bool check_slot(ReplicationConnection& conn, const ArchiveOptions& options) {
  if (options.slot.empty()) return false;
  auto info = conn.read_replication_slot(options.slot);
  if (!info) {
    if (!options.create_slot) {
      throw Error("replication slot \"" + options.slot + "\" does not exist",
                  "add --create-slot, or create it on the server with "
                  "SELECT pg_create_physical_replication_slot('" +
                      options.slot + "', true)");
    }
    return true;
  }
  if (info->slot_type != "physical") {
    throw Error("replication slot \"" + options.slot + "\" is a " + info->slot_type + " slot",
                "walvault archive needs a physical slot");
  }
  if (!info->restart_lsn.valid()) {
    // PostgreSQL 15 clears restart_lsn when it invalidates a slot (wal_status = lost,
    // max_slot_wal_keep_size exceeded); a slot created without reserving WAL has none yet.
    // Streaming from it would silently revive it at whatever WAL the server still has.
    throw Error("replication slot \"" + options.slot +
                    "\" reserves no WAL: the server has invalidated it (wal_status = lost: WAL "
                    "it held was removed), or it was created without reserving WAL",
                "WAL the archive may need is probably gone; check pg_replication_slots, drop the "
                "slot (walvault archive --slot " +
                    options.slot +
                    " --drop-slot), run again with --create-slot (add --allow-gap if the archive "
                    "must skip the missing WAL) and take a new base backup; consider raising "
                    "max_slot_wal_keep_size");
  }
  return false;
}

// The start of the oldest WAL segment of timeline tli in the server's pg_wal (an ordinary
// SQL connection with the same connection string; needs pg_monitor or superuser), or
// nothing when it cannot be asked.
std::optional<Lsn> oldest_server_wal(const std::string& conninfo, TimelineId tli,
                                     uint64_t segment_size) {
  std::vector<const char*> keys, values;
  if (!conninfo.empty()) {
    keys.push_back("dbname");
    values.push_back(conninfo.c_str());
  }
  keys.push_back("application_name");
  values.push_back("walvault");
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PgConnPtr conn(PQconnectdbParams(keys.data(), values.data(), 1));
  if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
    log::warning("could not ask the server for its oldest WAL: " + pg_error_message(conn.get()));
    return std::nullopt;
  }
  const std::string sql =
      "SELECT min(name) FROM pg_ls_waldir() WHERE name ~ '^" + tli.hex() + "[0-9A-F]{16}$'";
  PgResultPtr res(PQexec(conn.get(), sql.c_str()));
  if (!res || PQresultStatus(res.get()) != PGRES_TUPLES_OK || PQntuples(res.get()) != 1 ||
      PQgetisnull(res.get(), 0, 0)) {
    log::warning("could not ask the server for its oldest WAL: " +
                 (res ? pg_result_error(res.get()) : pg_error_message(conn.get())));
    return std::nullopt;
  }
  auto parsed = parse_wal_file_name(PQgetvalue(res.get(), 0, 0), segment_size);
  if (!parsed) return std::nullopt;
  return segment_start(parsed->segno, segment_size);
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
  int failed_attempts = 0;  // since the last progress
  bool reconnect_logged = false;
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
      const bool create_slot = check_slot(conn, options);
      // Checked on every connection: the server behind --dbname may have been replaced.
      Repository opened = Repository::open_or_create(options.repo, identity);
      if (!repo) {
        repo.emplace(std::move(opened));
        lock.emplace(RepoLock::acquire(*repo, kArchiverLockName, "walvault archive"));
      }
      if (!writer) writer = make_file_writer(options.io);
      if (create_slot) {
        conn.create_physical_slot(options.slot);
        log::info("created physical replication slot \"" + options.slot + "\"");
      }

      StartPoint start;
      if (explicit_start) {
        start = start_point_from(*repo, explicit_tli.value_or(server.timeline), *explicit_start);
      } else {
        start = find_start_point(*repo, conn, server, options.slot);
      }
      if (failed_attempts > 0 && !reconnect_logged) {
        reconnect_logged = true;
        log::info("connected again after " + std::to_string(failed_attempts) +
                  " failed attempt(s)");
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
      stream_options.stats = options.stats;
      sink.emplace(*repo, options.compression, *writer);
      WalReceiver receiver(conn, *repo, *sink, stream_options);
      StreamResult result;
      try {
        result = receiver.stream(start.timeline, start.lsn);
      } catch (const WalRemoved& e) {
        bytes_received += receiver.bytes_received();
        const TimelineId tli = sink->timeline();
        const Lsn gap_start = sink->position();
        const std::string where = gap_start.str() + " on timeline " + std::to_string(tli.value);
        if (!options.allow_gap) {
          throw Error("the server no longer has the WAL at " + where + " (" + e.what() +
                          "): archiving on would leave a gap in the archive",
                      "the archive is intact up to " + gap_start.str() +
                          "; the WAL after it is lost. Take a new base backup, then run again "
                          "with --allow-gap to record the gap and continue from the server's "
                          "oldest WAL; use --slot so that the server keeps what the archive "
                          "has not received");
        }
        const uint64_t seg = repo->segment_size();
        std::optional<Lsn> resume = oldest_server_wal(options.conninfo, tli, seg);
        if (!resume || *resume <= gap_start) {
          if (tli != server.timeline) {
            throw Error("the server no longer has the WAL at " + where +
                            " and cannot say where its WAL on that timeline begins",
                        "take a new base backup; archiving continues on the server's timeline "
                        "after moving the repository aside");
          }
          resume = segment_start(segment_of(conn.identify_system().xlogpos, seg), seg);
        }
        if (*resume <= gap_start) throw;  // a race with the server's checkpoint: let it fail
        RecordedGap gap{tli, gap_start, *resume, format_iso8601_utc(now()), e.what()};
        record_gap(*repo, gap);
        log::warning("GAP: the WAL from " + gap_start.str() + " to " + resume->str() +
                     " on timeline " + std::to_string(tli.value) +
                     " was removed by the server before it was archived and is lost; "
                     "recorded in " +
                     (repo->wal_dir(tli) / "gaps.json").string() + "; continuing at " +
                     resume->str() +
                     " (--allow-gap). Take a new base backup: recovery cannot cross the gap");
        explicit_start = *resume;
        explicit_tli = tli;
        continue;
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
      if (sink && sink->durable_lsn() > durable_before) {
        // Progress since the last failure: this is a new outage.
        backoff_ms = kFirstBackoffMs;
        failed_attempts = 0;
        reconnect_logged = false;
      }
      // An explicit start is consumed once: later attempts continue where this one ended.
      if (explicit_start && sink && sink->durable_lsn().valid()) {
        explicit_start = sink->durable_lsn();
        explicit_tli = sink->timeline();
      }
      // One warning per outage (until data flows again); the retries in between are
      // debug messages, so a server that is down for hours does not flood the log.
      const std::string reason = e.what();
      const std::string retry_in = std::to_string(backoff_ms / 1000.0).substr(0, 4) + " s";
      if (failed_attempts == 0) {
        log::warning(reason + "; reconnecting with backoff (first retry in " + retry_in +
                     ", then doubling up to " + std::to_string(options.max_backoff_ms / 1000) +
                     " s; further attempts of this outage are debug messages)");
      } else {
        log::debug(reason + "; attempt " + std::to_string(failed_attempts + 1) + ", retrying in " +
                   retry_in);
      }
      ++failed_attempts;
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

void record_gap(const Repository& repo, const RecordedGap& gap) {
  const fs::path path = repo.wal_dir(gap.timeline) / "gaps.json";
  // expire rewrites the file too (pitr/retention.h).
  const RepoLock lock = RepoLock::acquire_waiting(repo, kGapsLockName, "walvault expire");
  Json doc = Json::object();
  if (auto existing = read_file_if_exists(path)) doc = Json::parse(*existing);
  if (!doc.contains("gaps")) doc["gaps"] = Json::array();
  Json g = Json::object();
  g["timeline"] = gap.timeline.value;
  g["start_lsn"] = gap.start.str();
  g["end_lsn"] = gap.end.str();
  g["detected_at"] = gap.detected_at;
  g["reason"] = gap.reason;
  doc["gaps"].push_back(g);
  make_dirs(path.parent_path());
  write_file_durable(path, doc.dump(2) + "\n");
}

std::vector<RecordedGap> recorded_gaps(const Repository& repo, TimelineId tli) {
  std::vector<RecordedGap> out;
  auto text = read_file_if_exists(repo.wal_dir(tli) / "gaps.json");
  if (!text) return out;
  const Json doc = Json::parse(*text);
  for (const auto& g : doc.value("gaps", Json::array())) {
    RecordedGap r;
    r.timeline = TimelineId(g.value("timeline", tli.value));
    r.start = Lsn::parse(g.value("start_lsn", std::string())).value_or(Lsn());
    r.end = Lsn::parse(g.value("end_lsn", std::string())).value_or(Lsn());
    r.detected_at = g.value("detected_at", std::string());
    r.reason = g.value("reason", std::string());
    out.push_back(std::move(r));
  }
  return out;
}

size_t drop_recorded_gaps(const Repository& repo, TimelineId tli, std::optional<Lsn> keep_from) {
  const fs::path path = repo.wal_dir(tli) / "gaps.json";
  const RepoLock lock = RepoLock::acquire_waiting(repo, kGapsLockName, "walvault archive");
  auto text = read_file_if_exists(path);
  if (!text) return 0;
  Json doc = Json::parse(*text);
  Json kept = Json::array();
  size_t dropped = 0;
  for (const auto& g : doc.value("gaps", Json::array())) {
    const auto end = Lsn::parse(g.value("end_lsn", std::string()));
    if (end && (!keep_from || *end <= *keep_from)) {
      ++dropped;
    } else {
      kept.push_back(g);
    }
  }
  if (dropped == 0) return 0;
  if (kept.empty()) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      throw errno_error("could not remove \"" + path.string() + "\"", errno);
    }
    fsync_dir(path.parent_path());
  } else {
    doc["gaps"] = kept;
    write_file_durable(path, doc.dump(2) + "\n");
  }
  return dropped;
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
