// `walvault check` (pitr/health_check.h).

#include "pitr/health_check.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "core/backup_info.h"
#include "core/error.h"
#include "core/pg.h"
#include "core/wal_inventory.h"
#include "snapshot/snapshot_manifest.h"
#include "walarchiver/replication_connection.h"

namespace walvault {
namespace {

using State = HealthCheck::State;

std::string first_line(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

std::string fixed(double v, int decimals = 1) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// "24" or "0.5": a limit as the user typed it (more or less).
std::string limit_text(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

double hours_between(Timestamp from, Timestamp to) {
  return double(to.unix_us - from.unix_us) / 3600e6;
}

// An ordinary SQL connection with the user's connection string (which wins over our
// defaults: application_name, and a connect_timeout so that a dead host does not hang cron).
PgConnPtr connect_sql(const std::string& conninfo, std::string& error) {
  std::vector<const char*> keys{"application_name", "connect_timeout"};
  std::vector<const char*> values{"walvault-check", "10"};
  if (!conninfo.empty()) {
    keys.push_back("dbname");
    values.push_back(conninfo.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PgConnPtr conn(PQconnectdbParams(keys.data(), values.data(), 1));
  if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
    error = first_line(pg_error_message(conn.get()));
    return nullptr;
  }
  return conn;
}

// Runs a query with text parameters; nullptr (error set) when it fails.
PgResultPtr query(PGconn* conn, const std::string& sql, const std::vector<std::string>& params,
                  std::string& error) {
  std::vector<const char*> p;
  for (const auto& s : params) p.push_back(s.c_str());
  PgResultPtr res(
      PQexecParams(conn, sql.c_str(), int(p.size()), nullptr, p.data(), nullptr, nullptr, 0));
  if (!res || PQresultStatus(res.get()) != PGRES_TUPLES_OK) {
    error = first_line(res ? pg_result_error(res.get()) : pg_error_message(conn));
    return nullptr;
  }
  return res;
}

std::optional<std::string> value_at(const PGresult* res, int row, int col) {
  if (PQgetisnull(res, row, col)) return std::nullopt;
  return std::string(PQgetvalue(res, row, col));
}

// The newest modification time of the files of wal/<TLI>/: when the archive last received
// WAL of that timeline.
std::optional<Timestamp> newest_wal_write(const Repository& repo, TimelineId tli) {
  std::optional<Timestamp> newest;
  for (const auto& f : repo.list_wal(tli)) {
    struct stat st;
    if (::stat(f.path.c_str(), &st) != 0) continue;
    const Timestamp t{int64_t(st.st_mtim.tv_sec) * 1'000'000 + st.st_mtim.tv_nsec / 1000};
    if (!newest || t > *newest) newest = t;
  }
  return newest;
}

}  // namespace

bool HealthReport::healthy() const {
  return std::none_of(checks.begin(), checks.end(),
                      [](const HealthCheck& c) { return c.state == State::failed; });
}

std::string HealthReport::to_text() const {
  std::string out;
  size_t ok = 0;
  for (const auto& c : checks) {
    if (c.state == State::failed) out += "CRITICAL " + c.name + ": " + c.message + "\n";
    if (c.state == State::ok) ++ok;
  }
  if (!out.empty()) return out;
  out = "OK: " + std::to_string(ok) + " checks passed";
  if (lag_bytes) out += "; archive lag " + std::to_string(*lag_bytes) + " bytes";
  if (lag_seconds) out += ", " + fixed(*lag_seconds) + " s";
  if (newest_backup_stop) {
    out += "; newest backup " + *newest_backup_id + " " +
           fixed(hours_between(*newest_backup_stop, now)) + " h old";
  }
  if (!newest_snapshots.empty()) {
    Timestamp oldest = newest_snapshots.front().time;
    for (const auto& s : newest_snapshots) oldest = std::min(oldest, s.time);
    out += "; snapshots at most " + fixed(hours_between(oldest, now)) + " h old";
  }
  return out + "\n";
}

Json HealthReport::to_json() const {
  Json j;
  j["healthy"] = healthy();
  j["now"] = format_iso8601_utc(now);
  j["checks"] = Json::array();
  for (const auto& c : checks) {
    const char* state = c.state == State::ok       ? "ok"
                        : c.state == State::failed ? "failed"
                                                   : "skipped";
    j["checks"].push_back({{"name", c.name}, {"state", state}, {"message", c.message}});
  }
  j["server_lsn"] = server_lsn ? Json(server_lsn->str()) : Json();
  j["server_timeline"] = server_timeline ? Json(server_timeline->value) : Json();
  j["archive_end_lsn"] = archive_end_lsn ? Json(archive_end_lsn->str()) : Json();
  j["lag_bytes"] = lag_bytes ? Json(*lag_bytes) : Json();
  j["lag_seconds"] = lag_seconds ? Json(*lag_seconds) : Json();
  j["slot_active"] = slot_active ? Json(*slot_active) : Json();
  j["slot_wal_status"] = slot_wal_status ? Json(*slot_wal_status) : Json();
  if (newest_backup_stop) {
    j["newest_backup"] = {{"id", *newest_backup_id},
                          {"stop_time", format_iso8601_utc(*newest_backup_stop)},
                          {"age_hours", hours_between(*newest_backup_stop, now)}};
  } else {
    j["newest_backup"] = Json();
  }
  j["newest_snapshots"] = Json::array();
  for (const auto& s : newest_snapshots) {
    j["newest_snapshots"].push_back({{"name", s.name},
                                     {"id", s.id},
                                     {"time", format_iso8601_utc(s.time)},
                                     {"age_hours", hours_between(s.time, now)}});
  }
  return j;
}

HealthReport run_health_check(const Repository& repo, const std::string& conninfo,
                              const HealthLimits& limits) {
  HealthReport r;
  r.now = now();
  auto add = [&](std::string name, State state, std::string message = {}) {
    r.checks.push_back({std::move(name), state, std::move(message)});
  };

  // ---- the server: an ordinary connection, then a replication connection
  std::string error;
  PgConnPtr sql = connect_sql(conninfo, error);
  if (!sql) {
    add("connection", State::failed, "could not connect to the server: " + error);
  } else {
    add("connection", State::ok);
  }
  std::string pid_of_slot;  // the walsender streaming from --slot
  if (!sql) {
    add("replication", State::skipped, "no connection");
  } else {
    try {
      ReplicationConnection rc = ReplicationConnection::connect(conninfo, "walvault-check");
      const SystemInfo sys = rc.identify_system();
      r.server_lsn = sys.xlogpos;
      r.server_timeline = sys.timeline;
      if (sys.system_identifier != repo.identity().system_identifier) {
        add("replication", State::failed,
            "the server is database system " + sys.system_identifier +
                ", the repository belongs to " + repo.identity().system_identifier);
      } else {
        add("replication", State::ok);
      }
    } catch (const Error& e) {
      std::string what = first_line(e.what());
      static constexpr std::string_view kPrefix = "could not connect to the server: ";
      if (what.starts_with(kPrefix)) what = what.substr(kPrefix.size());
      add("replication", State::failed, "could not open a replication connection: " + what);
    }
  }

  if (!limits.slot.empty()) {
    if (!sql) {
      add("slot", State::skipped, "no connection");
    } else if (PgResultPtr res = query(sql.get(),
                                       "SELECT slot_type, active, wal_status, active_pid "
                                       "FROM pg_replication_slots WHERE slot_name = $1",
                                       {limits.slot}, error);
               !res) {
      add("slot", State::failed, "could not read pg_replication_slots: " + error);
    } else if (PQntuples(res.get()) == 0) {
      add("slot", State::failed, "replication slot \"" + limits.slot + "\" does not exist");
    } else {
      const std::string type = value_at(res.get(), 0, 0).value_or("");
      r.slot_active = value_at(res.get(), 0, 1).value_or("f") == "t";
      r.slot_wal_status = value_at(res.get(), 0, 2);
      pid_of_slot = value_at(res.get(), 0, 3).value_or("");
      std::vector<std::string> problems;
      if (type != "physical") problems.push_back("it is a " + type + " slot");
      if (r.slot_wal_status == "lost") {
        problems.push_back(
            "its WAL is lost (wal_status lost): the server removed WAL the archive had not "
            "received; run walvault archive --allow-gap and take a new backup");
      } else if (r.slot_wal_status == "unreserved") {
        problems.push_back(
            "wal_status is unreserved: the server will remove WAL the archive has not received "
            "at its next checkpoint (max_slot_wal_keep_size)");
      }
      if (!*r.slot_active)
        problems.push_back("it is not active: no walvault archive streams from it");
      if (problems.empty()) {
        add("slot", State::ok);
      } else {
        std::string msg = "replication slot \"" + limits.slot + "\": ";
        for (size_t i = 0; i < problems.size(); ++i) msg += (i ? "; " : "") + problems[i];
        add("slot", State::failed, msg);
      }
    }
  }

  // ---- archive lag
  if (!r.server_lsn) {
    add("lag_bytes", State::skipped, "the server's WAL position is not known");
    add("lag_seconds", State::skipped, "the server's WAL position is not known");
  } else {
    const TimelineWal wal = scan_timeline_wal(repo, *r.server_timeline);
    if (wal.ranges.empty()) {
      add("lag_bytes", State::failed,
          "the archive holds no WAL of the server's timeline " +
              std::to_string(r.server_timeline->value) + " (is walvault archive running?)");
      add("lag_seconds", State::skipped, "no WAL of the server's timeline in the archive");
    } else {
      r.archive_end_lsn = wal.ranges.back().end;
      r.lag_bytes = *r.server_lsn > *r.archive_end_lsn ? *r.server_lsn - *r.archive_end_lsn : 0;
      const std::string where = " (server at " + r.server_lsn->str() + ", archive ends at " +
                                r.archive_end_lsn->str() + ")";
      if (limits.max_lag_bytes && *r.lag_bytes > *limits.max_lag_bytes) {
        add("lag_bytes", State::failed,
            "the archive is " + std::to_string(*r.lag_bytes) + " bytes behind the server" + where +
                ", limit " + std::to_string(*limits.max_lag_bytes));
      } else {
        add("lag_bytes", State::ok);
      }

      // Seconds: 0 when caught up. Behind while an archiver streams: the server's own
      // measure (pg_stat_replication.flush_lag; NULL once it has caught up and gone idle).
      // Behind with nobody streaming: how long ago the archive last received WAL.
      std::string how;
      if (*r.lag_bytes == 0) {
        r.lag_seconds = 0;
      } else if (sql) {
        const std::string where_sql = pid_of_slot.empty()
                                          ? "application_name = 'walvault' AND state = 'streaming'"
                                          : "pid = " + pid_of_slot;
        PgResultPtr res = query(sql.get(),
                                "SELECT count(*), coalesce(max(extract(epoch FROM flush_lag)), 0) "
                                "FROM pg_stat_replication WHERE " +
                                    where_sql,
                                {}, error);
        if (res && std::string(PQgetvalue(res.get(), 0, 0)) != "0") {
          r.lag_seconds = std::strtod(PQgetvalue(res.get(), 0, 1), nullptr);
          how = "flush lag reported by the server";
        }
      }
      if (!r.lag_seconds) {
        if (auto last = newest_wal_write(repo, *r.server_timeline)) {
          r.lag_seconds = std::max(0.0, double(r.now.unix_us - last->unix_us) / 1e6);
          how =
              "no archiver streams; the archive last received WAL at " + format_iso8601_utc(*last);
        }
      }
      if (!r.lag_seconds) {
        add("lag_seconds", State::skipped, "could not be measured");
      } else if (limits.max_lag_seconds && *r.lag_seconds > *limits.max_lag_seconds) {
        add("lag_seconds", State::failed,
            "the archive is " + fixed(*r.lag_seconds) + " s behind the server (" + how +
                "), limit " + limit_text(*limits.max_lag_seconds) + " s");
      } else {
        add("lag_seconds", State::ok);
      }
    }
  }

  // ---- the repository: backups and snapshots
  std::vector<std::string> problems;
  const std::vector<BackupInfo> backups = load_backups(repo, &problems);
  for (const auto& b : backups) {
    if (b.status != BackupStatus::complete) continue;
    if (!r.newest_backup_stop || b.stop_time > *r.newest_backup_stop) {
      r.newest_backup_stop = b.stop_time;
      r.newest_backup_id = b.id;
    }
  }
  if (limits.max_backup_age_hours) {
    const double limit = *limits.max_backup_age_hours;
    if (!r.newest_backup_stop) {
      add("backup_age", State::failed, "the repository holds no complete backup");
    } else if (const double age = hours_between(*r.newest_backup_stop, r.now); age > limit) {
      add("backup_age", State::failed,
          "the newest complete backup " + *r.newest_backup_id + " stopped " + fixed(age) +
              " h ago, limit " + limit_text(limit) + " h");
    } else {
      add("backup_age", State::ok);
    }
  }

  std::vector<std::string> snapshot_problems;
  std::map<std::string, HealthReport::SnapshotAge> newest;
  for (const auto& s : load_snapshots(repo, &snapshot_problems)) {
    auto it = newest.find(s.name);
    if (it == newest.end() || s.time > it->second.time) newest[s.name] = {s.name, s.id, s.time};
  }
  for (auto& [name, s] : newest) r.newest_snapshots.push_back(s);
  if (limits.max_snapshot_age_hours) {
    const double limit = *limits.max_snapshot_age_hours;
    if (r.newest_snapshots.empty()) {
      add("snapshot_age", State::failed, "the repository holds no snapshot");
    }
    for (const auto& s : r.newest_snapshots) {
      const double age = hours_between(s.time, r.now);
      if (age > limit) {
        add("snapshot_age", State::failed,
            "the newest " + s.name + " snapshot " + s.id + " was taken " + fixed(age) +
                " h ago, limit " + limit_text(limit) + " h");
      } else {
        add("snapshot_age", State::ok);
      }
    }
  }
  return r;
}

}  // namespace walvault
