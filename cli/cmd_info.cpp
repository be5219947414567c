// walvault info: what the repository holds and what can be restored.

#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "pitr/catalog.h"
#include "snapshot/snapshot_listing.h"

namespace walvault::cli {

int run_info(const Args& args) {
  po::options_description desc("options");
  add_repo_option(desc);
  desc.add_options()("json", "print one JSON object");
  po::variables_map vm;
  if (!parse_options("info", "--repo DIR [--json]", desc, args, vm)) return 0;
  const Repository repo = Repository::open(repo_option(vm));
  Catalog catalog(repo);
  std::vector<std::string> snapshot_problems;
  const std::vector<SnapshotInfo> snapshots = load_snapshots(repo, &snapshot_problems);
  if (vm.count("json")) {
    Json j = catalog.to_json();
    j["snapshots"] = snapshots_to_json(snapshots);
    for (const auto& p : snapshot_problems) j["problems"].push_back(p);
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << catalog.to_text() << "\nsnapshots\n" << snapshots_summary_text(snapshots);
    for (const auto& p : snapshot_problems) std::cout << "  problem: " << p << "\n";
  }
  return 0;
}

}  // namespace walvault::cli
