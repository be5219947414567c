#pragma once
// The segment sink: receives WAL bytes in LSN order and turns them into repository files.
//
//   REPO/wal/<TLI>/<walfile>.lz4.partial   while the segment is incomplete (.partial without
//                                          .lz4 for Compression::none)
//   REPO/wal/<TLI>/<walfile>.lz4           once complete: fdatasync -> rename -> fsync dir
//
// lz4 files are one frame of independent 256 KiB blocks (core/lz4_frame.h). Every flush of a
// .partial also writes the frame's end mark (overwritten by the next block), so a durable
// .partial is always a whole lz4 frame, and a torn one is cut back to its verified prefix on
// resume. The sink knows segment boundaries (the server's segment size) and reports the
// highest LSN that is durable; only that LSN may be sent to the server as flushed.
// A completed segment is never overwritten with different bytes.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "core/io.h"
#include "core/lsn.h"
#include "core/lz4_frame.h"
#include "core/repository.h"
#include "core/unique_fd.h"

namespace walvault {

class SegmentSink {
 public:
  SegmentSink(const Repository& repo, Compression compression, FileWriter& writer);
  ~SegmentSink();  // closes without flushing (like a crash); call finish() for durability
  SegmentSink(const SegmentSink&) = delete;
  SegmentSink& operator=(const SegmentSink&) = delete;

  // Positions the sink at start on tli. start is a segment start (an old .partial of that
  // segment is replaced), or lies inside a segment whose .partial holds at least the bytes
  // before start: its verified prefix is kept, a torn tail cut off, and writing continues
  // in the same file (an uncompressed .partial or one of the other compression is
  // converted). Anything else is an Error.
  void open(TimelineId tli, Lsn start);

  // For a start that needs no streaming (--endpos already archived): makes what the archive
  // holds up to `end` on tli durable (an earlier run may have died before its fdatasync)
  // without rewriting anything. The sink stays closed.
  void sync_archived(TimelineId tli, Lsn end);

  // Appends data, which must start at position(); splits at segment boundaries and
  // completes (durably) every segment it fills.
  void write(Lsn at, std::span<const std::byte> data);
  // Makes everything received durable: durable_lsn() == position().
  void flush();
  // flush(), then closes the current file; an incomplete segment stays .partial.
  void finish();

  bool is_open() const { return open_; }
  TimelineId timeline() const { return tli_; }
  Lsn position() const { return position_; }
  Lsn durable_lsn() const { return durable_; }
  uint64_t segments_completed() const { return segments_completed_; }

 private:
  void open_segment(SegmentNo segno);
  void resume_segment(SegmentNo segno, uint64_t content_bytes);
  void complete_full_partial(SegmentNo next);
  uint64_t partial_content_bytes(const fs::path& path, Compression c) const;
  void append(std::span<const std::byte> data);
  void emit_pending();
  void queue(std::span<const std::byte> bytes);  // copies into staging, queues the write
  std::byte* staging_room(size_t bytes);
  void complete_segment();
  void sync_file();
  void close_file() noexcept;
  void rewrite_partial(SegmentNo segno, std::span<const std::byte> content,
                       const fs::path& old_partial);

  const Repository& repo_;
  const Compression compression_;
  FileWriter& writer_;
  const uint64_t segment_size_;

  bool open_ = false;
  TimelineId tli_;
  Lsn position_;  // everything received
  Lsn durable_;   // everything durable

  // The current segment file (fd invalid between segments).
  UniqueFd fd_;
  SegmentNo segno_;
  fs::path partial_path_;
  uint64_t file_end_ = 0;          // where the next block (or the end mark) goes
  uint64_t content_in_file_ = 0;   // segment bytes in the file (excluding pending_)
  bool dir_entry_synced_ = false;  // the file's directory entry is durable
  std::unique_ptr<Lz4FrameEncoder> encoder_;

  std::vector<std::byte> pending_;  // lz4: content of the next block (< kBlockSize)
  std::vector<std::byte> staging_;  // bytes queued to the writer since its last complete()
  size_t staging_used_ = 0;
  uint64_t segments_completed_ = 0;
};

// The checksum used to compare two copies of a segment: sha256 of the WAL content.
std::string segment_content_sha256(const fs::path& file, Compression compression);

}  // namespace walvault
