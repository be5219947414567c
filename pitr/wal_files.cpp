#include "pitr/wal_files.h"

#include <cerrno>

#include "core/fs.h"
#include "core/lz4_frame.h"

namespace walvault {
namespace {

std::string read_or_vanish(const fs::path& path) {
  if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) {
    throw WalFileVanished("\"" + path.string() + "\" is gone");
  }
  return read_file(path);
}

}  // namespace

WalFileContent read_wal_file(const WalFileEntry& entry, uint64_t segment_size_bytes) {
  WalFileContent out;
  out.partial = entry.partial;
  auto append = [&](std::span<const std::byte> d) {
    if (out.bytes.size() + d.size() > segment_size_bytes) {
      throw Error("\"" + entry.path.string() + "\" holds more than one WAL segment (" +
                      std::to_string(segment_size_bytes) + " bytes)",
                  "run walvault verify on the repository");
    }
    out.bytes.insert(out.bytes.end(), d.begin(), d.end());
  };
  if (entry.compression == Compression::lz4) {
    if (entry.partial) {
      const std::string frame = read_or_vanish(entry.path);
      out.bytes.reserve(segment_size_bytes);
      const Lz4FrameScan scan =
          scan_lz4_frame({reinterpret_cast<const std::byte*>(frame.data()), frame.size()}, append);
      // A torn tail is where the archiver was interrupted; a bad block with more written after
      // it is damage, and serving the prefix would end recovery early.
      if (scan.damaged) {
        throw Error("\"" + entry.path.string() + "\" is damaged: " + scan.problem + " at byte " +
                        std::to_string(scan.valid_bytes) + ", with more data after it",
                    "run walvault verify on the repository");
      }
    } else {
      if (::access(entry.path.c_str(), F_OK) != 0 && errno == ENOENT) {
        throw WalFileVanished("\"" + entry.path.string() + "\" is gone");
      }
      out.bytes.reserve(segment_size_bytes);
      decode_lz4_file(entry.path, append);
    }
  } else {
    const std::string raw = read_or_vanish(entry.path);
    append({reinterpret_cast<const std::byte*>(raw.data()), raw.size()});
  }
  if (!entry.partial && out.bytes.size() != segment_size_bytes) {
    throw Error("\"" + entry.path.string() + "\" holds " + std::to_string(out.bytes.size()) +
                    " bytes of WAL, not a whole segment of " + std::to_string(segment_size_bytes),
                "run walvault verify on the repository");
  }
  return out;
}

std::optional<WalFileEntry> find_wal_file(const Repository& repo, TimelineId tli, SegmentNo segno) {
  if (auto complete = repo.find_complete_segment(tli, segno)) return complete;
  std::optional<WalFileEntry> partial;
  for (auto& e : repo.list_wal(tli)) {
    if (e.segno > segno && !e.partial) return std::nullopt;  // a leftover behind newer WAL
    if (e.segno == segno && e.partial) partial = std::move(e);
  }
  return partial;
}

}  // namespace walvault
