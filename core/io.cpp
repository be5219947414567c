#include "core/io.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "core/log.h"

namespace walvault {

std::optional<IoMode> parse_io_mode(std::string_view text) {
  if (text == "auto") return IoMode::automatic;
  if (text == "uring" || text == "io_uring") return IoMode::uring;
  if (text == "pwrite") return IoMode::pwrite;
  return std::nullopt;
}

Error write_error(const fs::path& path, int errnum) {
  if (errnum == ENOSPC || errnum == EDQUOT) {
    return errno_error("could not write to \"" + path.string() + "\"", errnum,
                       "free space in the repository's file system, then restart walvault; it "
                       "resumes from what is durable");
  }
  return errno_error("could not write to \"" + path.string() + "\"", errnum);
}

Error sync_error(const fs::path& path, int errnum) {
  return errno_error("could not fdatasync \"" + path.string() + "\"", errnum,
                     "the repository's storage failed; a failed fsync is never retried because "
                     "the data may already be lost: check the device, then restart walvault");
}

void PwriteWriter::write(int fd, std::span<const std::byte> data, uint64_t offset,
                         const fs::path& path) {
  while (!data.empty()) {
    const ssize_t n = sys_pwrite(fd, data.data(), data.size(), offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw write_error(path, errno);
    }
    if (n == 0) throw write_error(path, ENOSPC);  // no progress: the device is full
    data = data.subspan(size_t(n));
    offset += uint64_t(n);
  }
}

void PwriteWriter::complete(int fd, bool sync, const fs::path& path) {
  if (sync && sys_fdatasync(fd) != 0) throw sync_error(path, errno);
}

ssize_t PwriteWriter::sys_pwrite(int fd, const void* buf, size_t len, uint64_t offset) {
  return ::pwrite(fd, buf, len, off_t(offset));
}

int PwriteWriter::sys_fdatasync(int fd) {
  return ::fdatasync(fd);
}

std::unique_ptr<FileWriter> make_file_writer(IoMode mode) {
  if (mode == IoMode::pwrite) {
    log::info("using pwrite (--io pwrite)");
    return std::make_unique<PwriteWriter>();
  }
  std::string why;
  auto uring = make_uring_writer(&why);
  if (uring) {
    log::info("using io_uring");
    return uring;
  }
  if (mode == IoMode::uring) {
    throw Error("io_uring is unavailable: " + why,
                "use --io pwrite or --io auto; io_uring may be disabled by seccomp, the "
                "kernel.io_uring_disabled sysctl or RLIMIT_MEMLOCK");
  }
  log::info("io_uring unavailable (" + why + "), using pwrite");
  return std::make_unique<PwriteWriter>();
}

}  // namespace walvault
