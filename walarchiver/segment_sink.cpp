#include "walarchiver/segment_sink.h"

#include <fcntl.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "core/hash.h"
#include "core/log.h"

namespace walvault {
namespace {

// Bytes queued to the writer between two complete() calls: a few lz4 blocks.
size_t staging_capacity() {
  return 8 * Lz4FrameEncoder::max_block_bytes();
}

Compression other(Compression c) {
  return c == Compression::lz4 ? Compression::none : Compression::lz4;
}

std::span<const std::byte> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// The durable content of a .partial (all of it, or the verified prefix for lz4).
std::string partial_content(const fs::path& path, Compression c) {
  std::string file = read_file(path);
  if (c == Compression::none) return file;
  std::string content;
  scan_lz4_frame(bytes_of(file), [&](std::span<const std::byte> part) {
    content.append(reinterpret_cast<const char*>(part.data()), part.size());
  });
  return content;
}

}  // namespace

std::string segment_content_sha256(const fs::path& file, Compression compression) {
  Sha256 sha;
  if (compression == Compression::lz4) {
    decode_lz4_file(file, [&](std::span<const std::byte> part) { sha.update(part); });
  } else {
    sha.update(read_file(file));
  }
  return sha.hex_digest();
}

SegmentSink::SegmentSink(const Repository& repo, Compression compression, FileWriter& writer)
    : repo_(repo),
      compression_(compression),
      writer_(writer),
      segment_size_(repo.segment_size()),
      staging_(staging_capacity()) {
  pending_.reserve(Lz4FrameEncoder::kBlockSize);
}

SegmentSink::~SegmentSink() {
  close_file();
}

void SegmentSink::close_file() noexcept {
  // No buffer may be freed (or reused) while the kernel might still read it.
  writer_.wait_idle();
  staging_used_ = 0;
  pending_.clear();
  fd_.reset();
  encoder_.reset();
}

void SegmentSink::open(TimelineId tli, Lsn start) {
  if (open_) finish();
  tli_ = tli;
  position_ = durable_ = start;
  open_ = true;
  const fs::path dir = repo_.wal_dir(tli);
  make_dirs(dir);
  // A rename of an earlier run may not have reached the disk before it died.
  fsync_dir(dir);
  const uint64_t offset = segment_offset(start, segment_size_);
  if (offset != 0) {
    resume_segment(segment_of(start, segment_size_), offset);
  } else {
    complete_full_partial(segment_of(start, segment_size_));
  }
}

uint64_t SegmentSink::partial_content_bytes(const fs::path& path, Compression c) const {
  if (c == Compression::none) return fs::file_size(path);
  const std::string frame = read_file(path);
  return scan_lz4_frame(bytes_of(frame), [](std::span<const std::byte>) {}).content_bytes;
}

void SegmentSink::complete_full_partial(SegmentNo next) {
  // An earlier run that died between the fdatasync of a full segment and its rename leaves
  // a .partial holding the whole segment; the archive's end is then the next segment's
  // start, so nothing would ever resume (and rename) that file. Finish it here.
  if (next.value == 0) return;
  const SegmentNo segno(next.value - 1);
  if (repo_.find_complete_segment(tli_, segno)) return;
  std::optional<Compression> found;
  for (Compression c : {compression_, other(compression_)}) {
    const fs::path partial = repo_.segment_path(tli_, segno, c, true);
    if (fs::exists(partial) && partial_content_bytes(partial, c) >= segment_size_) {
      found = c;
      break;
    }
  }
  if (!found) return;
  const Lsn resume_at = position_;
  log::info("completing WAL segment " + wal_file_name(tli_, segno, segment_size_) +
            ": its .partial already holds the whole segment");
  resume_segment(segno, segment_size_);
  position_ = resume_at;
  complete_segment();
  close_file();
}

void SegmentSink::sync_archived(TimelineId tli, Lsn end) {
  const fs::path dir = repo_.wal_dir(tli);
  if (!fs::exists(dir)) return;
  fsync_dir(dir);
  if (segment_offset(end, segment_size_) == 0) {
    tli_ = tli;
    position_ = durable_ = end;
    complete_full_partial(segment_of(end, segment_size_));
    return;
  }
  const SegmentNo segno = segment_of(end, segment_size_);
  for (Compression c : {compression_, other(compression_)}) {
    const fs::path partial = repo_.segment_path(tli, segno, c, true);
    if (!fs::exists(partial)) continue;
    UniqueFd fd = open_or_throw(partial, O_RDONLY);
    if (::fdatasync(fd.get()) != 0) throw sync_error(partial, errno);
  }
}

void SegmentSink::open_segment(SegmentNo segno) {
  segno_ = segno;
  partial_path_ = repo_.segment_path(tli_, segno, compression_, true);
  // A .partial of the other compression is superseded by this one.
  const fs::path stale = repo_.segment_path(tli_, segno, other(compression_), true);
  if (::unlink(stale.c_str()) == 0) {
    log::info("replacing \"" + stale.string() + "\"");
  }
  fd_ = open_or_throw(partial_path_, O_WRONLY | O_CREAT | O_TRUNC);
  dir_entry_synced_ = false;
  file_end_ = 0;
  content_in_file_ = 0;
  pending_.clear();
  staging_used_ = 0;
  if (compression_ == Compression::lz4) {
    encoder_ = std::make_unique<Lz4FrameEncoder>();
    std::byte* dst = staging_room(Lz4FrameEncoder::kHeaderBytes);
    const size_t n = encoder_->write_header(dst);
    writer_.write(fd_.get(), {dst, n}, 0, partial_path_);
    staging_used_ += n;
    file_end_ = n;
  }
}

void SegmentSink::resume_segment(SegmentNo segno, uint64_t content_bytes) {
  const Lsn at = segment_start(segno, segment_size_) + content_bytes;
  const fs::path ours = repo_.segment_path(tli_, segno, compression_, true);
  const fs::path theirs = repo_.segment_path(tli_, segno, other(compression_), true);
  const bool have_ours = fs::exists(ours);
  if (!have_ours && !fs::exists(theirs)) {
    throw Error("cannot continue at " + at.str() + ": \"" + ours.string() + "\" does not exist",
                "start at a segment boundary, or restore the .partial file");
  }
  const fs::path& source = have_ours ? ours : theirs;
  const Compression source_compression = have_ours ? compression_ : other(compression_);
  auto too_short = [&](uint64_t have) {
    return Error("cannot continue at " + at.str() + ": \"" + source.string() + "\" holds only " +
                 std::to_string(have) + " durable bytes of the segment");
  };

  if (have_ours && compression_ == Compression::lz4) {
    const std::string frame = read_file(ours);
    auto encoder = std::make_unique<Lz4FrameEncoder>();
    const Lz4FrameScan scan = scan_lz4_frame(
        bytes_of(frame),
        [&](std::span<const std::byte> content) { encoder->account_existing(content); });
    if (scan.header_ok && scan.content_bytes == content_bytes) {
      // Append to the same frame: cut the torn tail (and the end mark of the last flush).
      const uint64_t keep =
          scan.complete ? scan.valid_bytes - Lz4FrameEncoder::kEndBytes : scan.valid_bytes;
      fd_ = open_or_throw(ours, O_WRONLY);
      if (::ftruncate(fd_.get(), off_t(keep)) != 0) {
        throw errno_error("could not truncate \"" + ours.string() + "\"", errno);
      }
      if (!scan.problem.empty()) {
        log::info("cut \"" + ours.string() + "\" back to its verified prefix (" +
                  std::to_string(keep) + " of " + std::to_string(frame.size()) +
                  " bytes: " + scan.problem + ")");
      }
      segno_ = segno;
      partial_path_ = ours;
      encoder_ = std::move(encoder);
      file_end_ = keep;
      content_in_file_ = content_bytes;
      dir_entry_synced_ = false;
      // What an earlier run wrote may still be only in the page cache: make it durable
      // before anything is reported as flushed.
      sync_file();
      return;
    }
    if (scan.content_bytes < content_bytes) throw too_short(scan.content_bytes);
  } else if (have_ours) {  // uncompressed: the file's bytes are its content
    const uint64_t size = fs::file_size(ours);
    if (size < content_bytes) throw too_short(size);
    fd_ = open_or_throw(ours, O_WRONLY);
    if (::ftruncate(fd_.get(), off_t(content_bytes)) != 0) {
      throw errno_error("could not truncate \"" + ours.string() + "\"", errno);
    }
    segno_ = segno;
    partial_path_ = ours;
    file_end_ = content_bytes;
    content_in_file_ = content_bytes;
    dir_entry_synced_ = false;
    sync_file();
    return;
  }
  // Another compression, or more content than wanted: rewrite the prefix into a new file.
  const std::string content = partial_content(source, source_compression);
  if (content.size() < content_bytes) throw too_short(content.size());
  log::info("rewriting \"" + source.string() + "\" up to " + at.str() + " as \"" +
            ours.filename().string() + "\"");
  rewrite_partial(segno, bytes_of(content).first(content_bytes), source);
}

void SegmentSink::rewrite_partial(SegmentNo segno, std::span<const std::byte> content,
                                  const fs::path& old_partial) {
  const Lsn at = position_;
  position_ = durable_ = segment_start(segno, segment_size_);
  open_segment(segno);  // removes old_partial when it is of the other compression
  append(content);
  position_ = at;
  sync_file();
  if (old_partial != partial_path_ && ::unlink(old_partial.c_str()) == 0) {
    fsync_dir(old_partial.parent_path());
  }
}

std::byte* SegmentSink::staging_room(size_t bytes) {
  assert(bytes <= staging_.size());
  if (staging_used_ + bytes > staging_.size()) {
    writer_.complete(fd_.get(), /*sync=*/false, partial_path_);
    staging_used_ = 0;
  }
  return staging_.data() + staging_used_;
}

void SegmentSink::queue(std::span<const std::byte> bytes) {
  while (!bytes.empty()) {
    if (staging_used_ == staging_.size()) {
      writer_.complete(fd_.get(), /*sync=*/false, partial_path_);
      staging_used_ = 0;
    }
    const size_t n = std::min(bytes.size(), staging_.size() - staging_used_);
    std::byte* dst = staging_.data() + staging_used_;
    std::memcpy(dst, bytes.data(), n);
    writer_.write(fd_.get(), {dst, n}, file_end_, partial_path_);
    staging_used_ += n;
    file_end_ += n;
    content_in_file_ += n;
    bytes = bytes.subspan(n);
  }
}

void SegmentSink::emit_pending() {
  if (pending_.empty()) return;
  std::byte* dst = staging_room(Lz4FrameEncoder::max_block_bytes());
  const size_t n = encoder_->write_block(pending_, dst);
  writer_.write(fd_.get(), {dst, n}, file_end_, partial_path_);
  staging_used_ += n;
  file_end_ += n;
  content_in_file_ += pending_.size();
  pending_.clear();
}

void SegmentSink::append(std::span<const std::byte> data) {
  if (!fd_.valid()) open_segment(segment_of(position_, segment_size_));
  if (compression_ == Compression::none) {
    queue(data);
    return;
  }
  while (!data.empty()) {
    const size_t n = std::min(data.size(), Lz4FrameEncoder::kBlockSize - pending_.size());
    pending_.insert(pending_.end(), data.begin(), data.begin() + long(n));
    data = data.subspan(n);
    if (pending_.size() == Lz4FrameEncoder::kBlockSize) emit_pending();
  }
}

void SegmentSink::write(Lsn at, std::span<const std::byte> data) {
  assert(open_);
  if (at != position_) {
    throw Error("received WAL at " + at.str() + ", but the archive continues at " +
                position_.str());
  }
  while (!data.empty()) {
    const uint64_t room = segment_size_ - segment_offset(position_, segment_size_);
    const size_t n = size_t(std::min<uint64_t>(room, data.size()));
    append(data.first(n));
    position_ = position_ + n;
    data = data.subspan(n);
    if (segment_offset(position_, segment_size_) == 0) complete_segment();
  }
}

// Writes what is pending and the end mark of a .partial, then fdatasyncs.
void SegmentSink::sync_file() {
  if (compression_ == Compression::lz4) {
    emit_pending();
    // Not counted in file_end_: the next block overwrites it.
    std::byte* dst = staging_room(Lz4FrameEncoder::kEndBytes);
    const size_t n = encoder_->write_end(dst);
    writer_.write(fd_.get(), {dst, n}, file_end_, partial_path_);
    staging_used_ += n;
  }
  writer_.complete(fd_.get(), /*sync=*/true, partial_path_);
  staging_used_ = 0;
  if (!dir_entry_synced_) {
    fsync_dir(partial_path_.parent_path());
    dir_entry_synced_ = true;
  }
  durable_ = segment_start(segno_, segment_size_) + content_in_file_;
}

void SegmentSink::complete_segment() {
  if (compression_ == Compression::lz4) {
    emit_pending();
    std::byte* dst = staging_room(Lz4FrameEncoder::kEndBytes);
    const size_t n = encoder_->write_end(dst);
    writer_.write(fd_.get(), {dst, n}, file_end_, partial_path_);
    staging_used_ += n;
    file_end_ += n;
  }
  assert(content_in_file_ == segment_size_);
  writer_.complete(fd_.get(), /*sync=*/true, partial_path_);
  staging_used_ = 0;
  fd_.reset();
  encoder_.reset();

  const std::string name = wal_file_name(tli_, segno_, segment_size_);
  if (auto existing = repo_.find_complete_segment(tli_, segno_)) {
    // Never overwrite a completed segment: identical content is a no-op, different is loud.
    const std::string have = segment_content_sha256(existing->path, existing->compression);
    const std::string got = segment_content_sha256(partial_path_, compression_);
    if (have != got) {
      throw Error("WAL segment " + name + " is already archived with different content " +
                      "(archived sha256 " + have + ", received sha256 " + got + ")",
                  "the repository may hold WAL of another server or a damaged file; keep \"" +
                      partial_path_.string() + "\" and investigate before archiving further");
    }
    log::info("WAL segment " + name + " was already archived with identical content");
    if (::unlink(partial_path_.c_str()) != 0) {
      throw errno_error("could not remove \"" + partial_path_.string() + "\"", errno);
    }
    fsync_dir(partial_path_.parent_path());
  } else {
    rename_durable(partial_path_, repo_.segment_path(tli_, segno_, compression_, false));
  }
  durable_ = position_;
  ++segments_completed_;
  log::debug("archived WAL segment " + name);
}

void SegmentSink::flush() {
  if (fd_.valid()) {
    sync_file();
  } else {
    assert(pending_.empty());
    durable_ = position_;  // at a segment boundary: the last segment completed durably
  }
}

void SegmentSink::finish() {
  if (!open_) return;
  flush();
  close_file();
  open_ = false;
}

}  // namespace walvault
