#pragma once
// walvault service's configuration: an INI file (`--config FILE`, read with
// Boost.Program_options) and the same options as command-line flags, which win over the
// file. docs/configuration.md describes every option. Everything is checked here, before
// anything starts: an unknown key or a bad value is a usage Error naming the key and where
// it came from (the file's line, or the flag).

#include <boost/program_options.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "basebackup/backup_stream.h"
#include "core/fs.h"
#include "core/io.h"
#include "core/log.h"
#include "core/repository.h"
#include "service/schedule.h"

namespace walvault {

struct ListenAddress {
  std::string host;  // as given; IPv6 without its brackets
  std::string port;
  std::string describe() const;  // "127.0.0.1:9187", "[::1]:9187"
  friend bool operator==(const ListenAddress&, const ListenAddress&) = default;
};

struct ServiceConfig {
  std::optional<fs::path> config_file;
  bool check_only = false;  // --check-config: validate, print, exit

  // The archiver (the same meaning as walvault archive's flags).
  fs::path repo;
  std::string conninfo;
  std::string slot;
  bool create_slot = false;
  bool allow_gap = false;
  bool synchronous = false;
  Compression compression = Compression::lz4;
  IoMode io = IoMode::automatic;
  std::string application_name = "walvault";
  int status_interval_ms = 10'000;

  // Scheduled base backups (with snapshots of `dirs`, as walvault backup --dir).
  Schedule backup;
  CheckpointMode checkpoint = CheckpointMode::spread;
  int wal_timeout_s = 120;
  uint32_t backup_max_rate_kbps = 0;  // BASE_BACKUP MAX_RATE; 0: no limit
  std::vector<std::string> dirs;      // NAME=PATH
  std::vector<std::string> excludes;  // GLOB

  // Scheduled snapshots of `dirs` on their own.
  Schedule snapshot;

  // Retention after each backup.
  std::optional<int> retain_full;
  std::optional<double> retain_days;  // fractions allowed, as walvault expire --retain-days

  std::optional<ListenAddress> metrics_listen;
  std::optional<fs::path> metrics_textfile;
  std::chrono::seconds metrics_interval{15};

  log::Level log_level = log::Level::info;

  bool retention_enabled() const { return retain_full || retain_days; }
};

// Every option, as the flags of walvault service take them (config, help included).
boost::program_options::options_description service_options();

// Parses the command line and, with --config, the file. Returns nullopt after printing
// --help to out. Throws a usage Error for anything wrong.
std::optional<ServiceConfig> load_service_config(const std::vector<std::string>& args,
                                                 std::ostream& help_out);

// The archiver's settings differ (walvault service restarts its archiver on SIGHUP then).
bool archiver_settings_differ(const ServiceConfig& a, const ServiceConfig& b);

// A connection string with its password replaced by "***" (key=value and URI forms), for
// logs and messages.
std::string redact_conninfo(const std::string& conninfo);

// One line per setting, for the log at start and after a reload (password redacted).
std::vector<std::string> describe(const ServiceConfig& config);

}  // namespace walvault
