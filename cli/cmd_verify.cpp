// walvault verify: re-read everything the repository holds and check it (pitr/repo_verify.h):
// WAL segments and .partial files, timeline histories, backups (files, archives, manifests,
// the WAL each needs), snapshots and their objects, walvault.json. Prints one line per damaged
// file and exits 1 if there is any; warnings (a torn .partial tail, a backup that never
// completed, a stray file) do not change the exit status.

#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "pitr/repo_verify.h"

namespace walvault::cli {

int run_verify(const Args& args) {
  po::options_description desc("options");
  add_repo_option(desc);
  desc.add_options()("json", "print one JSON object")(
      "jobs", po::value<unsigned>()->default_value(0),
      "threads reading the repository (0: one per core, at most 2)");
  po::variables_map vm;
  if (!parse_options("verify", "--repo DIR [--json]", desc, args, vm)) return 0;
  RepoVerifyOptions options;
  options.jobs = vm["jobs"].as<unsigned>();
  const RepoVerifyReport report = verify_repository(repo_option(vm), options);
  if (vm.count("json")) {
    std::cout << report.to_json().dump(2) << "\n";
  } else {
    std::cout << report.to_text();
  }
  std::cout.flush();
  if (!report.ok()) {
    throw Error(std::to_string(report.damaged()) + " damaged file(s) in repository " + report.root,
                "each line DAMAGED above names a file and what is wrong with it; restore those "
                "files from a copy, take a new backup, or see docs/verify.md");
  }
  if (!vm.count("json")) {
    std::cout << "ok"
              << (report.warnings() ? " (" + std::to_string(report.warnings()) + " warning(s))"
                                    : std::string())
              << "\n";
  }
  return 0;
}

}  // namespace walvault::cli
