#include "core/object_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "core/hash.h"

namespace walvault {
namespace {

constexpr std::string_view kSuffix = ".lz4";

bool is_lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// Reads the whole object file. Returns false (and sets problem) when it cannot.
bool read_object_file(const fs::path& path, std::vector<std::byte>& out, std::string& problem) {
  int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw < 0) {
    problem = errno == ENOENT ? "missing" : std::string("unreadable: ") + std::strerror(errno);
    return false;
  }
  UniqueFd fd(raw);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    problem = std::string("unreadable: ") + std::strerror(errno);
    return false;
  }
  out.resize(size_t(st.st_size));
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::read(fd.get(), out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      problem = std::string("unreadable: ") + std::strerror(errno);
      return false;
    }
    if (n == 0) break;
    done += size_t(n);
  }
  out.resize(done);
  return true;
}

}  // namespace

ObjectStore::ObjectStore(fs::path dir) : dir_(std::move(dir)) {}

void ObjectStore::set_owner(uid_t uid, gid_t gid) {
  owner_ = {uid, gid};
}

void ObjectStore::ensure_dir(const fs::path& dir) {
  if (known_dirs_.count(dir)) return;
  if (dir != dir_) ensure_dir(dir_);
  if (::mkdir(dir.c_str(), kDirMode) == 0) {
    if (owner_ && ::chown(dir.c_str(), owner_->first, owner_->second) != 0) {
      throw errno_error("could not change the owner of \"" + dir.string() + "\"", errno);
    }
    fsync_dir(dir.parent_path());
  } else if (errno == ENOENT && dir == dir_) {
    make_dirs(dir.parent_path());
    return ensure_dir(dir);
  } else if (errno != EEXIST) {
    throw errno_error("could not create directory \"" + dir.string() + "\"", errno);
  }
  known_dirs_.insert(dir);
}

bool ObjectStore::is_object_name(std::string_view hex) {
  return hex.size() == 64 && is_lower_hex(hex);
}

fs::path ObjectStore::object_path(std::string_view hex) const {
  std::string name(hex);
  name += kSuffix;
  return dir_ / std::string(hex.substr(0, 2)) / name;
}

std::optional<uint64_t> ObjectStore::stored_size(std::string_view hex) const {
  struct stat st;
  if (::stat(object_path(hex).c_str(), &st) != 0) {
    if (errno == ENOENT) return std::nullopt;
    throw errno_error("could not stat \"" + object_path(hex).string() + "\"", errno);
  }
  return uint64_t(st.st_size);
}

PutResult ObjectStore::put(std::span<const std::byte> content) {
  Sha256 h;
  h.update(content);
  return put(h.hex_digest(), content);
}

PutResult ObjectStore::put(std::string_view hex, std::span<const std::byte> content) {
  PutResult r;
  r.sha256 = std::string(hex);
  if (auto it = pending_names_.find(r.sha256); it != pending_names_.end()) {
    r.stored_bytes = it->second;
    return r;
  }
  if (auto size = stored_size(hex)) {
    r.stored_bytes = *size;
    return r;
  }
  const size_t blocks =
      (content.size() + Lz4FrameEncoder::kBlockSize - 1) / Lz4FrameEncoder::kBlockSize;
  frame_.resize(Lz4FrameEncoder::kHeaderBytes + blocks * Lz4FrameEncoder::max_block_bytes() +
                Lz4FrameEncoder::kEndBytes);
  size_t pos = encoder_.write_header(frame_.data());
  for (size_t off = 0; off < content.size(); off += Lz4FrameEncoder::kBlockSize) {
    const size_t len = std::min(Lz4FrameEncoder::kBlockSize, content.size() - off);
    pos += encoder_.write_block(content.subspan(off, len), frame_.data() + pos);
  }
  pos += encoder_.write_end(frame_.data() + pos);

  Pending p;
  p.sha256 = r.sha256;
  p.final_path = object_path(hex);
  ensure_dir(p.final_path.parent_path());
  p.tmp_path = p.final_path.parent_path() / (".tmp." + r.sha256 + "." + std::to_string(::getpid()) +
                                             "." + std::to_string(++tmp_counter_));
  p.fd = open_or_throw(p.tmp_path, O_WRONLY | O_CREAT | O_EXCL);
  try {
    write_all(p.fd.get(), {frame_.data(), pos}, p.tmp_path);
    if (owner_ && ::fchown(p.fd.get(), owner_->first, owner_->second) != 0) {
      throw errno_error("could not change the owner of \"" + p.tmp_path.string() + "\"", errno);
    }
    // Start writing it back now; flush_pending() waits for it together with its neighbours.
    ::sync_file_range(p.fd.get(), 0, 0, SYNC_FILE_RANGE_WRITE);
  } catch (...) {
    ::unlink(p.tmp_path.c_str());
    throw;
  }
  pending_names_.emplace(r.sha256, pos);
  pending_bytes_ += pos;
  pending_.push_back(std::move(p));
  if (pending_.size() >= kMaxPendingObjects || pending_bytes_ >= kMaxPendingBytes) flush_pending();
  r.stored_bytes = pos;
  r.added = true;
  return r;
}

void ObjectStore::flush_pending() {
  // fdatasync each, then rename each: an object appears under its name only when durable.
  for (auto& p : pending_) {
    if (::fdatasync(p.fd.get()) != 0) {
      throw errno_error("could not fsync \"" + p.tmp_path.string() + "\"", errno);
    }
    p.fd.reset();
  }
  for (auto& p : pending_) {
    // Another writer may have stored the same content meanwhile: the rename replaces
    // identical bytes with identical bytes.
    if (::rename(p.tmp_path.c_str(), p.final_path.c_str()) != 0) {
      throw errno_error("could not rename \"" + p.tmp_path.string() + "\"", errno);
    }
    p.tmp_path.clear();
    dirty_dirs_.insert(p.final_path.parent_path());
  }
  pending_.clear();
  pending_names_.clear();
  pending_bytes_ = 0;
}

void ObjectStore::sync() {
  flush_pending();
  for (const auto& d : dirty_dirs_) fsync_dir(d);
  dirty_dirs_.clear();
}

ObjectStore::~ObjectStore() {
  // Objects never made durable (an error ended the writer) leave no temporary file behind.
  for (const auto& p : pending_) {
    if (!p.tmp_path.empty()) ::unlink(p.tmp_path.c_str());
  }
}

ObjectCheck ObjectStore::check(std::string_view hex) const {
  ObjectCheck c;
  std::vector<std::byte> file;
  if (!read_object_file(object_path(hex), file, c.problem)) return c;
  c.stored_bytes = file.size();
  Sha256 h;
  const Lz4FrameScan scan =
      scan_lz4_frame(file, [&](std::span<const std::byte> part) { h.update(part); });
  if (!scan.complete || !scan.problem.empty()) {
    c.problem =
        "damaged: " + (scan.problem.empty() ? std::string("lz4 frame does not end") : scan.problem);
    return c;
  }
  if (h.hex_digest() != hex) {
    c.problem = "content does not match its name (SHA-256)";
    return c;
  }
  c.bytes = scan.content_bytes;
  c.ok = true;
  return c;
}

void ObjectStore::get(std::string_view hex, std::vector<std::byte>& out) const {
  const fs::path path = object_path(hex);
  std::string problem;
  std::vector<std::byte> file;
  if (read_object_file(path, file, problem)) {
    out.clear();
    Sha256 h;
    const Lz4FrameScan scan = scan_lz4_frame(file, [&](std::span<const std::byte> part) {
      h.update(part);
      out.insert(out.end(), part.begin(), part.end());
    });
    if (!scan.complete || !scan.problem.empty()) {
      problem = "damaged (" +
                (scan.problem.empty() ? std::string("lz4 frame does not end") : scan.problem) + ")";
    } else if (h.hex_digest() != hex) {
      problem = "damaged (its content does not match its SHA-256 name)";
    } else {
      return;
    }
  }
  throw Error("object \"" + path.string() + "\" is " + problem,
              "run walvault verify --repo on the repository; restore the store from a copy");
}

std::vector<std::string> ObjectStore::list() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& sub : fs::directory_iterator(dir_, ec)) {
    const std::string prefix = sub.path().filename().string();
    if (prefix.size() != 2 || !is_lower_hex(prefix) || !sub.is_directory()) continue;
    for (const auto& e : fs::directory_iterator(sub.path(), ec)) {
      std::string name = e.path().filename().string();
      if (!name.ends_with(kSuffix)) continue;
      name.resize(name.size() - kSuffix.size());
      if (is_object_name(name) && name.starts_with(prefix)) out.push_back(std::move(name));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace walvault
