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
    scan.problem = "no lz4 frame header";
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
  if ((flg & 0xC0) != kFlgVersion || !(flg & kFlgBlockIndependent) ||
      ((XXH32(frame.data() + 4, pos - 4, 0) >> 8) & 0xff) != hc) {
    scan.problem = "unsupported or damaged lz4 frame header";
    return scan;
  }
  const size_t block_max = block_max_for_bd(bd);
  if (block_max == 0) {
    scan.problem = "invalid lz4 block size";
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
    if (size > block_max) {
      scan.problem = "invalid block size";
      break;
    }
    if (frame.size() < pos + need) {
      scan.problem = "torn block";
      break;
    }
    const std::byte* payload = frame.data() + pos + 4;
    if (block_sums && get_u32(payload + size) != XXH32(payload, size, 0)) {
      scan.problem = "block checksum mismatch";
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

void decode_lz4_file(const fs::path& path,
                     const std::function<void(std::span<const std::byte>)>& on_content) {
  struct CtxDeleter {
    void operator()(LZ4F_dctx* c) const { LZ4F_freeDecompressionContext(c); }
  };
  LZ4F_dctx* raw = nullptr;
  if (LZ4F_isError(LZ4F_createDecompressionContext(&raw, LZ4F_VERSION))) {
    throw Error("could not create an lz4 decompression context");
  }
  std::unique_ptr<LZ4F_dctx, CtxDeleter> ctx(raw);
  UniqueFd fd = open_or_throw(path, O_RDONLY);
  std::vector<std::byte> in(1 << 20), out(4 << 20);
  size_t hint = 1;
  for (;;) {
    ssize_t n = ::read(fd.get(), in.data(), in.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw errno_error("could not read \"" + path.string() + "\"", errno);
    }
    if (n == 0) break;
    size_t consumed_total = 0;
    while (consumed_total < size_t(n)) {
      size_t src_size = size_t(n) - consumed_total;
      size_t dst_size = out.size();
      hint = LZ4F_decompress(ctx.get(), out.data(), &dst_size, in.data() + consumed_total,
                             &src_size, nullptr);
      if (LZ4F_isError(hint)) {
        throw Error("\"" + path.string() + "\" is damaged: " + LZ4F_getErrorName(hint),
                    "run walvault verify on the repository");
      }
      consumed_total += src_size;
      if (dst_size) on_content({out.data(), dst_size});
      if (hint == 0 && consumed_total < size_t(n)) {
        throw Error("\"" + path.string() + "\" has bytes after the end of its lz4 frame");
      }
    }
  }
  // Drain anything still buffered in the context. Once the frame has ended (hint 0) there is
  // nothing left, and another call would report the next frame's header as missing input.
  while (hint != 0) {
    size_t src_size = 0, dst_size = out.size();
    size_t r = LZ4F_decompress(ctx.get(), out.data(), &dst_size, nullptr, &src_size, nullptr);
    if (LZ4F_isError(r)) throw Error("\"" + path.string() + "\" is damaged");
    if (dst_size) on_content({out.data(), dst_size});
    hint = r;
    if (dst_size == 0) break;
  }
  if (hint != 0) {
    throw Error("\"" + path.string() + "\" is truncated (the lz4 frame does not end)",
                "run walvault verify on the repository");
  }
}

}  // namespace walvault
