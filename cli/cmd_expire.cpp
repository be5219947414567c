// walvault expire: remove the backups, WAL, snapshots and store objects a retention policy no
// longer needs (pitr/retention.h; the rules are in docs/retention.md).

#include <cmath>
#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "pitr/retention.h"

namespace walvault::cli {
namespace {

RetentionPolicy policy_option(const po::variables_map& vm) {
  const bool full = vm.count("retain-full") > 0;
  const bool days = vm.count("retain-days") > 0;
  if (full == days) {
    throw usage_error("give exactly one of --retain-full N and --retain-days D",
                      "see walvault expire --help");
  }
  if (full) {
    const long long n = vm["retain-full"].as<long long>();
    if (n < 1 || n > 1'000'000) {
      throw usage_error("--retain-full must be at least 1",
                        "expire never removes the last complete backup");
    }
    return RetentionPolicy::retain_full(uint32_t(n));
  }
  return RetentionPolicy::retain_days(vm["retain-days"].as<double>());
}

}  // namespace

int run_expire(const Args& args) {
  po::options_description desc("options");
  add_repo_option(desc);
  desc.add_options()("retain-full", po::value<long long>(), "keep the N newest complete backups")(
      "retain-days", po::value<double>(),
      "keep the backups that stopped within D days, and the newest before that")(
      "dry-run", "print what would be removed; remove nothing")("json", "print one JSON object");
  po::variables_map vm;
  if (!parse_options("expire",
                     "--repo DIR (--retain-full N | --retain-days D) [--dry-run] [--json]", desc,
                     args, vm)) {
    return 0;
  }
  const RetentionPolicy policy = policy_option(vm);
  const Repository repo = Repository::open(repo_option(vm));
  ExpireOptions options;
  options.dry_run = vm.count("dry-run") > 0;
  const ExpireReport report = run_expire(repo, policy, options);
  if (vm.count("json")) {
    std::cout << report.to_json().dump(2) << "\n";
  } else {
    std::cout << report.to_text();
  }
  return 0;
}

}  // namespace walvault::cli
