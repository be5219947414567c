#include "cli/options.h"

#include <cstdlib>
#include <iostream>

#include "core/error.h"
#include "core/log.h"

namespace walvault::cli {

bool parse_options(const std::string& command, const std::string& synopsis,
                   po::options_description& desc, const Args& args, po::variables_map& vm,
                   const po::positional_options_description* positional) {
  desc.add_options()("help,h", "show this help")("log-level",
                                                 po::value<std::string>()->default_value("info"),
                                                 "debug, info, warning or error");
  try {
    po::command_line_parser parser(args);
    parser.options(desc);
    if (positional) parser.positional(*positional);
    const po::parsed_options parsed = parser.run();
    // Without a positional description boost keeps stray words with an empty key and store()
    // drops them: a forgotten quote ("--target-time 2026-12-04 08:47:13") would silently
    // become midnight.
    for (const auto& o : parsed.options) {
      if (o.string_key.empty() && !o.original_tokens.empty()) {
        throw usage_error("unexpected argument \"" + o.original_tokens.front() + "\"",
                          "quote values that contain spaces, e.g. --target-time \"2026-12-04 "
                          "08:47:13+00\"; see walvault " +
                              command + " --help");
      }
    }
    po::store(parsed, vm);
    if (vm.count("help")) {
      std::cout << "usage: walvault " << command << " " << synopsis << "\n\n" << desc << "\n";
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw usage_error(e.what(), "see walvault " + command + " --help");
  }
  log::Level level;
  if (!log::parse_level(vm["log-level"].as<std::string>(), level)) {
    throw usage_error("invalid --log-level \"" + vm["log-level"].as<std::string>() + "\"",
                      "use debug, info, warning or error");
  }
  log::set_level(level);
  return true;
}

void add_repo_option(po::options_description& desc) {
  desc.add_options()("repo", po::value<std::string>(),
                     "repository directory (default: $WALVAULT_REPO)");
}

fs::path repo_option(const po::variables_map& vm) {
  if (vm.count("repo")) return fs::path(vm["repo"].as<std::string>());
  if (const char* env = std::getenv("WALVAULT_REPO"); env && *env) return fs::path(env);
  throw usage_error("no repository given", "pass --repo DIR or set WALVAULT_REPO");
}

}  // namespace walvault::cli
