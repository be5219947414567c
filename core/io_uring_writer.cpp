// The io_uring backend of FileWriter (core/io.h).
//
// The caller owns the buffers; this class owns a fixed table of operations (no allocation
// per write). Writes are prepared into the submission queue and submitted in batches: when
// the queue or the table is full, or at complete(). A sync is an fdatasync with IOSQE_IO_DRAIN,
// so it starts only after every earlier write has finished, in the same submission.

#include <liburing.h>

#include <array>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/io.h"

namespace walvault {
namespace {

constexpr unsigned kQueueDepth = 64;
constexpr uint64_t kSyncTag = std::numeric_limits<uint64_t>::max();
constexpr size_t kMaxWriteBytes = size_t(1) << 30;  // io_uring lengths are 32 bits

class UringWriter final : public FileWriter {
 public:
  // The ring is set up in place (its struct is not meant to be copied).
  static std::unique_ptr<UringWriter> create(std::string* why_unavailable) {
    std::unique_ptr<UringWriter> w(new UringWriter());
    // Twice the table: room for the sync after a full table of writes and for resubmissions.
    const int r = io_uring_queue_init(kQueueDepth * 2, &w->ring_, 0);
    if (r < 0) {
      w->ring_ready_ = false;
      if (why_unavailable) *why_unavailable = std::strerror(-r);
      return nullptr;
    }
    return w;
  }
  ~UringWriter() override {
    if (!ring_ready_) return;
    wait_idle();
    io_uring_queue_exit(&ring_);
  }
  UringWriter(const UringWriter&) = delete;
  UringWriter& operator=(const UringWriter&) = delete;

  std::string_view name() const override { return "io_uring"; }

  void write(int fd, std::span<const std::byte> data, uint64_t offset,
             const fs::path& /*path*/) override {
    assert(fd_ < 0 || fd_ == fd);
    fd_ = fd;
    while (!data.empty()) {
      const size_t n = std::min(data.size(), kMaxWriteBytes);
      while (free_count_ == 0) reap_one();
      const unsigned slot = free_[--free_count_];
      ops_[slot] = Op{data.data(), uint32_t(n), 0, offset};
      prepare_write(slot);
      data = data.subspan(n);
      offset += n;
    }
  }

  void complete(int fd, bool sync, const fs::path& path) override {
    assert(fd_ < 0 || fd_ == fd);
    fd_ = fd;
    resubmitted_ = false;
    if (sync) prepare_sync();
    while (in_flight() > 0) reap_one();
    if (sync && resubmitted_ && error_ == 0) {
      // A short write was finished after the fsync had started: sync again.
      prepare_sync();
      while (in_flight() > 0) reap_one();
    }
    fd_ = -1;
    if (error_ != 0) {
      const int err = error_;
      const bool was_sync = error_in_sync_;
      error_ = 0;
      error_in_sync_ = false;
      throw was_sync ? sync_error(path, err) : write_error(path, err);
    }
  }

  void wait_idle() noexcept override {
    while (in_flight() > 0) {
      if (!reap_one_noexcept()) break;
    }
    error_ = 0;
    error_in_sync_ = false;
    fd_ = -1;
  }

 private:
  UringWriter() {
    for (unsigned i = 0; i < kQueueDepth; ++i) free_[i] = kQueueDepth - 1 - i;
    free_count_ = kQueueDepth;
  }

  struct Op {
    const std::byte* data = nullptr;
    uint32_t len = 0;
    uint32_t done = 0;
    uint64_t offset = 0;
  };

  unsigned in_flight() const { return (kQueueDepth - free_count_) + (sync_pending_ ? 1 : 0); }

  io_uring_sqe* get_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe) {
      submit();
      sqe = io_uring_get_sqe(&ring_);
    }
    assert(sqe);  // the table never holds more operations than the queue has entries
    return sqe;
  }

  void submit() {
    for (;;) {
      const int r = io_uring_submit(&ring_);
      if (r >= 0) return;
      if (r == -EINTR || r == -EAGAIN || r == -EBUSY) {
        // The kernel is short of resources: completions free them.
        if (r != -EINTR && in_flight() > 0) {
          io_uring_cqe* cqe;
          io_uring_wait_cqe(&ring_, &cqe);
        }
        continue;
      }
      throw errno_error("io_uring_submit failed", -r);
    }
  }

  void prepare_write(unsigned slot) {
    const Op& op = ops_[slot];
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_write(sqe, fd_, op.data + op.done, op.len - op.done, op.offset + op.done);
    io_uring_sqe_set_data64(sqe, slot);
  }

  void prepare_sync() {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_fsync(sqe, fd_, IORING_FSYNC_DATASYNC);
    sqe->flags |= IOSQE_IO_DRAIN;
    io_uring_sqe_set_data64(sqe, kSyncTag);
    sync_pending_ = true;
  }

  void reap_one() {
    if (!reap_one_noexcept()) throw Error("io_uring: waiting for a completion failed");
  }

  // Submits what is queued and handles one completion. False when the ring itself fails.
  bool reap_one_noexcept() noexcept {
    io_uring_cqe* cqe = nullptr;
    for (;;) {
      const int r = io_uring_submit_and_wait(&ring_, 1);
      if (r == -EINTR) continue;
      if (r < 0 && r != -EBUSY && r != -EAGAIN) return false;
      const int w = io_uring_peek_cqe(&ring_, &cqe);
      if (w == 0 && cqe) break;
      if (w != -EAGAIN && w != 0) return false;
    }
    const uint64_t tag = io_uring_cqe_get_data64(cqe);
    const int res = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    if (tag == kSyncTag) {
      sync_pending_ = false;
      if (res < 0 && error_ == 0) {
        error_ = -res;
        error_in_sync_ = true;
      }
      return true;
    }
    Op& op = ops_[tag];
    if (res == -EINTR || res == -EAGAIN) {
      resubmit(unsigned(tag));
      return true;
    }
    if (res < 0 || res == 0) {
      if (error_ == 0) error_ = res < 0 ? -res : ENOSPC;  // no progress: the device is full
      release(unsigned(tag));
      return true;
    }
    op.done += uint32_t(res);
    if (op.done < op.len && error_ == 0) {
      resubmit(unsigned(tag));  // short write: the rest goes again
      return true;
    }
    release(unsigned(tag));
    return true;
  }

  void resubmit(unsigned slot) noexcept {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe) {
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    if (!sqe) {  // cannot happen with a table no larger than the queue; fail loudly anyway
      if (error_ == 0) error_ = EIO;
      release(slot);
      return;
    }
    const Op& op = ops_[slot];
    io_uring_prep_write(sqe, fd_, op.data + op.done, op.len - op.done, op.offset + op.done);
    io_uring_sqe_set_data64(sqe, slot);
    resubmitted_ = true;
  }

  void release(unsigned slot) noexcept { free_[free_count_++] = slot; }

  io_uring ring_{};
  bool ring_ready_ = true;
  std::array<Op, kQueueDepth> ops_{};
  std::array<unsigned, kQueueDepth> free_{};
  unsigned free_count_ = 0;
  bool sync_pending_ = false;
  bool resubmitted_ = false;
  int error_ = 0;
  bool error_in_sync_ = false;
  int fd_ = -1;
};

}  // namespace

std::unique_ptr<FileWriter> make_uring_writer(std::string* why_unavailable) {
  return UringWriter::create(why_unavailable);
}

}  // namespace walvault
