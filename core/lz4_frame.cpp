#include "core/lz4_frame.h"

#include <fcntl.h>
#include <lz4.h>
#include <lz4frame.h>
#include <xxhash.h>

#include <cstring>
#include <vector>

#include "core/error.h"

namespace walvault {
namespace {

constexpr uint32_t kMagic = 0x184D2204;
constexpr uint8_t kFlgVersion = 0x40;
constexpr uint8_t kFlgBlockIndependent = 0x20;
constexpr uint8_t kFlgBlockChecksum = 0x10;
constexpr uint8_t kFlgContentSize = 0x08;
constexpr uint8_t kFlgContentChecksum = 0x04;
constexpr uint8_t kFlgDictId = 0x01;
constexpr uint32_t kUncompressedBit = 0x80000000u;

void put_u32(std::byte* dst, uint32_t v) {
  for (int i = 0; i < 4; ++i) dst[i] = std::byte((v >> (8 * i)) & 0xff);
}

uint32_t get_u32(const std::byte* src) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(std::to_integer<uint8_t>(src[i])) << (8 * i);
  return v;
}

size_t block_max_for_bd(uint8_t bd) {
  switch ((bd >> 4) & 7) {
    case 4:
      return 64 * 1024;
    case 5:
      return 256 * 1024;
    case 6:
      return 1024 * 1024;
    case 7:
      return 4 * 1024 * 1024;
    default:
      return 0;
  }
}

// LZ4F's error names ("ERROR_blockChecksum_invalid") in words.
std::string lz4f_problem(size_t code) {
  const std::string name = LZ4F_getErrorName(code);
  if (name.find("blockChecksum") != std::string::npos) return "block checksum mismatch";
  if (name.find("contentChecksum") != std::string::npos) return "content checksum mismatch";
  if (name.find("headerChecksum") != std::string::npos) return "frame header checksum mismatch";
  if (name.find("frameType_unknown") != std::string::npos) return "not an lz4 frame";
  if (name.find("decompressionFailed") != std::string::npos) return "a block does not decompress";
  if (name.find("frameSize_wrong") != std::string::npos) return "content size mismatch";
  return name;
}

}  // namespace

size_t Lz4FrameEncoder::max_block_bytes() {
  return 4 + size_t(LZ4_compressBound(int(kBlockSize))) + 4;
}

Lz4FrameEncoder::Lz4FrameEncoder(int acceleration)
    : acceleration_(acceleration), content_hash_(XXH32_createState()) {
  XXH32_reset(content_hash_, 0);
}

Lz4FrameEncoder::~Lz4FrameEncoder() {
  XXH32_freeState(content_hash_);
}

size_t Lz4FrameEncoder::write_header(std::byte* dst) {
  XXH32_reset(content_hash_, 0);
  put_u32(dst, kMagic);
  dst[4] = std::byte(kFlgVersion | kFlgBlockIndependent | kFlgBlockChecksum | kFlgContentChecksum);
  dst[5] = std::byte(5 << 4);  // 256 KiB blocks
  dst[6] = std::byte((XXH32(dst + 4, 2, 0) >> 8) & 0xff);
  return kHeaderBytes;
}

size_t Lz4FrameEncoder::write_block(std::span<const std::byte> src, std::byte* dst) {
  XXH32_update(content_hash_, src.data(), src.size());
  std::byte* payload = dst + 4;
  int n =
      LZ4_compress_fast(reinterpret_cast<const char*>(src.data()), reinterpret_cast<char*>(payload),
                        int(src.size()), LZ4_compressBound(int(src.size())), acceleration_);
  uint32_t size_field;
  size_t payload_bytes;
  if (n <= 0 || size_t(n) >= src.size()) {
    std::memcpy(payload, src.data(), src.size());
    payload_bytes = src.size();
    size_field = uint32_t(src.size()) | kUncompressedBit;
  } else {
    payload_bytes = size_t(n);
    size_field = uint32_t(n);
  }
  put_u32(dst, size_field);
  put_u32(payload + payload_bytes, XXH32(payload, payload_bytes, 0));
  return 4 + payload_bytes + 4;
}

size_t Lz4FrameEncoder::write_end(std::byte* dst) {
  put_u32(dst, 0);
  put_u32(dst + 4, XXH32_digest(content_hash_));
  return kEndBytes;
}

void Lz4FrameEncoder::account_existing(std::span<const std::byte> content) {
  XXH32_update(content_hash_, content.data(), content.size());
}

Lz4FrameScan scan_lz4_frame(std::span<const std::byte> frame,
                            const std::function<void(std::span<const std::byte>)>& on_content) {
  Lz4FrameScan scan;
  if (frame.size() < 7 || get_u32(frame.data()) != kMagic) {
    scan.problem = frame.empty() ? "empty file" : "no lz4 frame header";
    scan.damaged = frame.size() > Lz4FrameEncoder::kHeaderBytes + Lz4FrameEncoder::kEndBytes;
    return scan;
  }
  const uint8_t flg = std::to_integer<uint8_t>(frame[4]);
  const uint8_t bd = std::to_integer<uint8_t>(frame[5]);
  size_t pos = 6;
  if (flg & kFlgContentSize) pos += 8;
  if (flg & kFlgDictId) pos += 4;
  if (frame.size() < pos + 1) {
    scan.problem = "truncated lz4 frame header";
    return scan;
  }
  const uint8_t hc = std::to_integer<uint8_t>(frame[pos]);
  // A header is written together with the first block: a bad header with more than a header
  // and an end mark behind it is no torn first write.
  const bool data_follows_header = frame.size() > pos + 1 + Lz4FrameEncoder::kEndBytes;
  if ((flg & 0xC0) != kFlgVersion || !(flg & kFlgBlockIndependent) ||
      ((XXH32(frame.data() + 4, pos - 4, 0) >> 8) & 0xff) != hc) {
    scan.problem = "unsupported or damaged lz4 frame header";
    scan.damaged = data_follows_header;
    return scan;
  }
  const size_t block_max = block_max_for_bd(bd);
  if (block_max == 0) {
    scan.problem = "invalid lz4 block size";
    scan.damaged = data_follows_header;
    return scan;
  }
  pos += 1;
  scan.header_ok = true;
  scan.valid_bytes = pos;
  const bool block_sums = flg & kFlgBlockChecksum;
  XXH32_state_t* content = XXH32_createState();
  XXH32_reset(content, 0);
  std::vector<std::byte> out(block_max);
  for (;;) {
    if (frame.size() < pos + 4) {
      if (frame.size() != pos) scan.problem = "torn block header";
      break;
    }
    const uint32_t field = get_u32(frame.data() + pos);
    if (field == 0) {  // end mark
      if (flg & kFlgContentChecksum) {
        if (frame.size() < pos + 8) {
          scan.problem = "truncated content checksum";
          break;
        }
        if (get_u32(frame.data() + pos + 4) != XXH32_digest(content)) {
          scan.problem = "content checksum mismatch";
          break;
        }
        pos += 4;
      }
      pos += 4;
      scan.valid_bytes = pos;
      scan.complete = true;
      if (frame.size() != pos) scan.problem = "bytes after the end of the frame";
      break;
    }
    const size_t size = field & ~kUncompressedBit;
    const size_t need = 4 + size + (block_sums ? 4 : 0);
    // Bytes behind a whole block that fails: more than an end mark means later writes
    // landed after it, so it is no torn tail.
    const bool more_follows = frame.size() - pos > need + Lz4FrameEncoder::kEndBytes;
    if (size > block_max) {
      scan.problem = "invalid block size";
      scan.damaged = frame.size() - pos > 4 + block_max + 4 + Lz4FrameEncoder::kEndBytes;
      break;
    }
    if (frame.size() < pos + need) {
      scan.problem = "torn block";
      break;
    }
    const std::byte* payload = frame.data() + pos + 4;
    if (block_sums && get_u32(payload + size) != XXH32(payload, size, 0)) {
      scan.problem = "block checksum mismatch";
      scan.damaged = more_follows;
      break;
    }
    std::span<const std::byte> decoded;
    if (field & kUncompressedBit) {
      decoded = {payload, size};
    } else {
      int n = LZ4_decompress_safe(reinterpret_cast<const char*>(payload),
                                  reinterpret_cast<char*>(out.data()), int(size), int(block_max));
      if (n < 0) {
        scan.problem = "block does not decompress";
        scan.damaged = more_follows;
        break;
      }
      decoded = {out.data(), size_t(n)};
    }
    XXH32_update(content, decoded.data(), decoded.size());
    if (on_content) on_content(decoded);
    scan.content_bytes += decoded.size();
    pos += need;
    scan.valid_bytes = pos;
  }
  XXH32_freeState(content);
  return scan;
}

struct Lz4FrameDecoder::Ctx {
  LZ4F_dctx* dctx = nullptr;
  ~Ctx() {
    if (dctx) LZ4F_freeDecompressionContext(dctx);
  }
};

Lz4FrameDecoder::Lz4FrameDecoder(std::string name_for_errors, Sink on_content)
    : name_(std::move(name_for_errors)), sink_(std::move(on_content)), ctx_(new Ctx) {
  if (LZ4F_isError(LZ4F_createDecompressionContext(&ctx_->dctx, LZ4F_VERSION))) {
    throw Error("could not create an lz4 decompression context");
  }
  out_.resize(256 * 1024);
}

Lz4FrameDecoder::~Lz4FrameDecoder() = default;

void Lz4FrameDecoder::feed(std::span<const std::byte> data) {
  size_t consumed = 0;
  while (consumed < data.size()) {
    if (hint_ == 0) {
      throw Lz4FrameError("\"" + name_ + "\" has bytes after the end of its lz4 frame",
                          "bytes after the end of the lz4 frame");
    }
    size_t src_size = data.size() - consumed;
    size_t dst_size = out_.size();
    const size_t r = LZ4F_decompress(ctx_->dctx, out_.data(), &dst_size, data.data() + consumed,
                                     &src_size, nullptr);
    if (LZ4F_isError(r)) {
      throw Lz4FrameError("\"" + name_ + "\" is damaged: " + lz4f_problem(r),
                          "lz4 frame damaged: " + lz4f_problem(r));
    }
    hint_ = r;
    consumed += src_size;
    content_bytes_ += dst_size;
    if (dst_size && sink_) sink_({out_.data(), dst_size});
  }
}

void Lz4FrameDecoder::finish() {
  // Anything still buffered in the context. Once the frame has ended (hint 0) there is
  // nothing left, and another call would report the next frame's header as missing input.
  while (hint_ != 0) {
    size_t src_size = 0, dst_size = out_.size();
    const size_t r =
        LZ4F_decompress(ctx_->dctx, out_.data(), &dst_size, nullptr, &src_size, nullptr);
    if (LZ4F_isError(r)) {
      throw Lz4FrameError("\"" + name_ + "\" is damaged: " + lz4f_problem(r),
                          "lz4 frame damaged: " + lz4f_problem(r));
    }
    hint_ = r;
    content_bytes_ += dst_size;
    if (dst_size && sink_) sink_({out_.data(), dst_size});
    if (dst_size == 0) break;
  }
  if (hint_ != 0) {
    throw Lz4FrameError("\"" + name_ + "\" is truncated (the lz4 frame does not end)",
                        "truncated (the lz4 frame does not end)");
  }
}

void decode_lz4_file(const fs::path& path,
                     const std::function<void(std::span<const std::byte>)>& on_content) {
  Lz4FrameDecoder decoder(path.string(), on_content);
  UniqueFd fd = open_or_throw(path, O_RDONLY);
  std::vector<std::byte> in(1 << 20);
  for (;;) {
    ssize_t n = ::read(fd.get(), in.data(), in.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw errno_error("could not read \"" + path.string() + "\"", errno);
    }
    if (n == 0) break;
    decoder.feed({in.data(), size_t(n)});
  }
  decoder.finish();
}

}  // namespace walvault
