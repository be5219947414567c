#pragma once
// The restore builder's pieces that do not depend on the backup format: checking the target
// directory, the restore_command, the recovery settings PostgreSQL reads, ownership.
// (Unpacking the backup itself is basebackup/backup_extract.h.)

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include "core/fs.h"
#include "pitr/planner.h"

namespace walvault {

// A usage error unless dir is absent or an empty directory. Never writes.
void check_restore_target(const fs::path& dir);

struct RestoreOwner {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};
// --owner USER, or by default the invoking user, or `postgres` when that is root (PostgreSQL
// refuses to run as root). An unknown user is a usage error.
RestoreOwner resolve_restore_owner(const std::optional<std::string>& name);

// Quoting for /bin/sh (restore_command runs through the shell) and for a string value in
// postgresql.conf ('...' with '' and \\ escaped).
std::string shell_quote(std::string_view s);
std::string conf_quote(std::string_view s);

// "<exe> wal-get --repo <repo> %f %p", both paths absolute and quoted for the shell.
// With a timeline: "<exe> wal-get --repo <repo> --timeline N %f %p" (the prefetcher follows
// that timeline's history, and the spool is removed when PostgreSQL probes past it).
std::string make_restore_command(const fs::path& exe, const fs::path& repo,
                                 std::optional<TimelineId> timeline = std::nullopt);
// This binary's own path (readlink /proc/self/exe).
fs::path self_executable();

// Writes recovery.signal and appends the plan's settings to postgresql.auto.conf (earlier
// recovery settings in that file, left by an older restore, are commented out so that they
// cannot combine with the new target). Removes a standby.signal.
void write_recovery_settings(const fs::path& data_dir, const RecoveryPlan& plan);

// chown -R (symlinks themselves, not their targets) and mode 0700 on the data directory.
void hand_over(const fs::path& data_dir, const RestoreOwner& owner);

// A warning (empty when none) when `owner` will likely not be able to read the repository or
// run the binary (restore_command needs both) or reach the data directory: judged from
// ownership and mode bits.
std::string access_warning(const RestoreOwner& owner, const fs::path& repo, const fs::path& exe,
                           const fs::path& target_dir);

// Creates the missing parents of dir with mode 0755 (the server's user must be able to
// reach its data directory).
void make_parent_dirs(const fs::path& dir);

}  // namespace walvault
