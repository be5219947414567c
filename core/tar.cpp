#include "core/tar.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include "core/error.h"

namespace walvault {
namespace {

// Offsets of the ustar header fields.
constexpr size_t kNameOff = 0, kNameLen = 100;
constexpr size_t kModeOff = 100, kModeLen = 8;
constexpr size_t kUidOff = 108, kUidLen = 8;
constexpr size_t kGidOff = 116, kGidLen = 8;
constexpr size_t kSizeOff = 124, kSizeLen = 12;
constexpr size_t kMtimeOff = 136, kMtimeLen = 12;
constexpr size_t kChksumOff = 148, kChksumLen = 8;
constexpr size_t kTypeOff = 156;
constexpr size_t kLinkOff = 157, kLinkLen = 100;
constexpr size_t kMagicOff = 257;
constexpr size_t kPrefixOff = 345, kPrefixLen = 155;

constexpr size_t kBlock = TarReader::kBlockBytes;

uint8_t byte_at(const std::byte* b, size_t i) {
  return std::to_integer<uint8_t>(b[i]);
}

std::string field_string(const std::byte* b, size_t off, size_t len) {
  const char* p = reinterpret_cast<const char*>(b + off);
  return std::string(p, strnlen(p, len));
}

// Octal (space / NUL padded) or, with the high bit of the first byte set, base-256.
std::optional<uint64_t> field_number(const std::byte* b, size_t off, size_t len) {
  if (byte_at(b, off) & 0x80) {
    if (byte_at(b, off) == 0xff) return std::nullopt;  // negative
    uint64_t v = byte_at(b, off) & 0x7f;
    for (size_t i = 1; i < len; ++i) {
      if (v > (UINT64_MAX >> 8)) return std::nullopt;
      v = (v << 8) | byte_at(b, off + i);
    }
    return v;
  }
  size_t i = 0;
  while (i < len && (byte_at(b, off + i) == ' ' || byte_at(b, off + i) == 0)) ++i;
  uint64_t v = 0;
  for (; i < len; ++i) {
    const uint8_t c = byte_at(b, off + i);
    if (c == ' ' || c == 0) break;
    if (c < '0' || c > '7') return std::nullopt;
    if (v > (UINT64_MAX >> 3)) return std::nullopt;
    v = (v << 3) | uint64_t(c - '0');
  }
  return v;
}

bool all_zero(const std::byte* b) {
  return std::all_of(b, b + kBlock, [](std::byte x) { return x == std::byte{0}; });
}

bool checksum_ok(const std::byte* b) {
  auto stored = field_number(b, kChksumOff, kChksumLen);
  if (!stored) return false;
  uint64_t unsigned_sum = 0;
  int64_t signed_sum = 0;
  for (size_t i = 0; i < kBlock; ++i) {
    const bool in_field = i >= kChksumOff && i < kChksumOff + kChksumLen;
    const uint8_t c = in_field ? uint8_t(' ') : byte_at(b, i);
    unsigned_sum += c;
    signed_sum += int8_t(c);
  }
  // Some old writers summed signed chars; accept either, as GNU tar does.
  return *stored == unsigned_sum || int64_t(*stored) == signed_sum;
}

std::optional<uint64_t> parse_decimal(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + uint64_t(c - '0');
  }
  return v;
}

void put_octal(std::string& h, size_t off, size_t len, uint64_t value) {
  // len - 1 digits, then a NUL, as POSIX asks.
  std::string digits(len - 1, '0');
  for (size_t i = len - 1; i-- > 0;) {
    digits[i] = char('0' + (value & 7));
    value >>= 3;
  }
  std::memcpy(h.data() + off, digits.data(), digits.size());
  h[off + len - 1] = '\0';
}

std::string pax_record(std::string_view key, std::string_view value) {
  // "<len> key=value\n" where len counts itself.
  const size_t body = 1 + key.size() + 1 + value.size() + 1;
  size_t len = body + 1;
  while (std::to_string(len).size() + body != len) ++len;
  return std::to_string(len) + " " + std::string(key) + "=" + std::string(value) + "\n";
}

std::string ustar_block(std::string_view name, char type, uint32_t mode, uint64_t size,
                        int64_t mtime, uint32_t uid, uint32_t gid, std::string_view link) {
  std::string h(kBlock, '\0');
  std::memcpy(h.data() + kNameOff, name.data(), std::min(name.size(), kNameLen));
  put_octal(h, kModeOff, kModeLen, mode & 07777);
  put_octal(h, kUidOff, kUidLen, uid & 07777777);
  put_octal(h, kGidOff, kGidLen, gid & 07777777);
  put_octal(h, kSizeOff, kSizeLen, size);
  put_octal(h, kMtimeOff, kMtimeLen, uint64_t(std::max<int64_t>(mtime, 0)));
  h[kTypeOff] = type;
  std::memcpy(h.data() + kLinkOff, link.data(), std::min(link.size(), kLinkLen));
  std::memcpy(h.data() + kMagicOff,
              "ustar\0"
              "00",
              8);
  std::memset(h.data() + kChksumOff, ' ', kChksumLen);
  uint64_t sum = 0;
  for (char c : h) sum += uint8_t(c);
  put_octal(h, kChksumOff, 7, sum);  // six digits, NUL, and the space left from above
  return h;
}

}  // namespace

std::string_view to_string(TarEntryType t) {
  switch (t) {
    case TarEntryType::file:
      return "file";
    case TarEntryType::directory:
      return "directory";
    case TarEntryType::symlink:
      return "symlink";
    case TarEntryType::hardlink:
      return "hard link";
  }
  return "unknown";
}

std::string safe_tar_path(std::string_view name) {
  if (name.find('\0') != std::string_view::npos) {
    throw Error("tar member name contains a NUL byte");
  }
  if (!name.empty() && name.front() == '/') {
    throw Error("tar member \"" + std::string(name) + "\" has an absolute path",
                "the archive is damaged or was not made by PostgreSQL; refusing to extract it");
  }
  std::string out;
  size_t pos = 0;
  while (pos <= name.size()) {
    size_t slash = name.find('/', pos);
    if (slash == std::string_view::npos) slash = name.size();
    std::string_view part = name.substr(pos, slash - pos);
    pos = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      throw Error("tar member \"" + std::string(name) + "\" leads out of the target directory",
                  "the archive is damaged or was not made by PostgreSQL; refusing to extract it");
    }
    if (!out.empty()) out += '/';
    out += part;
  }
  return out;
}

TarReader::TarReader(TarSink& sink, std::string archive_name)
    : sink_(sink), archive_name_(std::move(archive_name)) {}

void TarReader::fail(const std::string& what) const {
  std::string msg = "tar archive \"" + archive_name_ + "\": " + what;
  if (!current_path_.empty()) msg += " (at member \"" + current_path_ + "\")";
  throw Error(msg, "the stored backup is damaged; run walvault verify");
}

void TarReader::feed(std::span<const std::byte> data) {
  while (!data.empty()) {
    switch (state_) {
      case State::header: {
        const size_t n = std::min(kBlock - block_fill_, data.size());
        std::memcpy(block_ + block_fill_, data.data(), n);
        block_fill_ += n;
        data = data.subspan(n);
        if (block_fill_ == kBlock) {
          block_fill_ = 0;
          on_header_block();
        }
        break;
      }
      case State::data: {
        const size_t n = size_t(std::min<uint64_t>(remaining_, data.size()));
        sink_.entry_data(data.first(n));
        data = data.subspan(n);
        remaining_ -= n;
        content_bytes_ += n;
        if (remaining_ == 0) {
          sink_.end_entry();
          state_ = padding_ ? State::padding : State::header;
        }
        break;
      }
      case State::extended: {
        const size_t n = size_t(std::min<uint64_t>(remaining_, data.size()));
        extended_.append(reinterpret_cast<const char*>(data.data()), n);
        data = data.subspan(n);
        remaining_ -= n;
        if (remaining_ == 0) finish_extended();
        break;
      }
      case State::padding: {
        const size_t n = size_t(std::min<uint64_t>(padding_, data.size()));
        data = data.subspan(n);
        padding_ -= n;
        if (padding_ == 0) state_ = State::header;
        break;
      }
      case State::ended:
        // Writers pad the archive to a record size (GNU tar: 10 KiB) after the marker.
        return;
    }
  }
}

void TarReader::finish() {
  if (state_ == State::ended) return;
  if (state_ == State::data || state_ == State::padding) {
    fail("archive is truncated inside a member");
  }
  if (state_ == State::extended) fail("archive is truncated inside an extended header");
  fail(block_fill_ ? "archive is truncated inside a header"
                   : "archive is truncated (no end-of-archive marker)");
}

void TarReader::on_header_block() {
  if (all_zero(block_)) {
    if (saw_zero_block_) {
      state_ = State::ended;
      current_path_.clear();
      sink_.end_archive();
    }
    saw_zero_block_ = true;
    return;
  }
  if (saw_zero_block_) fail("a header follows a zero block");
  if (!checksum_ok(block_)) fail("header checksum mismatch");

  const char type = char(byte_at(block_, kTypeOff));
  auto size = field_number(block_, kSizeOff, kSizeLen);
  if (!size) fail("invalid size field");

  if (type == 'L' || type == 'K' || type == 'x' || type == 'g') {
    if (*size > kMaxExtendedHeaderBytes) fail("extended header too large");
    extended_type_ = type;
    extended_.clear();
    remaining_ = *size;
    padding_ = tar_padding_bytes(*size);
    state_ = State::extended;
    if (remaining_ == 0) finish_extended();
    return;
  }

  std::string name = field_string(block_, kNameOff, kNameLen);
  const bool posix = std::memcmp(block_ + kMagicOff, "ustar\0", 6) == 0;
  if (posix) {
    std::string prefix = field_string(block_, kPrefixOff, kPrefixLen);
    if (!prefix.empty()) name = prefix + "/" + name;
  }
  if (has_next_path_) name = next_path_;

  TarEntry e;
  switch (type) {
    case '0':
    case '\0':
    case '7':
      e.type = !name.empty() && name.back() == '/' ? TarEntryType::directory : TarEntryType::file;
      break;
    case '1':
      e.type = TarEntryType::hardlink;
      break;
    case '2':
      e.type = TarEntryType::symlink;
      break;
    case '5':
      e.type = TarEntryType::directory;
      break;
    default:
      current_path_ = name;
      fail(std::string("unsupported member type '") + (type >= 32 && type < 127 ? type : '?') +
           "'");
  }
  current_path_ = name;
  try {
    e.path = safe_tar_path(name);
  } catch (const Error& err) {
    fail(err.what());
  }
  auto mode = field_number(block_, kModeOff, kModeLen);
  auto uid = field_number(block_, kUidOff, kUidLen);
  auto gid = field_number(block_, kGidOff, kGidLen);
  auto mtime = field_number(block_, kMtimeOff, kMtimeLen);
  if (!mode || !uid || !gid || !mtime) fail("invalid numeric field");
  e.mode = uint32_t(*mode & 07777);
  e.uid = uint32_t(*uid);
  e.gid = uint32_t(*gid);
  e.mtime = has_next_mtime_ ? next_mtime_ : int64_t(*mtime);
  if (e.type == TarEntryType::file) e.size = has_next_size_ ? next_size_ : *size;
  if (e.type == TarEntryType::symlink || e.type == TarEntryType::hardlink) {
    e.link_target = has_next_link_ ? next_link_ : field_string(block_, kLinkOff, kLinkLen);
    if (e.link_target.empty()) fail("link without a target");
    if (e.type == TarEntryType::hardlink) {
      try {
        e.link_target = safe_tar_path(e.link_target);
      } catch (const Error& err) {
        fail(std::string("hard link target: ") + err.what());
      }
    }
  }
  if (e.path.empty() && e.type != TarEntryType::directory) fail("member without a name");
  has_next_path_ = has_next_link_ = has_next_size_ = has_next_mtime_ = false;
  start_member(std::move(e));
}

void TarReader::start_member(TarEntry entry) {
  ++members_;
  const uint64_t size = entry.size;
  sink_.begin_entry(entry);
  if (size == 0) {
    sink_.end_entry();
    state_ = State::header;
    return;
  }
  remaining_ = size;
  padding_ = tar_padding_bytes(size);
  state_ = State::data;
}

void TarReader::finish_extended() {
  state_ = padding_ ? State::padding : State::header;
  switch (extended_type_) {
    case 'L':
      next_path_ = extended_.substr(0, extended_.find('\0'));
      has_next_path_ = true;
      break;
    case 'K':
      next_link_ = extended_.substr(0, extended_.find('\0'));
      has_next_link_ = true;
      break;
    case 'x':
      apply_pax(extended_);
      break;
    default:  // 'g': global defaults; nothing PostgreSQL data needs
      break;
  }
  extended_.clear();
}

void TarReader::apply_pax(std::string_view records) {
  while (!records.empty()) {
    const size_t space = records.find(' ');
    if (space == std::string_view::npos) fail("malformed pax header");
    auto len = parse_decimal(records.substr(0, space));
    if (!len || *len <= space + 1 || *len > records.size()) fail("malformed pax header");
    std::string_view rec = records.substr(space + 1, *len - space - 1);
    records.remove_prefix(*len);
    if (rec.empty() || rec.back() != '\n') fail("malformed pax record");
    rec.remove_suffix(1);
    const size_t eq = rec.find('=');
    if (eq == std::string_view::npos) fail("malformed pax record");
    std::string_view key = rec.substr(0, eq), value = rec.substr(eq + 1);
    if (key == "path") {
      next_path_ = std::string(value);
      has_next_path_ = true;
    } else if (key == "linkpath") {
      next_link_ = std::string(value);
      has_next_link_ = true;
    } else if (key == "size") {
      auto v = parse_decimal(value);
      if (!v) fail("invalid pax size");
      next_size_ = *v;
      has_next_size_ = true;
    } else if (key == "mtime") {
      auto v = parse_decimal(value.substr(0, value.find('.')));
      if (v) {
        next_mtime_ = int64_t(*v);
        has_next_mtime_ = true;
      }
    } else if (key.starts_with("GNU.sparse")) {
      fail("sparse members are not supported");
    }
  }
}

size_t tar_padding_bytes(uint64_t content_bytes) {
  return size_t((kBlock - content_bytes % kBlock) % kBlock);
}

std::string tar_end_of_archive() {
  return std::string(2 * kBlock, '\0');
}

std::string tar_member_header(const TarEntry& e) {
  std::string name = e.path;
  if (e.type == TarEntryType::directory) name += '/';
  const uint64_t size = e.type == TarEntryType::file ? e.size : 0;
  constexpr uint64_t kMaxOctalSize = (uint64_t(1) << 33) - 1;  // 11 octal digits

  std::string out;
  std::string pax;
  if (name.size() > kNameLen) pax += pax_record("path", name);
  if (e.link_target.size() > kLinkLen) pax += pax_record("linkpath", e.link_target);
  if (size > kMaxOctalSize) pax += pax_record("size", std::to_string(size));
  if (!pax.empty()) {
    out += ustar_block("././@PaxHeader", 'x', 0644, pax.size(), e.mtime, 0, 0, "");
    out += pax;
    out.append(tar_padding_bytes(pax.size()), '\0');
  }
  char type = '0';
  switch (e.type) {
    case TarEntryType::file:
      type = '0';
      break;
    case TarEntryType::directory:
      type = '5';
      break;
    case TarEntryType::symlink:
      type = '2';
      break;
    case TarEntryType::hardlink:
      type = '1';
      break;
  }
  out += ustar_block(name, type, e.mode, size > kMaxOctalSize ? 0 : size, e.mtime, e.uid, e.gid,
                     e.link_target);
  return out;
}

}  // namespace walvault
