#include "core/lz4_pipeline.h"

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "core/lz4_frame.h"

namespace walvault {
namespace {

// Content is handed over in chunks of about this size; kDepth chunks may wait.
constexpr size_t kChunkBytes = 4 << 20;
constexpr size_t kDepth = 4;

// Thrown inside the worker to stop decoding once the consumer has given up.
struct Cancelled {};

class ChunkQueue {
 public:
  // Worker side. Blocks while the queue is full; throws Cancelled after cancel().
  void push(std::vector<std::byte> chunk) {
    std::unique_lock lock(mu_);
    room_.wait(lock, [&] { return cancelled_ || full_.size() < kDepth; });
    if (cancelled_) throw Cancelled{};
    full_.push_back(std::move(chunk));
    ready_.notify_one();
  }
  std::vector<std::byte> spare() {
    std::lock_guard lock(mu_);
    if (free_.empty()) return {};
    std::vector<std::byte> b = std::move(free_.back());
    free_.pop_back();
    b.clear();
    return b;
  }
  void finish(std::exception_ptr error) {
    std::lock_guard lock(mu_);
    done_ = true;
    error_ = error;
    ready_.notify_one();
  }

  // Consumer side. Returns false at the end (after which error() tells how it ended).
  bool pop(std::vector<std::byte>& out) {
    std::unique_lock lock(mu_);
    ready_.wait(lock, [&] { return done_ || !full_.empty(); });
    if (full_.empty()) return false;
    out = std::move(full_.front());
    full_.pop_front();
    room_.notify_one();
    return true;
  }
  void recycle(std::vector<std::byte> b) {
    std::lock_guard lock(mu_);
    if (free_.size() < kDepth + 1) free_.push_back(std::move(b));
  }
  void cancel() {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    room_.notify_all();
  }
  std::exception_ptr error() {
    std::lock_guard lock(mu_);
    return error_;
  }

 private:
  std::mutex mu_;
  std::condition_variable ready_, room_;
  std::deque<std::vector<std::byte>> full_;
  std::vector<std::vector<std::byte>> free_;
  bool done_ = false;
  bool cancelled_ = false;
  std::exception_ptr error_;
};

}  // namespace

void decode_lz4_file_pipelined(const fs::path& path,
                               const std::function<void(std::span<const std::byte>)>& on_content) {
  ChunkQueue queue;
  std::jthread worker([&] {
    try {
      std::vector<std::byte> chunk;
      decode_lz4_file(path, [&](std::span<const std::byte> part) {
        if (chunk.capacity() == 0) {
          chunk = queue.spare();
          chunk.reserve(kChunkBytes);
        }
        chunk.insert(chunk.end(), part.begin(), part.end());
        if (chunk.size() >= kChunkBytes) queue.push(std::exchange(chunk, {}));
      });
      if (!chunk.empty()) queue.push(std::move(chunk));
      queue.finish(nullptr);
    } catch (const Cancelled&) {
      queue.finish(nullptr);
    } catch (...) {
      queue.finish(std::current_exception());
    }
  });
  try {
    std::vector<std::byte> chunk;
    while (queue.pop(chunk)) {
      on_content(chunk);
      queue.recycle(std::move(chunk));
    }
  } catch (...) {
    queue.cancel();
    worker.join();
    throw;
  }
  worker.join();
  if (auto error = queue.error()) std::rethrow_exception(error);
}

}  // namespace walvault
