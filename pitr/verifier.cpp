#include "pitr/verifier.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "core/pg.h"
#include "pitr/pg_bindir.h"

namespace walvault {
namespace {

using Clock = std::chrono::steady_clock;

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\n' || s[b] == '\r')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\n' || s[e - 1] == '\r'))
    --e;
  return std::string(s.substr(b, e - b));
}

// The server binaries of the restored directory's own major (PG_VERSION): pitr/pg_bindir.h.
fs::path find_bindir(const VerifyOptions& o) {
  const auto major = data_dir_major(o.data_dir);
  if (!major) {
    throw Error("cannot read the major version from " + (o.data_dir / "PG_VERSION").string(),
                "the restored directory is incomplete; restore it again");
  }
  return require_pg_bindir(PgBindirSearch{*major, o.pg_bindir});
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 54321;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 54321;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

// A private directory for the socket, the server log and the pg_hba.conf of the check,
// owned by the server's user, mode 0700. Removed at the end unless kept.
class PrivateDir {
 public:
  explicit PrivateDir(const RestoreOwner& owner) {
    std::string base = "/tmp";
    if (const char* t = std::getenv("TMPDIR"); t && *t && std::strlen(t) < 60) base = t;
    std::string tmpl = base + "/walvault-verify-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw errno_error("cannot create a directory in " + base, errno);
    path_ = tmpl;
    if (::geteuid() == 0 && ::chown(path_.c_str(), owner.uid, owner.gid) != 0) {
      throw errno_error("chown " + path_.string(), errno);
    }
  }
  ~PrivateDir() {
    if (keep_) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  void keep_only(const fs::path& file) {
    keep_ = true;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(path_, ec)) {
      if (e.path() != file) fs::remove_all(e.path(), ec);
    }
  }

 private:
  fs::path path_;
  bool keep_ = false;
};

// The postmaster, our child. Stopped at the latest when this goes away.
class Server {
 public:
  Server() = default;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server() {
    if (!running()) return;
    ::kill(pid_, SIGQUIT);  // immediate shutdown: only when something went wrong
    if (!wait_exit(std::chrono::seconds(30))) {
      ::kill(pid_, SIGKILL);
      wait_exit(std::chrono::seconds(5));
    }
  }

  void start(const std::vector<std::string>& args, const fs::path& log_file,
             const RestoreOwner& owner) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const int log_fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0) throw errno_error("open " + log_file.string(), errno);
    if (::geteuid() == 0) (void)::fchown(log_fd, owner.uid, owner.gid);
    const bool switch_user = ::geteuid() == 0 && owner.uid != 0;
    const pid_t pid = ::fork();
    if (pid < 0) {
      ::close(log_fd);
      throw errno_error("fork", errno);
    }
    if (pid == 0) {
      // Only async-signal-safe calls from here on.
      const int null_fd = ::open("/dev/null", O_RDONLY);
      if (null_fd >= 0) ::dup2(null_fd, 0);
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
      ::setsid();  // a Ctrl-C at the terminal is for walvault, which stops the server itself
      if (switch_user) {
        gid_t gid = owner.gid;
        if (::setgroups(1, &gid) != 0 || ::setgid(owner.gid) != 0 || ::setuid(owner.uid) != 0) {
          static const char msg[] = "walvault: error: cannot switch to the owner's user id\n";
          (void)!::write(2, msg, sizeof msg - 1);
          ::_exit(127);
        }
      }
      ::execv(argv[0], argv.data());
      static const char msg[] = "walvault: error: cannot execute postgres\n";
      (void)!::write(2, msg, sizeof msg - 1);
      ::_exit(127);
    }
    ::close(log_fd);
    pid_ = pid;
    exited_ = false;
    status_ = 0;
  }

  bool running() const { return pid_ > 0 && !exited_; }
  // Reaps the server if it has exited; true then.
  bool poll_exit() {
    if (!running()) return exited_;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      status_ = status;
    }
    return exited_;
  }
  bool wait_exit(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!poll_exit()) {
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return true;
  }
  // Fast shutdown (what pg_ctl stop -m fast sends); true when it exits with status 0.
  bool stop_fast(std::chrono::seconds timeout) {
    if (!running()) return clean_exit();
    ::kill(pid_, SIGINT);
    if (!wait_exit(timeout)) return false;
    return clean_exit();
  }
  bool clean_exit() const { return exited_ && WIFEXITED(status_) && WEXITSTATUS(status_) == 0; }
  std::string exit_text() const {
    if (WIFEXITED(status_)) return "exit status " + std::to_string(WEXITSTATUS(status_));
    if (WIFSIGNALED(status_)) return "signal " + std::to_string(WTERMSIG(status_));
    return "status " + std::to_string(status_);
  }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
};

struct Connector {
  std::string host;
  std::string port;
  std::vector<std::string> users;  // tried in order until one exists
  std::string last_error;

  PgConnPtr connect(const std::string& dbname) {
    for (size_t i = 0; i < users.size(); ++i) {
      const char* keys[] = {"host", "port", "dbname", "user", "connect_timeout", "application_name",
                            nullptr};
      const char* values[] = {host.c_str(), port.c_str(),      dbname.c_str(), users[i].c_str(),
                              "10",         "walvault-verify", nullptr};
      PgConnPtr c(PQconnectdbParams(keys, values, 0));
      if (c && PQstatus(c.get()) == CONNECTION_OK) {
        if (i) std::rotate(users.begin(), users.begin() + long(i), users.begin() + long(i) + 1);
        return c;
      }
      last_error = pg_error_message(c.get());
      if (last_error.find("role \"") == std::string::npos ||
          last_error.find("does not exist") == std::string::npos) {
        break;  // not a question of the user name (still starting up, say)
      }
    }
    return nullptr;
  }
};

// One row, one column, or nullopt (then error says why).
std::optional<std::string> query_value(PGconn* c, const std::string& sql, std::string& error) {
  PgResultPtr r(PQexec(c, sql.c_str()));
  if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    error = r ? pg_result_error(r.get()) : pg_error_message(c);
    return std::nullopt;
  }
  if (PQntuples(r.get()) != 1 || PQnfields(r.get()) != 1) {
    error = "returned " + std::to_string(PQntuples(r.get())) + " rows and " +
            std::to_string(PQnfields(r.get())) + " columns, not one value";
    return std::nullopt;
  }
  if (PQgetisnull(r.get(), 0, 0)) return std::string("NULL");
  return std::string(PQgetvalue(r.get(), 0, 0));
}

std::vector<std::string> log_lines(const fs::path& log_file) {
  std::vector<std::string> out;
  std::stringstream ss(read_file_if_exists(log_file).value_or(""));
  std::string line;
  while (std::getline(ss, line)) out.push_back(line);
  return out;
}

// The message after "FATAL:  " (or PANIC), else the line.
std::string message_of(const std::string& line) {
  for (const char* level : {"PANIC:", "FATAL:", "walvault: error:"}) {
    const size_t at = line.find(level);
    if (at != std::string::npos)
      return trim(std::string_view(line).substr(at + std::strlen(level)));
  }
  return line;
}

// FATAL lines the server logs for our own connection attempts while it starts up or stops:
// not the reason for anything.
bool connection_noise(const std::string& line) {
  for (const char* m : {"the database system is starting up", "not yet accepting connections",
                        "the database system is shutting down",
                        "consistent recovery state has not been yet reached",
                        "terminating connection due to administrator command"}) {
    if (line.find(m) != std::string::npos) return true;
  }
  return false;
}

std::string expected_state(const RecoveryPlan& plan) {
  if (plan.target.kind == TargetKind::latest) return "promoted";
  switch (plan.target.action) {
    case TargetAction::promote:
      return "promoted";
    case TargetAction::pause:
      return "paused";
    case TargetAction::shutdown:
      return "shut down at the target";
  }
  return "promoted";
}

}  // namespace

std::vector<std::string> split_verify_sql(std::string_view text) {
  std::vector<std::string> out;
  std::string current;
  std::stringstream ss{std::string(text)};
  std::string line;
  while (std::getline(ss, line)) {
    const std::string t = trim(line);
    if (t.empty() || t.starts_with("--")) continue;
    if (!current.empty()) current += "\n";
    current += line;
    if (t.ends_with(";")) {
      std::string q = trim(current);
      q.pop_back();
      q = trim(q);
      if (!q.empty()) out.push_back(q);
      current.clear();
    }
  }
  if (!trim(current).empty()) out.push_back(trim(current));
  return out;
}

bool stop_message_matches(const RecoveryStop& stop, std::string_view m) {
  auto has = [&](const std::string& s) { return m.find(s) != std::string_view::npos; };
  switch (stop.where) {
    case RecoveryStop::Where::end_of_wal:
      return m.empty();
    case RecoveryStop::Where::at_consistency:
      return has("recovery stopping after reaching consistency");
    case RecoveryStop::Where::at_lsn:
      return has("WAL location (LSN)");
    case RecoveryStop::Where::before_record:
    case RecoveryStop::Where::after_record: {
      if (!stop.record) return !m.empty();
      const WalEvent& e = *stop.record;
      if (!e.is_xact()) return has("at restore point \"" + e.name + "\"");
      const std::string word =
          stop.where == RecoveryStop::Where::before_record ? "before " : "after ";
      return has("recovery stopping " + word) &&
             has(" of transaction " + std::to_string(e.xid) + ",");
    }
  }
  return false;
}

VerifyReport verify_restore(const RecoveryPlan& plan, const VerifyOptions& o) {
  VerifyReport report;
  report.expected_stop = describe(plan.stop);
  if (::geteuid() != 0 && ::geteuid() != o.owner.uid) {
    throw Error("--verify must run as root or as the owner of the restored directory (" +
                o.owner.name + ")");
  }
  const int major = data_dir_major(o.data_dir).value_or(0);
  const fs::path bindir = find_bindir(o);
  report.pg_bindir = bindir.string();
  PrivateDir tmp(o.owner);
  const fs::path log_file = tmp.path() / "postgresql.log";
  const fs::path hba = tmp.path() / "pg_hba.conf";
  // Only the owner (and root) can reach the socket directory: trust is safe there.
  write_file_durable(hba, "local all all trust\n");
  if (::geteuid() == 0) (void)::chown(hba.c_str(), o.owner.uid, o.owner.gid);
  const int port = free_port();
  auto c = [](const std::string& k, const std::string& v) { return k + "=" + v; };
  std::vector<std::string> args = {
      (bindir / "postgres").string(),
      "-D",
      o.data_dir.string(),
      "-c",
      c("listen_addresses", ""),
      "-c",
      c("port", std::to_string(port)),
      "-c",
      c("unix_socket_directories", tmp.path().string()),
      "-c",
      c("unix_socket_permissions", "0700"),
      "-c",
      c("hba_file", hba.string()),
      "-c",
      c("logging_collector", "off"),
      "-c",
      c("log_destination", "stderr"),
      "-c",
      c("hot_standby", "on"),
      "-c",
      c("external_pid_file", ""),
      // Nothing of the check leaves the machine: WAL written after a promotion waits
      // (.ready) for the service's own archiving.
      "-c",
      c("archive_command", ""),
  };
  // archive_library exists from PostgreSQL 15; 14 refuses to start on an unknown setting.
  if (major >= 15) {
    args.push_back("-c");
    args.push_back(c("archive_library", ""));
  }
  Connector connector{tmp.path().string(), std::to_string(port), {o.owner.name}, {}};
  if (o.owner.name != "postgres") connector.users.push_back("postgres");

  Server server;
  server.start(args, log_file, o.owner);
  const std::string want = expected_state(plan);
  const auto deadline = Clock::now() + o.timeout;
  PgConnPtr conn;
  std::string state;
  // Until the server settles: promoted, paused, exited, or out of time.
  auto wait_settled = [&] {
    while (true) {
      if (server.poll_exit()) {
        state = "exited";
        break;
      }
      if (!conn) conn = connector.connect("postgres");
      if (conn) {
        std::string err;
        auto v = query_value(conn.get(),
                             "select case when not pg_is_in_recovery() then 'promoted' when "
                             "pg_get_wal_replay_pause_state() = 'paused' then 'paused' else "
                             "'recovering' end",
                             err);
        if (!v) {
          conn.reset();
        } else if (*v == "promoted" || *v == "paused") {
          state = *v;
          break;
        }
      }
      if (Clock::now() >= deadline) {
        state = "timeout";
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  };
  wait_settled();

  const auto lines = log_lines(log_file);
  for (const auto& l : lines) {
    if (l.find("recovery stopping ") != std::string::npos) {
      report.stop_message = trim(l.substr(l.find("recovery stopping ")));
    }
    if ((l.find("FATAL:") != std::string::npos || l.find("PANIC:") != std::string::npos ||
         l.find("walvault: error:") != std::string::npos) &&
        !connection_noise(l)) {
      if (report.server_errors.size() < 20) report.server_errors.push_back(trim(l));
    }
  }
  report.stop_as_planned = stop_message_matches(plan.stop, report.stop_message);

  auto fail = [&](std::string why) {
    report.passed = false;
    if (report.failure.empty()) report.failure = std::move(why);
  };
  if (state == "exited") {
    if (want == "shut down at the target" && server.clean_exit() && !report.stop_message.empty()) {
      report.state = want;
      report.stopped_cleanly = true;
      // The data must still be proven: start again, paused this time (the command line beats
      // postgresql.auto.conf, which keeps the user's shutdown): recovery replays to the same
      // target, where the checks run; the fast stop afterwards leaves the directory as a
      // shutdown would.
      std::vector<std::string> paused_args = args;
      paused_args.push_back("-c");
      paused_args.push_back("recovery_target_action=pause");
      server.start(paused_args, log_file, o.owner);
      conn.reset();
      state.clear();
      wait_settled();
      if (state != "paused") {
        fail("restarted to run the checks, the server did not pause at the target again (" +
             (state == "exited" ? "it stopped: " + server.exit_text() : state) + ")");
      }
    } else {
      report.state = "failed";
      // The first PANIC, else the first FATAL (the startup process's, which ends recovery).
      std::string reason;
      for (const char* level : {"PANIC:", "FATAL:"}) {
        for (const auto& l : report.server_errors) {
          if (reason.empty() && l.find(level) != std::string::npos) reason = message_of(l);
        }
      }
      if (reason.empty() && !report.server_errors.empty())
        reason = message_of(report.server_errors[0]);
      if (reason.empty()) reason = "no FATAL or PANIC line in its log";
      fail("PostgreSQL stopped (" + server.exit_text() +
           ") before recovery reached the target: " + reason);
    }
  } else if (state == "timeout") {
    report.state = "failed";
    fail("recovery did not reach the target within " + std::to_string(o.timeout.count()) + " s" +
         (connector.last_error.empty() ? ""
                                       : " (last connection error: " + connector.last_error + ")"));
  } else {
    report.state = state;
    if (state != want) fail("the server is " + state + ", the plan says " + want);
  }

  if (conn) {
    std::string err;
    if (auto v = query_value(conn.get(),
                             "select to_char(pg_last_xact_replay_timestamp() at time zone 'UTC', "
                             "'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '+00:00'",
                             err);
        v && *v != "NULL") {
      report.last_replay_time = *v;
    }
    if (auto v = query_value(conn.get(), "select pg_last_wal_replay_lsn()::text", err);
        v && *v != "NULL") {
      report.last_replay_lsn = *v;
    }
    // Every database that accepts connections must answer.
    PgResultPtr r(
        PQexec(conn.get(), "select datname from pg_database where datallowconn order by datname"));
    std::vector<std::string> names;
    if (r && PQresultStatus(r.get()) == PGRES_TUPLES_OK) {
      for (int i = 0; i < PQntuples(r.get()); ++i) names.emplace_back(PQgetvalue(r.get(), i, 0));
    } else {
      fail("the list of databases cannot be read: " + pg_result_error(r.get()));
    }
    for (const auto& db : names) {
      PgConnPtr dc = connector.connect(db);
      std::string e;
      if (!dc || query_value(dc.get(), "select 1", e) != std::optional<std::string>("1")) {
        fail("database \"" + db + "\" does not answer: " + (dc ? e : connector.last_error));
      } else {
        report.databases.push_back(db);
      }
    }
    if (!report.stop_as_planned) {
      fail("recovery stopped elsewhere than planned: the server says \"" +
           (report.stop_message.empty() ? std::string("(no stop line)") : report.stop_message) +
           "\", the plan says " + report.expected_stop);
    }
    if (!o.checks.empty()) {
      PgConnPtr dc = connector.connect(o.dbname);
      if (!dc) {
        fail("cannot connect to database \"" + o.dbname +
             "\" for the checks: " + connector.last_error);
      }
      for (const auto& q : o.checks) {
        VerifyCheck check{q, false, {}};
        if (dc) {
          std::string e;
          auto v = query_value(dc.get(), q, e);
          check.result = v ? *v : e;
          check.passed = v && *v == "t";
        } else {
          check.result = "not run";
        }
        if (!check.passed) {
          fail("check failed: " + q + " (returned " + check.result + ")");
        }
        report.checks.push_back(std::move(check));
      }
    }
    conn.reset();
  }

  if (server.running()) {
    report.stopped_cleanly = server.stop_fast(std::chrono::seconds(300));
    if (!report.stopped_cleanly) fail("the server did not shut down cleanly (fast shutdown)");
  } else if (report.state != "shut down at the target") {
    report.stopped_cleanly = false;
  }
  // wal-get's prefetch spool (a pause or shutdown leaves segments fetched ahead in it; the
  // prefetcher exits when it sees the spool gone).
  {
    std::error_code ec;
    fs::remove_all(o.data_dir / "pg_wal" / "walvault-prefetch", ec);
  }
  if (report.failure.empty()) {
    report.passed = true;
  } else {
    tmp.keep_only(log_file);
    report.log_file = log_file.string();
  }
  return report;
}

Json verify_to_json(const VerifyReport& r) {
  Json j;
  j["passed"] = r.passed;
  j["state"] = r.state;
  j["pg_bindir"] = r.pg_bindir.empty() ? Json(nullptr) : Json(r.pg_bindir);
  j["failure"] = r.failure.empty() ? Json(nullptr) : Json(r.failure);
  j["server_errors"] = r.server_errors;
  j["stop"] = {{"server", r.stop_message.empty() ? Json(nullptr) : Json(r.stop_message)},
               {"planned", r.expected_stop},
               {"as_planned", r.stop_as_planned}};
  j["last_replay"] = {{"time", r.last_replay_time ? Json(*r.last_replay_time) : Json(nullptr)},
                      {"lsn", r.last_replay_lsn ? Json(*r.last_replay_lsn) : Json(nullptr)}};
  j["databases"] = r.databases;
  j["checks"] = Json::array();
  for (const auto& c : r.checks) {
    j["checks"].push_back({{"query", c.query}, {"passed", c.passed}, {"result", c.result}});
  }
  j["stopped_cleanly"] = r.stopped_cleanly;
  j["log_file"] = r.log_file.empty() ? Json(nullptr) : Json(r.log_file);
  return j;
}

std::string verify_to_text(const VerifyReport& r) {
  std::ostringstream out;
  out << "verify           " << (r.passed ? "PASSED" : "FAILED") << "\n";
  out << "server state     " << r.state << "\n";
  if (!r.pg_bindir.empty()) out << "server binaries  " << r.pg_bindir << "\n";
  out << "recovery stopped "
      << (r.stop_message.empty() ? std::string("(no stop line in the server log)") : r.stop_message)
      << (r.stop_as_planned ? " (as planned)" : "") << "\n";
  out << "planned stop     " << r.expected_stop << "\n";
  if (r.last_replay_time || r.last_replay_lsn) {
    out << "last replayed    transaction at " << r.last_replay_time.value_or("(none)")
        << ", WAL up to " << r.last_replay_lsn.value_or("(unknown)") << "\n";
  }
  if (!r.databases.empty()) {
    out << "databases        ";
    for (size_t i = 0; i < r.databases.size(); ++i) out << (i ? ", " : "") << r.databases[i];
    out << ": all answer\n";
  }
  for (const auto& c : r.checks) {
    out << "check            " << (c.passed ? "ok    " : "FAILED") << " " << c.query;
    if (!c.passed) out << " (returned " << c.result << ")";
    out << "\n";
  }
  for (const auto& e : r.server_errors) out << "server log       " << e << "\n";
  if (!r.failure.empty()) out << "failure          " << r.failure << "\n";
  if (!r.log_file.empty()) out << "server log file  " << r.log_file << "\n";
  out << "shutdown         " << (r.stopped_cleanly ? "clean" : "NOT clean") << "\n";
  return out.str();
}

}  // namespace walvault
