#pragma once
// Repository locks: REPO/lock/<name>.lock held with flock(2), so that the kernel releases
// it when the holder dies (a stale lock file is simply taken over). The file holds
// "pid=<pid> host=<host>" of the holder, for messages.

#include <optional>
#include <string>
#include <string_view>

#include "core/repository.h"
#include "core/unique_fd.h"

namespace walvault {

struct LockHolder {
  std::string pid;  // as written by the holder; empty when unknown
  std::string host;
  std::string describe() const;  // "pid 1234 on host db1"
};

class RepoLock {
 public:
  // Takes REPO/lock/<name>.lock without waiting. When another process holds it, throws an
  // Error naming the holder: "<what> is already running on repository ... (pid N on host H)".
  static RepoLock acquire(const Repository& repo, std::string_view name, std::string_view what);

  RepoLock(RepoLock&&) noexcept = default;
  RepoLock& operator=(RepoLock&&) noexcept = default;
  ~RepoLock();  // empties the file; the kernel drops the lock with the fd

 private:
  explicit RepoLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// REPO/lock/<name>.lock
fs::path lock_file_path(const Repository& repo, std::string_view name);

// The holder of REPO/lock/<name>.lock when a live process holds it.
std::optional<LockHolder> lock_holder(const Repository& repo, std::string_view name);

constexpr std::string_view kArchiverLockName = "archiver";

// True while a walvault archive process holds the repository's archiver lock.
bool archiver_running(const Repository& repo);

}  // namespace walvault
