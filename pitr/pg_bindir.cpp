#include "pitr/pg_bindir.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <sstream>

#include "core/error.h"
#include "core/unique_fd.h"

namespace walvault {
namespace {

bool executable(const fs::path& p) {
  return ::access(p.c_str(), X_OK) == 0;
}

// Runs `<bindir>/postgres --version` and returns what it printed (at most 4 KiB), or
// nullopt when it could not run or did not exit with status 0.
std::optional<std::string> postgres_version_output(const fs::path& bindir) {
  const std::string program = (bindir / "postgres").string();
  if (!executable(program)) return std::nullopt;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return std::nullopt;
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  const char* argv[] = {program.c_str(), "--version", nullptr};
  const pid_t pid = ::fork();
  if (pid < 0) return std::nullopt;
  if (pid == 0) {
    // Only async-signal-safe calls from here on.
    ::dup2(fds[1], 1);
    const int null_fd = ::open("/dev/null", O_RDWR);
    if (null_fd >= 0) {
      ::dup2(null_fd, 0);
      ::dup2(null_fd, 2);
    }
    ::execv(argv[0], const_cast<char* const*>(argv));
    ::_exit(127);
  }
  write_end.reset();
  std::string out;
  char buf[512];
  for (;;) {
    const ssize_t n = ::read(read_end.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (out.size() < 4096) out.append(buf, size_t(n));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
  return out;
}

std::optional<int> leading_number(std::string_view text) {
  int v = 0;
  size_t i = 0;
  while (i < text.size() && i < 4 && text[i] >= '0' && text[i] <= '9')
    v = v * 10 + (text[i++] - '0');
  if (i == 0) return std::nullopt;
  return v;
}

std::string join(const std::vector<fs::path>& dirs) {
  std::string out;
  for (const auto& d : dirs) out += (out.empty() ? "" : ", ") + d.string();
  return out;
}

}  // namespace

std::optional<int> postgres_major_in(const fs::path& bindir) {
  const auto out = postgres_version_output(bindir);
  if (!out) return std::nullopt;
  static constexpr std::string_view kTag = "(PostgreSQL) ";
  const size_t at = out->find(kTag);
  if (at == std::string::npos) return std::nullopt;
  return leading_number(std::string_view(*out).substr(at + kTag.size()));
}

std::optional<int> data_dir_major(const fs::path& data_dir) {
  const auto text = read_file_if_exists(data_dir / "PG_VERSION");
  if (!text) return std::nullopt;
  return leading_number(*text);
}

namespace {

// The candidates that belong to this major by name (everything but PATH).
std::vector<fs::path> fixed_candidates(int major) {
  const std::string m = std::to_string(major);
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv(("WALVAULT_PG_BINDIR_" + m).c_str()); env && *env) {
    dirs.emplace_back(env);
  }
  dirs.push_back(fs::path("/usr/lib/postgresql") / m / "bin");
  dirs.push_back(fs::path("/usr/pgsql-" + m) / "bin");
  if (const char* cache = std::getenv("WALVAULT_PG_CACHE"); cache && *cache) {
    dirs.push_back(fs::path(cache) / m / "bin");
  }
  dirs.push_back(fs::path("/var/cache/walvault/pg") / m / "bin");
  if (const char* home = std::getenv("HOME"); home && *home) {
    dirs.push_back(fs::path(home) / ".cache/walvault/pg" / m / "bin");
  }
  return dirs;
}

}  // namespace

std::vector<fs::path> pg_bindir_candidates(int major) {
  std::vector<fs::path> dirs = fixed_candidates(major);
  if (const char* path = std::getenv("PATH")) {
    std::stringstream ss(path);
    std::string item;
    while (std::getline(ss, item, ':')) {
      if (!item.empty()) dirs.emplace_back(item);
    }
  }
  return dirs;
}

std::optional<fs::path> find_pg_bindir(const PgBindirSearch& s) {
  if (s.explicit_dir) {
    if (postgres_major_in(*s.explicit_dir) == s.major) return *s.explicit_dir;
    return std::nullopt;
  }
  for (const auto& dir : pg_bindir_candidates(s.major)) {
    if (postgres_major_in(dir) == s.major) return dir;
  }
  return std::nullopt;
}

fs::path require_pg_bindir(const PgBindirSearch& s) {
  const std::string m = std::to_string(s.major);
  if (s.explicit_dir) {
    const fs::path& dir = *s.explicit_dir;
    if (!executable(dir / "postgres")) {
      throw usage_error("no executable postgres in --pg-bindir " + dir.string(),
                        "give the directory that holds PostgreSQL " + m + "'s postgres");
    }
    const auto found = postgres_major_in(dir);
    if (found != s.major) {
      throw usage_error("--pg-bindir " + dir.string() + " holds " +
                            (found ? "PostgreSQL " + std::to_string(*found)
                                   : std::string("a postgres that does not say its version")) +
                            ", but the restored cluster is PostgreSQL " + m,
                        "a data directory starts only under a server of its own major; give "
                        "PostgreSQL " +
                            m + "'s bin directory");
    }
    return dir;
  }
  if (auto dir = find_pg_bindir(s)) return *dir;
  // PATH is long and says little: name the fixed places only.
  throw Error("no PostgreSQL " + m + " server binaries found to start the restored cluster (" +
                  "looked in " + join(fixed_candidates(s.major)) + " and PATH)",
              "install PostgreSQL " + m + "'s server (Debian: apt-get install postgresql-" + m +
                  "), or pass --pg-bindir DIR (or set WALVAULT_PG_BINDIR_" + m + ")");
}

}  // namespace walvault
