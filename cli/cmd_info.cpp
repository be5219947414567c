// walvault info: what the repository holds and what can be restored.

#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "pitr/catalog.h"

namespace walvault::cli {

int run_info(const Args& args) {
  po::options_description desc("options");
  add_repo_option(desc);
  desc.add_options()("json", "print one JSON object");
  po::variables_map vm;
  if (!parse_options("info", "--repo DIR [--json]", desc, args, vm)) return 0;
  const Repository repo = Repository::open(repo_option(vm));
  Catalog catalog(repo);
  if (vm.count("json")) {
    std::cout << catalog.to_json().dump(2) << "\n";
  } else {
    std::cout << catalog.to_text();
  }
  return 0;
}

}  // namespace walvault::cli
