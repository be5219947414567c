#include "core/repo_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include "core/error.h"
#include "core/log.h"

namespace walvault {
fs::path lock_file_path(const Repository& repo, std::string_view name) {
  return repo.lock_dir() / (std::string(name) + ".lock");
}

namespace {

fs::path lock_path(const Repository& repo, std::string_view name) {
  return lock_file_path(repo, name);
}

LockHolder parse_holder(const std::string& text) {
  LockHolder h;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find_first_of(" \n", pos);
    if (end == std::string::npos) end = text.size();
    const std::string word = text.substr(pos, end - pos);
    if (word.rfind("pid=", 0) == 0) h.pid = word.substr(4);
    if (word.rfind("host=", 0) == 0) h.host = word.substr(5);
    pos = end + 1;
  }
  return h;
}

std::string read_holder_text(int fd) {
  std::string out;
  char buf[256];
  ssize_t n;
  off_t off = 0;
  while ((n = ::pread(fd, buf, sizeof buf, off)) > 0 && out.size() < 4096) {
    out.append(buf, size_t(n));
    off += n;
  }
  return out;
}

// Opens (creating) REPO/lock/<name>.lock. When root works on a repository that belongs to
// another user (normally postgres, which runs archive and wal-get), the lock directory and
// file are given to that user, so that its own commands can still take the lock.
UniqueFd open_lock_file(const Repository& repo, const fs::path& path) {
  make_dirs(repo.lock_dir());
  UniqueFd fd = open_or_throw(path, O_RDWR | O_CREAT);
  struct stat root_st;
  if (::geteuid() == 0 && ::stat(repo.root().c_str(), &root_st) == 0 && root_st.st_uid != 0) {
    struct stat st;
    if (::stat(repo.lock_dir().c_str(), &st) == 0 && st.st_uid == 0) {
      (void)::chown(repo.lock_dir().c_str(), root_st.st_uid, root_st.st_gid);
    }
    if (::fstat(fd.get(), &st) == 0 && st.st_uid == 0) {
      (void)::fchown(fd.get(), root_st.st_uid, root_st.st_gid);
    }
  }
  return fd;
}

void write_holder(int fd, const fs::path& path);

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

void write_holder(int fd, const fs::path& path) {
  const std::string me = "pid=" + std::to_string(::getpid()) + " host=" + host_name() + "\n";
  if (::ftruncate(fd, 0) != 0)
    throw errno_error("could not truncate \"" + path.string() + "\"", errno);
  pwrite_all(fd, as_bytes(me), 0, path);
}

}  // namespace

std::string LockHolder::describe() const {
  return "pid " + (pid.empty() ? std::string("unknown") : pid) + " on host " +
         (host.empty() ? std::string("unknown") : host);
}

RepoLock RepoLock::acquire(const Repository& repo, std::string_view name, std::string_view what) {
  const fs::path path = lock_path(repo, name);
  UniqueFd fd = open_lock_file(repo, path);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) throw errno_error("could not lock \"" + path.string() + "\"", errno);
    const LockHolder holder = parse_holder(read_holder_text(fd.get()));
    throw Error(std::string(what) + " is already running on repository \"" + repo.root().string() +
                    "\" (" + holder.describe() + ")",
                "only one may run per repository; stop the other one first (its lock is \"" +
                    path.string() + "\")");
  }
  const std::string previous = read_holder_text(fd.get());
  if (!previous.empty()) {
    log::info("taking over the lock \"" + path.string() + "\" of an earlier " + std::string(what) +
              " that is gone (" + parse_holder(previous).describe() + ")");
  }
  write_holder(fd.get(), path);
  return RepoLock(std::move(fd), true);
}

std::optional<RepoLock> RepoLock::try_acquire(const Repository& repo, std::string_view name) {
  const fs::path path = lock_path(repo, name);
  UniqueFd fd = open_lock_file(repo, path);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) throw errno_error("could not lock \"" + path.string() + "\"", errno);
    return std::nullopt;
  }
  write_holder(fd.get(), path);
  return RepoLock(std::move(fd), true);
}

RepoLock RepoLock::acquire_shared(const Repository& repo, std::string_view name,
                                  std::string_view what,
                                  const std::function<bool()>& stop_requested) {
  return wait_for(repo, name, what, false, stop_requested);
}

RepoLock RepoLock::acquire_waiting(const Repository& repo, std::string_view name,
                                   std::string_view what,
                                   const std::function<bool()>& stop_requested) {
  return wait_for(repo, name, what, true, stop_requested);
}

RepoLock RepoLock::wait_for(const Repository& repo, std::string_view name, std::string_view what,
                            bool exclusive, const std::function<bool()>& stop_requested) {
  const fs::path path = lock_path(repo, name);
  UniqueFd fd = open_lock_file(repo, path);
  bool logged = false;
  // Polled rather than blocking in flock(2), so that SIGINT/SIGTERM end the wait.
  while (::flock(fd.get(), (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) {
      throw errno_error("could not lock \"" + path.string() + "\"", errno);
    }
    if (!logged) {
      log::info("waiting for " + std::string(what) + " (" +
                parse_holder(read_holder_text(fd.get())).describe() + ") to finish");
      logged = true;
    }
    if (stop_requested && stop_requested()) {
      throw Error("interrupted while waiting for " + std::string(what) + " to finish");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (exclusive) write_holder(fd.get(), path);
  return RepoLock(std::move(fd), exclusive);
}

RepoLock::~RepoLock() {
  // A clean exit empties the file, so that only a holder that died leaves its name behind.
  if (fd_.valid() && exclusive_) (void)::ftruncate(fd_.get(), 0);
}

std::optional<LockHolder> lock_holder(const Repository& repo, std::string_view name) {
  const fs::path path = lock_path(repo, name);
  const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw < 0) {
    if (errno == ENOENT) return std::nullopt;
    throw errno_error("could not open \"" + path.string() + "\"", errno);
  }
  UniqueFd fd(raw);
  // A shared lock is granted unless somebody holds the exclusive one.
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) {
    ::flock(fd.get(), LOCK_UN);
    return std::nullopt;
  }
  if (errno != EWOULDBLOCK) throw errno_error("could not probe \"" + path.string() + "\"", errno);
  return parse_holder(read_holder_text(fd.get()));
}

bool lock_held(const Repository& repo, std::string_view name) {
  const fs::path path = lock_path(repo, name);
  const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw < 0) {
    if (errno == ENOENT) return false;
    throw errno_error("could not open \"" + path.string() + "\"", errno);
  }
  UniqueFd fd(raw);
  // An exclusive lock is granted only when nobody holds the file in any mode.
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) {
    ::flock(fd.get(), LOCK_UN);
    return false;
  }
  if (errno != EWOULDBLOCK) throw errno_error("could not probe \"" + path.string() + "\"", errno);
  return true;
}

bool archiver_running(const Repository& repo) {
  return lock_holder(repo, kArchiverLockName).has_value();
}

}  // namespace walvault
