#include "basebackup/archive_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "core/error.h"
#include "core/tar.h"

namespace walvault {
namespace {

constexpr size_t kBlock = Lz4FrameEncoder::kBlockSize;
constexpr size_t kOutputBytes = 4 << 20;  // compressed bytes gathered per write()

// Checks while storing that each archive is a whole tar stream, so a damaged or cut stream
// fails the backup instead of surfacing at restore time. Content is not looked at.
class NullTarSink final : public TarSink {
 public:
  void begin_entry(const TarEntry&) override {}
  void entry_data(std::span<const std::byte>) override {}
  void end_entry() override {}
};

}  // namespace

StoredArchiveWriter::StoredArchiveWriter(fs::path final_path)
    : final_path_(std::move(final_path)), temp_path_(final_path_.string() + ".tmp") {
  fd_ = open_or_throw(temp_path_, O_WRONLY | O_CREAT | O_TRUNC);
  pending_.reserve(kBlock);
  out_.resize(kOutputBytes + Lz4FrameEncoder::max_block_bytes() + Lz4FrameEncoder::kEndBytes);
  out_fill_ = encoder_.write_header(out_.data());
}

StoredArchiveWriter::~StoredArchiveWriter() {
  if (!finished_) {
    fd_.reset();
    ::unlink(temp_path_.c_str());
  }
}

void StoredArchiveWriter::compress_block(std::span<const std::byte> block) {
  out_fill_ += encoder_.write_block(block, out_.data() + out_fill_);
  bytes_ += block.size();
  if (out_fill_ >= kOutputBytes) flush_output();
}

void StoredArchiveWriter::flush_output() {
  if (out_fill_ == 0) return;
  std::span<const std::byte> out(out_.data(), out_fill_);
  write_all(fd_.get(), out, temp_path_);
  sha_.update(out);
  stored_bytes_ += out_fill_;
  out_fill_ = 0;
}

void StoredArchiveWriter::write(std::span<const std::byte> data) {
  if (!pending_.empty()) {
    const size_t n = std::min(kBlock - pending_.size(), data.size());
    pending_.insert(pending_.end(), data.begin(), data.begin() + long(n));
    data = data.subspan(n);
    if (pending_.size() < kBlock) return;
    compress_block(pending_);
    pending_.clear();
  }
  // Whole blocks straight from the caller's memory: no copy on the common path.
  while (data.size() >= kBlock) {
    compress_block(data.first(kBlock));
    data = data.subspan(kBlock);
  }
  pending_.insert(pending_.end(), data.begin(), data.end());
}

BackupFile StoredArchiveWriter::finish() {
  if (!pending_.empty()) {
    compress_block(pending_);
    pending_.clear();
  }
  out_fill_ += encoder_.write_end(out_.data() + out_fill_);
  flush_output();
  fsync_fd(fd_.get(), temp_path_);
  fd_.reset();
  rename_durable(temp_path_, final_path_);
  finished_ = true;
  BackupFile f;
  f.name = final_path_.filename().string();
  f.bytes = bytes_;
  f.stored_bytes = stored_bytes_;
  f.sha256 = sha_.hex_digest();
  return f;
}

// ------------------------------------------------------------------- pipeline

ArchiveWriterPipeline::ArchiveWriterPipeline(fs::path dir) : dir_(std::move(dir)) {
  for (size_t i = 0; i < kChunks; ++i) {
    chunks_.push_back(std::make_unique<std::byte[]>(kChunkBytes));
    free_.push_back(i);
  }
  writer_ = std::thread([this] { writer_main(); });
}

ArchiveWriterPipeline::~ArchiveWriterPipeline() {
  if (writer_.joinable()) {
    {
      std::lock_guard lock(mu_);
      items_.push_back({Item::Kind::stop, {}, {}, 0, 0});
    }
    cv_items_.notify_one();
    writer_.join();
  }
}

void ArchiveWriterPipeline::check_writer() {
  std::lock_guard lock(mu_);
  if (writer_failed_) std::rethrow_exception(writer_error_);
}

void ArchiveWriterPipeline::push(Item item) {
  {
    std::lock_guard lock(mu_);
    if (writer_failed_) std::rethrow_exception(writer_error_);
    items_.push_back(std::move(item));
  }
  cv_items_.notify_one();
}

size_t ArchiveWriterPipeline::take_free_chunk() {
  std::unique_lock lock(mu_);
  cv_free_.wait(lock, [&] { return !free_.empty() || writer_failed_; });
  if (writer_failed_) std::rethrow_exception(writer_error_);
  const size_t c = free_.back();
  free_.pop_back();
  return c;
}

void ArchiveWriterPipeline::flush_current_chunk() {
  if (!current_chunk_) return;
  const size_t chunk = *current_chunk_;
  current_chunk_.reset();
  if (current_fill_ == 0) {
    std::lock_guard lock(mu_);
    free_.push_back(chunk);
    return;
  }
  push({Item::Kind::data, {}, {}, chunk, current_fill_});
  current_fill_ = 0;
}

void ArchiveWriterPipeline::begin_archive(const std::string& name, const std::string& location) {
  flush_current_chunk();
  push({Item::Kind::begin, name, location, 0, 0});
}

void ArchiveWriterPipeline::archive_data(std::span<const std::byte> data) {
  received_bytes_ += data.size();
  while (!data.empty()) {
    if (!current_chunk_) {
      current_chunk_ = take_free_chunk();
      current_fill_ = 0;
    }
    const size_t n = std::min(kChunkBytes - current_fill_, data.size());
    std::memcpy(chunks_[*current_chunk_].get() + current_fill_, data.data(), n);
    current_fill_ += n;
    data = data.subspan(n);
    if (current_fill_ == kChunkBytes) flush_current_chunk();
  }
}

void ArchiveWriterPipeline::end_archive() {
  flush_current_chunk();
  push({Item::Kind::end, {}, {}, 0, 0});
}

void ArchiveWriterPipeline::manifest_data(std::span<const std::byte> data) {
  manifest_.append(reinterpret_cast<const char*>(data.data()), data.size());
}

std::vector<StoredArchive> ArchiveWriterPipeline::finish() {
  flush_current_chunk();
  push({Item::Kind::stop, {}, {}, 0, 0});
  writer_.join();
  std::lock_guard lock(mu_);
  if (writer_failed_) std::rethrow_exception(writer_error_);
  return std::move(stored_);
}

void ArchiveWriterPipeline::writer_main() {
  std::unique_ptr<StoredArchiveWriter> file;
  std::unique_ptr<NullTarSink> tar_sink;
  std::unique_ptr<TarReader> tar;
  StoredArchive current;
  try {
    for (;;) {
      Item item;
      {
        std::unique_lock lock(mu_);
        cv_items_.wait(lock, [&] { return !items_.empty(); });
        item = std::move(items_.front());
        items_.pop_front();
      }
      switch (item.kind) {
        case Item::Kind::begin:
          if (file) throw Error("internal error: archive \"" + item.name + "\" begins twice");
          current = StoredArchive{};
          current.archive_name = item.name;
          current.tablespace_oid = tablespace_oid_of_archive(item.name);
          current.location = item.location;
          file = std::make_unique<StoredArchiveWriter>(dir_ / (item.name + ".lz4"));
          tar_sink = std::make_unique<NullTarSink>();
          tar = std::make_unique<TarReader>(*tar_sink, item.name);
          break;
        case Item::Kind::data: {
          std::span<const std::byte> data(chunks_[item.chunk].get(), item.bytes);
          tar->feed(data);
          file->write(data);
          {
            std::lock_guard lock(mu_);
            free_.push_back(item.chunk);
          }
          cv_free_.notify_one();
          break;
        }
        case Item::Kind::end:
          tar->finish();
          current.file = file->finish();
          file.reset();
          tar.reset();
          {
            std::lock_guard lock(mu_);
            stored_.push_back(std::move(current));
          }
          break;
        case Item::Kind::stop:
          return;  // an unfinished file is removed by its destructor
      }
    }
  } catch (...) {
    file.reset();
    {
      std::lock_guard lock(mu_);
      writer_error_ = std::current_exception();
      writer_failed_ = true;
    }
    cv_free_.notify_all();
  }
}

}  // namespace walvault
