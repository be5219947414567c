// walvault backup: options only; the work is basebackup/backup_runner.

#include <signal.h>

#include <atomic>
#include <iostream>

#include "basebackup/backup_runner.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "snapshot/snapshot_writer.h"

namespace walvault::cli {
namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) {
  g_stop = true;
}

// SIGINT/SIGTERM end the backup cleanly: it is marked failed instead of staying "running".
void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a poll() in progress returns at once
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

}  // namespace

int run_backup(const Args& args) {
  po::options_description desc("options");
  add_repo_option(desc);
  desc.add_options()("dbname,d", po::value<std::string>()->default_value(""),
                     "libpq connection string or URI (default: PG* environment variables)")(
      "label", po::value<std::string>()->default_value(""),
      "label of the backup (default: its id)")(
      "checkpoint", po::value<std::string>()->default_value("spread"),
      "fast: checkpoint at once; spread: let the server spread it out (no I/O spike)")(
      "wal-timeout-s", po::value<int>()->default_value(120),
      "seconds to wait for a running walvault archive to archive the backup's WAL")(
      "dir", po::value<std::vector<std::string>>(),
      "NAME=PATH: snapshot directory PATH under NAME with the backup (repeatable)")(
      "exclude", po::value<std::vector<std::string>>(),
      "GLOB: with --dir, leave out entries matching it (repeatable)");
  po::variables_map vm;
  if (!parse_options("backup",
                     "--repo DIR --dbname CONNSTR [--label TEXT] [--checkpoint fast|spread] "
                     "[--wal-timeout-s N] [--dir NAME=PATH ...] [--exclude GLOB ...]",
                     desc, args, vm)) {
    return 0;
  }
  BackupOptions o;
  o.repo = repo_option(vm);
  o.conninfo = vm["dbname"].as<std::string>();
  o.label = vm["label"].as<std::string>();
  const std::string checkpoint = vm["checkpoint"].as<std::string>();
  if (checkpoint == "fast") {
    o.checkpoint = CheckpointMode::fast;
  } else if (checkpoint == "spread") {
    o.checkpoint = CheckpointMode::spread;
  } else {
    throw usage_error("invalid --checkpoint \"" + checkpoint + "\"", "use fast or spread");
  }
  o.wal_timeout_s = vm["wal-timeout-s"].as<int>();
  if (o.wal_timeout_s < 0) throw usage_error("--wal-timeout-s must not be negative");
  install_stop_handlers();
  o.stop_requested = [] { return g_stop.load(); };
  const auto list = [&](const char* key) {
    return vm.count(key) ? vm[key].as<std::vector<std::string>>() : std::vector<std::string>{};
  };
  if (vm.count("exclude") && !vm.count("dir")) throw usage_error("--exclude goes with --dir");
  const std::vector<SnapshotRequest> dirs = snapshot_requests(list("dir"), list("exclude"));
  if (!dirs.empty())
    o.take_snapshots = [&](const Repository& repo, const std::string& id) {
      SnapshotOptions options;
      options.stop_requested = o.stop_requested;
      return take_backup_snapshots(repo, dirs, id, options);
    };

  const BackupInfo info = run_backup(o);
  std::cout << "backup " << info.id << " complete: timeline " << info.timeline.value << ", start "
            << info.start_lsn.str() << ", stop " << info.stop_lsn.str() << ", " << info.bytes
            << " bytes, stored " << info.stored_bytes << " bytes\n";
  return 0;
}

}  // namespace walvault::cli
