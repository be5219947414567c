#include "pitr/wal_spool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>

#include "core/error.h"
#include "core/fs.h"

namespace walvault {

namespace {

// Writes text to path via a temporary name and rename (readers see old or new, never half).
void write_small_file(const fs::path& path, const std::string& text) {
  fs::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid());
  {
    UniqueFd fd = open_or_throw(tmp, O_WRONLY | O_CREAT | O_TRUNC, kFileMode);
    write_all(fd.get(), as_bytes(text), tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    throw errno_error("could not rename \"" + tmp.string() + "\"", e);
  }
}

std::vector<uint64_t> read_numbers(const fs::path& path) {
  std::vector<uint64_t> out;
  auto text = read_file_if_exists(path);
  if (!text) return out;
  std::istringstream in(*text);
  uint64_t v;
  while (in >> v) out.push_back(v);
  return out;
}

}  // namespace

WalSpool::WalSpool(fs::path dir, uint64_t segment_size, size_t max_segments, uint64_t max_bytes)
    : dir_(std::move(dir)),
      segment_size_(segment_size),
      max_segments_(max_segments),
      max_bytes_(max_bytes) {}

bool WalSpool::exists() const {
  struct stat st;
  return ::stat(dir_.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void WalSpool::create() const {
  if (::mkdir(dir_.c_str(), kDirMode) != 0 && errno != EEXIST)
    throw errno_error("could not create the prefetch spool \"" + dir_.string() + "\"", errno);
}

std::vector<std::string> WalSpool::entries() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (parse_wal_file_name(name, segment_size_)) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool WalSpool::contains(const std::string& name) const {
  struct stat st;
  return ::stat((dir_ / name).c_str(), &st) == 0;
}

bool WalSpool::has_room() const {
  const size_t n = entries().size();
  return n < max_segments_ && (n + 1) * segment_size_ <= max_bytes_;
}

bool WalSpool::writing(const std::string& name) const {
  std::error_code ec;
  const std::string prefix = name + ".tmp.";
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().filename().string().starts_with(prefix)) return true;
  }
  return false;
}

bool WalSpool::put(const std::string& name, std::span<const std::byte> segment) {
  if (segment.size() != segment_size_)
    throw Error("refusing to spool " + name + ": " + std::to_string(segment.size()) +
                " bytes is not one segment");
  if (!exists() || !has_room()) return false;
  fs::path tmp = dir_ / name;
  tmp += ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, kFileMode);
  if (fd < 0) {
    if (errno == ENOENT) return false;  // the spool was removed meanwhile
    throw errno_error("could not create \"" + tmp.string() + "\"", errno);
  }
  UniqueFd guard(fd);
  try {
    write_all(fd, segment, tmp);
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(guard.release());
  if (::rename(tmp.c_str(), (dir_ / name).c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    if (e == ENOENT) return false;
    throw errno_error("could not rename \"" + tmp.string() + "\"", e);
  }
  return true;
}

bool WalSpool::take(const std::string& name, const fs::path& dest) {
  const fs::path src = dir_ / name;
  struct stat st;
  if (::stat(src.c_str(), &st) != 0) return false;
  if (!S_ISREG(st.st_mode) || uint64_t(st.st_size) != segment_size_) {
    ::unlink(src.c_str());
    return false;
  }
  if (::rename(src.c_str(), dest.c_str()) == 0) return true;
  if (errno != EXDEV)
    throw errno_error("could not move \"" + src.string() + "\" to \"" + dest.string() + "\"",
                      errno);
  // Another file system: copy to a temporary name beside dest, rename, then drop the spooled one.
  const std::string bytes = read_file(src);
  if (bytes.size() != segment_size_) {
    ::unlink(src.c_str());
    return false;
  }
  fs::path tmp = dest;
  tmp += ".walvault-" + std::to_string(::getpid());
  {
    UniqueFd fd = open_or_throw(tmp, O_WRONLY | O_CREAT | O_TRUNC, kFileMode);
    write_all(fd.get(), as_bytes(bytes), tmp);
  }
  if (::rename(tmp.c_str(), dest.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    throw errno_error("could not rename \"" + tmp.string() + "\" to \"" + dest.string() + "\"", e);
  }
  ::unlink(src.c_str());
  return true;
}

void WalSpool::drop_before(const WalFileName& asked) {
  for (const auto& name : entries()) {
    auto n = parse_wal_file_name(name, segment_size_);
    if (n->segno < asked.segno || (n->segno == asked.segno && n->timeline != asked.timeline))
      ::unlink((dir_ / name).c_str());
  }
}

void WalSpool::set_want(const std::string& name) const {
  write_small_file(dir_ / ".want", name);
}

std::optional<std::string> WalSpool::want() const {
  auto text = read_file_if_exists(dir_ / ".want");
  if (!text || text->empty()) return std::nullopt;
  return *text;
}

WalSpool::Stats WalSpool::stats() const {
  Stats s;
  auto served = read_numbers(dir_ / ".served");
  if (served.size() >= 2) {
    s.served_from_spool = served[0];
    s.requests = served[1];
  }
  auto pre = read_numbers(dir_ / ".prefetched");
  if (pre.size() >= 2) {
    s.prefetched = pre[0];
    s.max_spooled = pre[1];
  }
  return s;
}

void WalSpool::count_request(bool from_spool) const {
  Stats s = stats();
  s.served_from_spool += from_spool ? 1 : 0;
  s.requests += 1;
  write_small_file(dir_ / ".served",
                   std::to_string(s.served_from_spool) + " " + std::to_string(s.requests) + "\n");
}

void WalSpool::count_prefetched(size_t spooled_now) const {
  Stats s = stats();
  s.prefetched += 1;
  s.max_spooled = std::max<uint64_t>(s.max_spooled, spooled_now);
  write_small_file(dir_ / ".prefetched",
                   std::to_string(s.prefetched) + " " + std::to_string(s.max_spooled) + "\n");
}

void WalSpool::remove() const {
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

}  // namespace walvault
