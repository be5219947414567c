// walvault archive: stream WAL from the server into the repository, durably, forever (or
// until --endpos). The work is walarchiver/archiver.h; this file parses options and turns
// SIGINT/SIGTERM into a clean stop (everything received made durable, exit 0).

#include <csignal>
#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/log.h"
#include "walarchiver/archiver.h"

namespace walvault::cli {
namespace {

volatile std::sig_atomic_t g_stop = 0;

extern "C" void on_stop_signal(int) {
  g_stop = 1;
}

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocking poll returns EINTR and the loop sees the flag
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

}  // namespace

int run_archive(const Args& args) {
  po::options_description desc("archive options");
  add_repo_option(desc);
  // clang-format off
  desc.add_options()
      ("dbname,d", po::value<std::string>()->default_value(""),
       "libpq connection string or URI (default: PG* environment variables)")
      ("slot", po::value<std::string>(), "physical replication slot to stream from")
      ("create-slot", po::bool_switch(), "create the slot (RESERVE_WAL) if it does not exist")
      ("drop-slot", po::bool_switch(), "drop the slot and exit")
      ("synchronous", po::bool_switch(),
       "flush and report as soon as the stream is idle (use as a synchronous standby)")
      ("endpos", po::value<std::string>(), "stop with exit 0 once WAL up to this LSN is durable")
      ("no-loop", po::bool_switch(), "exit non-zero when the connection is lost")
      ("allow-gap", po::bool_switch(),
       "when the server no longer has the WAL at the archive's end, record the gap and "
       "continue at the server's oldest WAL (default: fail)")
      ("compress", po::value<std::string>()->default_value("lz4"), "lz4 or none")
      ("io", po::value<std::string>()->default_value("auto"), "auto, uring or pwrite")
      ("status-interval-ms", po::value<int>()->default_value(10'000),
       "interval between status updates to the server")
      ("application-name", po::value<std::string>()->default_value("walvault"),
       "application_name of the replication connection (synchronous_standby_names)");
  // clang-format on
  po::variables_map vm;
  if (!parse_options(
          "archive",
          "--repo DIR --dbname CONNSTR [--slot NAME [--create-slot] [--drop-slot]] "
          "[--synchronous] [--endpos LSN] [--no-loop] [--allow-gap] [--compress lz4|none] "
          "[--io auto|uring|pwrite]",
          desc, args, vm)) {
    return 0;
  }

  ArchiveOptions options;
  options.conninfo = vm["dbname"].as<std::string>();
  options.application_name = vm["application-name"].as<std::string>();
  if (vm.count("slot")) options.slot = vm["slot"].as<std::string>();
  options.create_slot = vm["create-slot"].as<bool>();
  const bool drop_slot = vm["drop-slot"].as<bool>();
  if ((options.create_slot || drop_slot) && options.slot.empty()) {
    throw usage_error("--create-slot and --drop-slot need --slot NAME");
  }
  if (drop_slot) {
    drop_replication_slot(options.conninfo, options.slot);
    return 0;
  }
  options.repo = repo_option(vm);
  options.synchronous = vm["synchronous"].as<bool>();
  options.no_loop = vm["no-loop"].as<bool>();
  options.allow_gap = vm["allow-gap"].as<bool>();
  if (vm.count("endpos")) {
    const std::string text = vm["endpos"].as<std::string>();
    auto lsn = Lsn::parse(text);
    if (!lsn || !lsn->valid()) {
      throw usage_error("invalid --endpos \"" + text + "\"",
                        "give an LSN in PostgreSQL notation, e.g. 0/5D000C90");
    }
    options.endpos = *lsn;
  }
  const std::string compress = vm["compress"].as<std::string>();
  auto compression = parse_compression(compress);
  if (!compression) throw usage_error("invalid --compress \"" + compress + "\"", "use lz4 or none");
  options.compression = *compression;
  const std::string io = vm["io"].as<std::string>();
  auto io_mode = parse_io_mode(io);
  if (!io_mode) throw usage_error("invalid --io \"" + io + "\"", "use auto, uring or pwrite");
  options.io = *io_mode;
  options.status_interval_ms = vm["status-interval-ms"].as<int>();
  if (options.status_interval_ms < 1 || options.status_interval_ms > 3'600'000) {
    throw usage_error("--status-interval-ms must be between 1 and 3600000");
  }

  install_stop_handlers();
  options.stop_requested = [] { return g_stop != 0; };
  run_archiver(options);
  return 0;
}

}  // namespace walvault::cli
