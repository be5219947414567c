#pragma once
// Writer backends for repository files: one interface, two implementations.
//  - io_uring (liburing): writes are queued and submitted in batches together with a
//    drained fdatasync; short writes are resubmitted; nothing is allocated per write.
//  - pwrite + fdatasync: for kernels or sandboxes where io_uring_setup fails (EPERM from
//    seccomp or the io_uring_disabled sysctl, ENOSYS, ENOMEM from RLIMIT_MEMLOCK).
// `--io auto` tries io_uring and falls back with a logged reason; `--io uring|pwrite` forces.
//
// Errors: ENOSPC and other write failures throw an Error naming the file; a failed
// fdatasync throws too and must end the command: after a failed fsync the page cache may
// have dropped the data, so retrying would report success for data that is lost.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/fs.h"

namespace walvault {

enum class IoMode { automatic, uring, pwrite };
std::optional<IoMode> parse_io_mode(std::string_view text);  // "auto" | "uring" | "pwrite"

class FileWriter {
 public:
  virtual ~FileWriter() = default;
  virtual std::string_view name() const = 0;  // "io_uring" or "pwrite"

  // Queues a write of all of data at offset of fd. data must stay valid and unchanged until
  // the next complete() returns. All writes queued before a complete() go to the same fd,
  // the one named by path (kept by reference until then, for error messages).
  virtual void write(int fd, std::span<const std::byte> data, uint64_t offset,
                     const fs::path& path) = 0;
  // Waits until every queued write is done (short writes resubmitted); with sync, then
  // fdatasyncs fd. Throws Error on failure after all in-flight operations have finished.
  virtual void complete(int fd, bool sync, const fs::path& path) = 0;
  // Waits for every operation in flight and forgets errors: for destructors and error paths,
  // so that no buffer is freed while the kernel may still read it.
  virtual void wait_idle() noexcept = 0;
};

// plain pwrite(2) + fdatasync(2). The two system calls are virtual so that tests can inject
// short writes, ENOSPC and EIO (see tests/unit/segment_sink_test.cpp).
class PwriteWriter : public FileWriter {
 public:
  std::string_view name() const override { return "pwrite"; }
  void write(int fd, std::span<const std::byte> data, uint64_t offset,
             const fs::path& path) override;
  void complete(int fd, bool sync, const fs::path& path) override;
  void wait_idle() noexcept override {}

 protected:
  // Same contract as the system calls: bytes written or -1 with errno.
  virtual ssize_t sys_pwrite(int fd, const void* buf, size_t len, uint64_t offset);
  virtual int sys_fdatasync(int fd);
};

// Creates the io_uring writer, or returns nullptr and the reason (strerror of
// io_uring_queue_init) when no ring can be created.
std::unique_ptr<FileWriter> make_uring_writer(std::string* why_unavailable);

// The writer for --io; automatic logs "using io_uring" or
// "io_uring unavailable (<reason>), using pwrite" once. Forcing uring where no ring can be
// created is an error.
std::unique_ptr<FileWriter> make_file_writer(IoMode mode);

// The Errors the backends throw, shared so that every backend words them alike.
Error write_error(const fs::path& path, int errnum);
Error sync_error(const fs::path& path, int errnum);

}  // namespace walvault
