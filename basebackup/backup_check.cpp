#include "basebackup/backup_check.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/hash.h"
#include "core/lz4_frame.h"
#include "core/tar.h"

namespace walvault {
namespace {

// Only the archive's structure is of interest here.
class NullTarSink : public TarSink {
 public:
  void begin_entry(const TarEntry&) override {}
  void entry_data(std::span<const std::byte>) override {}
  void end_entry() override {}
};

// A manifest larger than this is no manifest of ours (a data directory of a million files
// makes about 200 MB); it is hashed but not parsed into memory.
constexpr uint64_t kMaxManifestBytes = uint64_t(1) << 30;

}  // namespace

BackupFileCheck check_backup_file(const fs::path& path, const BackupFile& expected) {
  BackupFileCheck out;
  const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw < 0) {
    out.missing = errno == ENOENT;
    out.problem =
        out.missing ? "missing" : std::string("cannot be opened: ") + std::strerror(errno);
    return out;
  }
  UniqueFd fd(raw);
  const bool is_archive = expected.name.ends_with(".tar.lz4");
  const bool is_manifest = expected.name == "backup_manifest";

  NullTarSink null_sink;
  TarReader tar(null_sink, expected.name);
  std::optional<Lz4FrameDecoder> decoder;
  std::string content_problem;  // the first problem in the content; hashing goes on
  if (is_archive) {
    decoder.emplace(path.string(), [&](std::span<const std::byte> d) { tar.feed(d); });
  }
  std::string manifest_text;
  Sha256 sha;
  std::vector<std::byte> buf(1 << 20);
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      out.problem = std::string("cannot be read: ") + std::strerror(errno);
      return out;
    }
    if (n == 0) break;
    const std::span<const std::byte> chunk(buf.data(), size_t(n));
    sha.update(chunk);
    out.stored_bytes += uint64_t(n);
    if (decoder && content_problem.empty()) {
      try {
        decoder->feed(chunk);
      } catch (const Lz4FrameError& e) {
        content_problem = e.reason();
      } catch (const Error& e) {
        content_problem = e.what();
      }
    }
    if (is_manifest && out.stored_bytes <= kMaxManifestBytes) {
      manifest_text.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
    }
  }
  if (decoder && content_problem.empty()) {
    try {
      decoder->finish();
      tar.finish();
      if (decoder->content_bytes() != expected.bytes) {
        content_problem = "holds " + std::to_string(decoder->content_bytes()) +
                          " bytes of archive, backup.json says " + std::to_string(expected.bytes);
      }
    } catch (const Lz4FrameError& e) {
      content_problem = e.reason();
    } catch (const Error& e) {
      content_problem = e.what();
    }
  }
  out.tar_members = tar.members();
  const std::string digest = sha.hex_digest();
  if (out.stored_bytes != expected.stored_bytes) {
    out.problem =
        out.stored_bytes == 0
            ? "empty file, backup.json says " + std::to_string(expected.stored_bytes) + " bytes"
            : "has " + std::to_string(out.stored_bytes) + " bytes, backup.json says " +
                  std::to_string(expected.stored_bytes);
  } else if (digest != expected.sha256) {
    out.problem = "does not match its SHA-256 in backup.json";
  }
  if (is_manifest && out.stored_bytes <= kMaxManifestBytes) {
    try {
      out.manifest = parse_backup_manifest(manifest_text);
    } catch (const Error& e) {
      content_problem = std::string("the manifest is damaged: ") + e.what();
    }
  }
  if (!content_problem.empty()) {
    out.problem = out.problem.empty() ? content_problem : out.problem + "; " + content_problem;
  }
  return out;
}

}  // namespace walvault
