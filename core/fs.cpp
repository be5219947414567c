#include "core/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "core/error.h"

namespace walvault {

UniqueFd open_or_throw(const fs::path& path, int flags, mode_t mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) throw errno_error("could not open \"" + path.string() + "\"", errno);
  return UniqueFd(fd);
}

void fsync_fd(int fd, const fs::path& path) {
  // An fsync failure leaves the data in an unknown state: it is fatal, never retried.
  if (::fsync(fd) != 0) throw errno_error("could not fsync \"" + path.string() + "\"", errno);
}

void fsync_dir(const fs::path& dir) {
  UniqueFd fd = open_or_throw(dir, O_RDONLY | O_DIRECTORY);
  fsync_fd(fd.get(), dir);
}

void make_dirs(const fs::path& dir) {
  if (dir.empty()) return;
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw Error("\"" + dir.string() + "\" is not a directory");
    return;
  }
  fs::path parent = dir.parent_path();
  if (!parent.empty() && parent != dir) make_dirs(parent);
  if (::mkdir(dir.c_str(), kDirMode) != 0 && errno != EEXIST) {
    throw errno_error("could not create directory \"" + dir.string() + "\"", errno);
  }
  fsync_dir(parent.empty() ? fs::path(".") : parent);
}

void write_all(int fd, std::span<const std::byte> data, const fs::path& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw errno_error("could not write to \"" + path.string() + "\"", errno);
    }
    data = data.subspan(size_t(n));
  }
}

void pwrite_all(int fd, std::span<const std::byte> data, uint64_t offset, const fs::path& path) {
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd, data.data(), data.size(), off_t(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw errno_error("could not write to \"" + path.string() + "\"", errno);
    }
    data = data.subspan(size_t(n));
    offset += uint64_t(n);
  }
}

void rename_durable(const fs::path& from, const fs::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    throw errno_error("could not rename \"" + from.string() + "\" to \"" + to.string() + "\"",
                      errno);
  }
  fsync_dir(to.parent_path());
  if (from.parent_path() != to.parent_path()) fsync_dir(from.parent_path());
}

void write_file_durable(const fs::path& path, std::string_view contents) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    UniqueFd fd = open_or_throw(tmp, O_WRONLY | O_CREAT | O_TRUNC);
    write_all(fd.get(), as_bytes(contents), tmp);
    fsync_fd(fd.get(), tmp);
  }
  rename_durable(tmp, path);
}

std::string read_file(const fs::path& path) {
  UniqueFd fd = open_or_throw(path, O_RDONLY);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw errno_error("could not read \"" + path.string() + "\"", errno);
    }
    if (n == 0) break;
    out.append(buf, size_t(n));
  }
  return out;
}

std::optional<std::string> read_file_if_exists(const fs::path& path) {
  if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) return std::nullopt;
  return read_file(path);
}

bool is_absent_or_empty_dir(const fs::path& path) {
  std::error_code ec;
  auto st = fs::symlink_status(path, ec);
  if (ec || st.type() == fs::file_type::not_found) return true;
  if (st.type() != fs::file_type::directory) return false;
  return fs::directory_iterator(path, ec) == fs::directory_iterator();
}

}  // namespace walvault
