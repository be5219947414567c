#pragma once
// One function per subcommand; each lives in its own cmd_<name>.cpp. They receive the
// arguments after the subcommand name and return the process exit code, or throw Error.

#include <string>
#include <vector>

namespace walvault::cli {

using Args = std::vector<std::string>;

int run_archive(const Args& args);
int run_backup(const Args& args);
int run_check(const Args& args);
int run_expire(const Args& args);
int run_info(const Args& args);
int run_restore(const Args& args);
int run_service(const Args& args);
int run_snapshot(const Args& args);
int run_verify(const Args& args);
int run_wal_get(const Args& args);

}  // namespace walvault::cli
