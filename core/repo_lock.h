#pragma once
// Repository locks: REPO/lock/<name>.lock held with flock(2), so that the kernel releases
// it when the holder dies (a stale lock file is simply taken over). The file holds
// "pid=<pid> host=<host>" of the holder, for messages.

#include <functional>
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
  // The same exclusive lock, or nullopt (nothing thrown) while anybody holds it, shared or not.
  static std::optional<RepoLock> try_acquire(const Repository& repo, std::string_view name);
  // A shared lock: any number of shared holders, none while an exclusive holder has it. Waits
  // for an exclusive holder to finish (logging once what it waits for, named by `what`),
  // polling stop_requested; throws Error when stopped while waiting. Shared holders leave the
  // file's contents (the last exclusive holder's name) alone.
  static RepoLock acquire_shared(const Repository& repo, std::string_view name,
                                 std::string_view what,
                                 const std::function<bool()>& stop_requested = {});
  // The exclusive lock, waiting like acquire_shared (for short critical sections).
  static RepoLock acquire_waiting(const Repository& repo, std::string_view name,
                                  std::string_view what,
                                  const std::function<bool()>& stop_requested = {});

  RepoLock(RepoLock&&) noexcept = default;
  RepoLock& operator=(RepoLock&&) noexcept = default;
  ~RepoLock();  // empties the file; the kernel drops the lock with the fd

 private:
  static RepoLock wait_for(const Repository& repo, std::string_view name, std::string_view what,
                           bool exclusive, const std::function<bool()>& stop_requested);
  RepoLock(UniqueFd fd, bool exclusive) : fd_(std::move(fd)), exclusive_(exclusive) {}
  UniqueFd fd_;
  bool exclusive_ = true;
};

// REPO/lock/<name>.lock
fs::path lock_file_path(const Repository& repo, std::string_view name);

// The holder of REPO/lock/<name>.lock when a live process holds it exclusively.
std::optional<LockHolder> lock_holder(const Repository& repo, std::string_view name);
// True while anybody holds REPO/lock/<name>.lock, shared or exclusively.
bool lock_held(const Repository& repo, std::string_view name);

constexpr std::string_view kArchiverLockName = "archiver";

// True while a walvault archive process holds the repository's archiver lock.
bool archiver_running(const Repository& repo);

// One `walvault expire` at a time (exclusive).
constexpr std::string_view kExpireLockName = "expire";
// The content-addressed store: every snapshot writer holds it shared from before it puts its
// first object until its snapshot.json is committed; expire holds it exclusively while it
// decides which objects no snapshot uses and removes them. Without it, expire could remove an
// object that a running snapshot has just found already present and refers to.
constexpr std::string_view kStoreLockName = "store";
// wal/<TLI>/gaps.json is read, changed and rewritten by the archiver (a new gap) and by expire
// (gaps in WAL it removed): each does so holding this lock (exclusive, waiting).
constexpr std::string_view kGapsLockName = "gaps";

}  // namespace walvault
