#pragma once
// The LZ4 frame format (so `lz4 -t` and `lz4 -d` read our files), written block by block
// by our own encoder so that a torn `.partial` can be cut at its last whole block and
// appended to after a restart:
//  - blocks are independent (no block refers to an earlier one), so any prefix of whole
//    blocks decodes on its own;
//  - every block carries an xxh32 checksum, so a torn or zero-filled tail is recognised;
//  - the content checksum is our own running xxh32, rebuilt from the kept prefix on resume.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fs.h"

struct XXH32_state_s;

namespace walvault {

class Lz4FrameEncoder {
 public:
  static constexpr size_t kBlockSize = 256 * 1024;  // the frame's "block max size" (BD = 5)
  static constexpr size_t kHeaderBytes = 7;
  static constexpr size_t kEndBytes = 8;  // end mark + content checksum
  static size_t max_block_bytes();        // worst case output of write_block

  explicit Lz4FrameEncoder(int acceleration = 1);
  ~Lz4FrameEncoder();
  Lz4FrameEncoder(const Lz4FrameEncoder&) = delete;
  Lz4FrameEncoder& operator=(const Lz4FrameEncoder&) = delete;

  // Starts a new frame: writes the header to dst (kHeaderBytes) and resets the content hash.
  size_t write_header(std::byte* dst);
  // Compresses src (at most kBlockSize bytes) into one block at dst (max_block_bytes() room).
  // Incompressible data is stored raw, as the format allows.
  size_t write_block(std::span<const std::byte> src, std::byte* dst);
  // Writes the end mark and the content checksum (kEndBytes).
  size_t write_end(std::byte* dst);
  // After a resume: feeds content already in the frame into the content checksum.
  void account_existing(std::span<const std::byte> content);

 private:
  int acceleration_;
  XXH32_state_s* content_hash_;
};

// Walks a frame written by Lz4FrameEncoder (or any frame with independent blocks) and
// reports how much of it is whole and verified. Used on `.partial` files after a crash.
struct Lz4FrameScan {
  bool header_ok = false;
  bool complete = false;       // end mark and content checksum present and correct
  uint64_t valid_bytes = 0;    // file bytes up to the end of the last whole, verified block
  uint64_t content_bytes = 0;  // decoded bytes in those blocks
  std::string problem;         // why scanning stopped early, when it did
  // Scanning stopped at bytes that cannot be a torn tail: a block (or the header) that lies
  // wholly inside the file fails its checksum and more than an end mark follows it. A crash
  // only tears the last write, so this is damage, not an interrupted append.
  bool damaged = false;
};

// Decoded content goes to on_content (may be empty to only count).
Lz4FrameScan scan_lz4_frame(std::span<const std::byte> frame,
                            const std::function<void(std::span<const std::byte>)>& on_content);

// Why a frame could not be decoded, without the file name the message carries.
class Lz4FrameError : public Error {
 public:
  Lz4FrameError(std::string message, std::string reason)
      : Error(std::move(message), "run walvault verify on the repository"),
        reason_(std::move(reason)) {}
  const std::string& reason() const { return reason_; }

 private:
  std::string reason_;
};

// A streaming decoder of one whole lz4 frame (any valid frame, checksums verified), fed in any
// chunking. Memory is bounded by the frame's block size (at most 4 MiB), whatever the input.
class Lz4FrameDecoder {
 public:
  using Sink = std::function<void(std::span<const std::byte>)>;
  // name_for_errors is quoted in messages ("\"<name>\" is damaged: ...").
  Lz4FrameDecoder(std::string name_for_errors, Sink on_content);
  ~Lz4FrameDecoder();
  Lz4FrameDecoder(const Lz4FrameDecoder&) = delete;
  Lz4FrameDecoder& operator=(const Lz4FrameDecoder&) = delete;

  // Throws Error when the bytes are not a valid frame, or continue after its end.
  void feed(std::span<const std::byte> data);
  // The input has ended: throws Error when the frame has not.
  void finish();
  uint64_t content_bytes() const { return content_bytes_; }
  bool ended() const { return hint_ == 0; }

 private:
  struct Ctx;
  std::string name_;
  Sink sink_;
  std::unique_ptr<Ctx> ctx_;
  std::vector<std::byte> out_;
  size_t hint_ = 1;
  uint64_t content_bytes_ = 0;
};

// Decodes a whole lz4 file (any valid frame, checksums verified) to on_content.
// Throws an Error naming the file when it is damaged or truncated.
void decode_lz4_file(const fs::path& path,
                     const std::function<void(std::span<const std::byte>)>& on_content);

}  // namespace walvault
