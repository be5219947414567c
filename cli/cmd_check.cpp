// walvault check: is continuous archiving healthy right now? (pitr/health_check.h)

#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "pitr/health_check.h"

namespace walvault::cli {
namespace {

double positive(const po::variables_map& vm, const char* name) {
  const double v = vm[name].as<double>();
  if (!(v > 0)) {
    throw usage_error(std::string("--") + name + " must be greater than 0");
  }
  return v;
}

}  // namespace

int run_check(const Args& args) {
  po::options_description desc("options");
  add_repo_option(desc);
  desc.add_options()("dbname,d", po::value<std::string>()->default_value(""),
                     "libpq connection string or URI of the archived server")(
      "max-backup-age-h", po::value<double>(),
      "fail when the newest complete backup stopped more than N hours ago")(
      "max-snapshot-age-h", po::value<double>(),
      "fail when the newest snapshot of a name was taken more than N hours ago")(
      "max-lag-bytes", po::value<unsigned long long>(),
      "fail when the archive is more than N bytes behind the server")(
      "max-lag-s", po::value<double>(),
      "fail when the archive is more than N seconds behind the server")(
      "slot", po::value<std::string>(),
      "fail unless this physical slot exists, is active and has not lost WAL")(
      "json", "print one JSON object");
  po::variables_map vm;
  if (!parse_options("check",
                     "--repo DIR --dbname CONNSTR [--max-backup-age-h N] [--max-snapshot-age-h N] "
                     "[--max-lag-bytes N] [--max-lag-s N] [--slot NAME] [--json]",
                     desc, args, vm)) {
    return 0;
  }
  HealthLimits limits;
  if (vm.count("max-backup-age-h")) limits.max_backup_age_hours = positive(vm, "max-backup-age-h");
  if (vm.count("max-snapshot-age-h")) {
    limits.max_snapshot_age_hours = positive(vm, "max-snapshot-age-h");
  }
  if (vm.count("max-lag-bytes"))
    limits.max_lag_bytes = vm["max-lag-bytes"].as<unsigned long long>();
  if (vm.count("max-lag-s")) limits.max_lag_seconds = positive(vm, "max-lag-s");
  if (vm.count("slot")) {
    limits.slot = vm["slot"].as<std::string>();
    if (limits.slot.empty()) throw usage_error("--slot needs a slot name");
  }
  const Repository repo = Repository::open(repo_option(vm));
  const HealthReport report = run_health_check(repo, vm["dbname"].as<std::string>(), limits);
  if (vm.count("json")) {
    std::cout << report.to_json().dump(2) << "\n";
  } else {
    std::cout << report.to_text();
  }
  return report.healthy() ? 0 : int(ExitCode::failure);
}

}  // namespace walvault::cli
