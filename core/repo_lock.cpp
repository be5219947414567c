#include "core/repo_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>

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

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

}  // namespace

std::string LockHolder::describe() const {
  return "pid " + (pid.empty() ? std::string("unknown") : pid) + " on host " +
         (host.empty() ? std::string("unknown") : host);
}

RepoLock RepoLock::acquire(const Repository& repo, std::string_view name, std::string_view what) {
  make_dirs(repo.lock_dir());
  const fs::path path = lock_path(repo, name);
  UniqueFd fd = open_or_throw(path, O_RDWR | O_CREAT);
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
  const std::string me = "pid=" + std::to_string(::getpid()) + " host=" + host_name() + "\n";
  if (::ftruncate(fd.get(), 0) != 0) {
    throw errno_error("could not truncate \"" + path.string() + "\"", errno);
  }
  pwrite_all(fd.get(), as_bytes(me), 0, path);
  return RepoLock(std::move(fd));
}

RepoLock::~RepoLock() {
  // A clean exit empties the file, so that only a holder that died leaves its name behind.
  if (fd_.valid()) (void)::ftruncate(fd_.get(), 0);
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

bool archiver_running(const Repository& repo) {
  return lock_holder(repo, kArchiverLockName).has_value();
}

}  // namespace walvault
