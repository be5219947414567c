#pragma once
// Storing the archives of a base backup: each tar archive becomes one LZ4 frame
// (Lz4FrameEncoder: independent, checksummed 256 KiB blocks) under backups/<id>/, written
// to "<name>.tmp", fsynced and renamed durably, with its sha256 and sizes recorded.
//
// ArchiveWriterPipeline is the two-stage version used by `walvault backup`: the thread
// reading the server's COPY stream only copies bytes into fixed 256 KiB chunks (a bounded
// pool, reused); a writer thread compresses whole chunks in place, hashes and writes them.
// So receiving and compressing overlap, memory stays bounded (kChunks x 256 KiB), and a
// slow disk pushes back on the server instead of filling memory.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "basebackup/backup_stream.h"
#include "core/backup_info.h"
#include "core/fs.h"
#include "core/hash.h"
#include "core/lz4_frame.h"
#include "core/unique_fd.h"

namespace walvault {

// One stored archive: a single LZ4 frame written through a temp file.
class StoredArchiveWriter {
 public:
  explicit StoredArchiveWriter(fs::path final_path);
  ~StoredArchiveWriter();  // removes the temp file unless finish() succeeded
  StoredArchiveWriter(const StoredArchiveWriter&) = delete;
  StoredArchiveWriter& operator=(const StoredArchiveWriter&) = delete;

  // Any amount of bytes; compressed a 256 KiB block at a time.
  void write(std::span<const std::byte> data);
  // Writes the end of the frame, fsyncs, renames to the final name, fsyncs the directory.
  BackupFile finish();

 private:
  void compress_block(std::span<const std::byte> block);
  void flush_output();

  fs::path final_path_, temp_path_;
  UniqueFd fd_;
  Lz4FrameEncoder encoder_;
  Sha256 sha_;
  std::vector<std::byte> pending_;  // input not yet a whole block
  std::vector<std::byte> out_;      // compressed bytes not yet written
  size_t out_fill_ = 0;
  uint64_t bytes_ = 0, stored_bytes_ = 0;
  bool finished_ = false;
};

struct StoredArchive {
  std::string archive_name;  // as the server named it: "base.tar", "16385.tar"
  std::optional<uint32_t> tablespace_oid;
  std::string location;  // tablespace directory on the server
  BackupFile file;
};

class ArchiveWriterPipeline final : public BackupStreamSink {
 public:
  static constexpr size_t kChunkBytes = Lz4FrameEncoder::kBlockSize;
  static constexpr size_t kChunks = 16;

  // Archives go to dir/<archive name>.lz4.
  explicit ArchiveWriterPipeline(fs::path dir);
  ~ArchiveWriterPipeline() override;  // stops the writer thread; unfinished files are removed

  void begin_archive(const std::string& name, const std::string& location) override;
  void archive_data(std::span<const std::byte> data) override;
  void end_archive() override;
  void manifest_data(std::span<const std::byte> data) override;
  void progress(uint64_t bytes_done) override { progress_bytes_ = bytes_done; }

  // Waits for the writer to store everything; rethrows the writer's error if it had one.
  std::vector<StoredArchive> finish();

  const std::string& manifest() const { return manifest_; }
  uint64_t received_bytes() const { return received_bytes_; }
  uint64_t progress_bytes() const { return progress_bytes_; }

 private:
  struct Item {
    enum class Kind { begin, data, end, stop } kind;
    std::string name, location;   // begin
    size_t chunk = 0, bytes = 0;  // data
  };

  void push(Item item);
  size_t take_free_chunk();
  void flush_current_chunk();
  void writer_main();
  void check_writer();

  fs::path dir_;
  std::vector<std::unique_ptr<std::byte[]>> chunks_;

  std::mutex mu_;
  std::condition_variable cv_items_, cv_free_;
  std::deque<Item> items_;
  std::vector<size_t> free_;
  std::exception_ptr writer_error_;
  bool writer_failed_ = false;
  std::vector<StoredArchive> stored_;

  // Receiver side only.
  std::optional<size_t> current_chunk_;
  size_t current_fill_ = 0;
  std::string manifest_;
  uint64_t received_bytes_ = 0;
  uint64_t progress_bytes_ = 0;

  std::thread writer_;
};

}  // namespace walvault
