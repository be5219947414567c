// walvault: one binary, subcommands. This file only dispatches and turns errors into the
// one-line "walvault: error: ..." message and the exit code.

#include <cstring>
#include <functional>
#include <iostream>
#include <map>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "core/secrets.h"

namespace {

using walvault::cli::Args;

const std::map<std::string, std::pair<std::function<int(const Args&)>, const char*>>& commands() {
  static const std::map<std::string, std::pair<std::function<int(const Args&)>, const char*>>
      table = {
          {"archive",
           {walvault::cli::run_archive, "stream WAL from the server into the repository"}},
          {"backup",
           {walvault::cli::run_backup, "take a base backup over the replication protocol"}},
          {"check",
           {walvault::cli::run_check,
            "is archiving healthy? one line per failing check (cron, Nagios)"}},
          {"expire",
           {walvault::cli::run_expire,
            "remove backups, WAL and snapshots a retention policy no longer needs"}},
          {"info",
           {walvault::cli::run_info, "show backups, WAL per timeline and the restorable window"}},
          {"restore",
           {walvault::cli::run_restore, "build a restore target for a chosen point in time"}},
          {"service",
           {walvault::cli::run_service,
            "archive continuously, take scheduled backups and snapshots, serve metrics"}},
          {"snapshot",
           {walvault::cli::run_snapshot,
            "record directories (authentik's /data, /certs, ...) in the repository"}},
          {"verify",
           {walvault::cli::run_verify, "re-read the whole repository and name every damaged file"}},
          {"wal-get",
           {walvault::cli::run_wal_get,
            "hand a WAL file to a recovering server (restore_command)"}},
      };
  return table;
}

void print_usage(std::ostream& out) {
  out << "usage: walvault COMMAND [OPTIONS]\n\ncommands:\n";
  for (const auto& [name, entry] : commands()) {
    out << "  " << name << std::string(10 - std::min<size_t>(name.size(), 9), ' ') << entry.second
        << "\n";
  }
  out << "\nwalvault COMMAND --help shows the options of a command.\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(true);
  if (argc < 2) {
    print_usage(std::cerr);
    return int(walvault::ExitCode::usage);
  }
  const std::string name = argv[1];
  if (name == "--version" || name == "version") {
    std::cout << "walvault " << WALVAULT_VERSION << "\n";
    return 0;
  }
  if (name == "--help" || name == "-h" || name == "help") {
    print_usage(std::cout);
    return 0;
  }
  auto it = commands().find(name);
  if (it == commands().end()) {
    std::cerr << "walvault: error: unknown command \"" << name << "\"\n"
              << "HINT: run walvault --help for the list of commands\n";
    return int(walvault::ExitCode::usage);
  }
  Args args(argv + 2, argv + argc);
  // A password in --dbname: the copy above is all walvault needs; what ps shows is blanked.
  bool password_in_argv = false;
  for (int i = 2; i < argc; ++i) {
    if (walvault::has_secrets(argv[i])) {
      password_in_argv = true;
      walvault::redact_secrets_in_place(argv[i]);
    }
  }
  if (password_in_argv) {
    walvault::log::warning(
        "a password on the command line is visible to other users of this machine until "
        "walvault starts; use PGPASSWORD, ~/.pgpass or PGPASSFILE (docs/security.md)");
  }
  try {
    return it->second.first(args);
  } catch (const walvault::Error& e) {
    std::cout.flush();
    std::cerr << "walvault: error: " << walvault::redact_secrets(e.what()) << "\n";
    if (!e.hint().empty()) std::cerr << "HINT: " << walvault::redact_secrets(e.hint()) << "\n";
    return int(e.code());
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "walvault: error: " << walvault::redact_secrets(e.what()) << "\n";
    return int(walvault::ExitCode::failure);
  }
}
