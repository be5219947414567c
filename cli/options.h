#pragma once
// Shared Boost.Program_options plumbing: --help, usage errors, the repository option.

#include <boost/program_options.hpp>
#include <string>

#include "cli/commands.h"
#include "core/fs.h"

namespace walvault::cli {

namespace po = boost::program_options;

// Parses args against desc (plus --help and --log-level). Returns false when --help was
// printed. Throws a usage Error for anything malformed.
bool parse_options(const std::string& command, const std::string& synopsis,
                   po::options_description& desc, const Args& args, po::variables_map& vm,
                   const po::positional_options_description* positional = nullptr);

// --repo, or WALVAULT_REPO when the option is absent. A usage error when neither is set.
fs::path repo_option(const po::variables_map& vm);

// Adds --repo to desc.
void add_repo_option(po::options_description& desc);

}  // namespace walvault::cli
