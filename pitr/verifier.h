#pragma once
// restore --verify: start PostgreSQL on a freshly restored data directory, as its owner, on a
// private Unix socket directory and a free port (no TCP), wait until recovery stops at the
// planned target (or fails: then PostgreSQL's own FATAL/PANIC lines are the reason), check
// that every database answers, compare where recovery stopped with the plan, run the checks
// of a --verify-sql file (each query must return true), and stop the server with a fast
// shutdown. Every server setting it needs is given on the command line (-c ...), none is
// written into the data directory.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/fs.h"
#include "core/json.h"
#include "pitr/planner.h"
#include "pitr/restore_builder.h"

namespace walvault {

struct VerifyOptions {
  fs::path data_dir;
  RestoreOwner owner;
  std::optional<fs::path> pg_bindir;   // default: found for PG_VERSION's major (pg_bindir.h)
  std::vector<std::string> checks;     // queries that must each return true
  std::string check_source;            // the file they came from, for messages
  std::string dbname = "postgres";     // where the checks run
  std::chrono::seconds timeout{3600};  // for recovery to reach the target
};

struct VerifyCheck {
  std::string query;
  bool passed = false;
  std::string result;  // the value returned, or the error
};

struct VerifyReport {
  bool passed = false;
  std::string state;    // "promoted", "paused", "shut down at the target", "failed"
  std::string failure;  // why it did not pass (empty when passed)
  std::vector<std::string> server_errors;  // FATAL/PANIC lines (and walvault errors) of the log
  std::string stop_message;  // the server's "recovery stopping ..." line, when there is one
  bool stop_as_planned = false;
  std::string expected_stop;                    // describe(plan.stop)
  std::optional<std::string> last_replay_time;  // pg_last_xact_replay_timestamp(), UTC
  std::optional<std::string> last_replay_lsn;   // pg_last_wal_replay_lsn()
  std::vector<std::string> databases;           // every database that answered SELECT 1
  std::vector<VerifyCheck> checks;
  bool stopped_cleanly = false;
  std::string log_file;  // the server log, kept when verification failed
  std::string pg_bindir;
};

// Splits a --verify-sql file into queries: statements end with ';' at the end of a line;
// lines that start with "--" and blank lines are skipped. A usage error when it holds none.
std::vector<std::string> split_verify_sql(std::string_view text);

// Reads the "recovery stopping ..." line the plan expects; returns true when `line` (the
// message only) is the stop the plan describes.
bool stop_message_matches(const RecoveryStop& stop, std::string_view message);

// Starts, checks and stops the server. Never throws for what the server does (that goes into
// the report); throws Error for what keeps it from starting the server at all.
VerifyReport verify_restore(const RecoveryPlan& plan, const VerifyOptions& options);

Json verify_to_json(const VerifyReport& report);
std::string verify_to_text(const VerifyReport& report);

}  // namespace walvault
