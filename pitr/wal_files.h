#pragma once
// Reading archived WAL files back, for wal-get (what PostgreSQL replays) and for the record
// scanner. The repository keeps a complete segment as an lz4 frame (or uncompressed) and the
// segment being written as a `.partial`, of which only the verified prefix is content.

#include <cstddef>
#include <optional>
#include <vector>

#include "core/error.h"
#include "core/repository.h"

namespace walvault {

struct WalFileContent {
  std::vector<std::byte> bytes;  // a whole segment, or the durable prefix of a .partial
  bool partial = false;
};

// Thrown when the file is gone between listing and reading (a .partial that the archiver
// completed meanwhile): look again.
class WalFileVanished : public Error {
 public:
  using Error::Error;
};

// Decodes one archived WAL file. Throws Error naming the file when it is damaged, truncated,
// or (complete segments) not exactly one segment long.
WalFileContent read_wal_file(const WalFileEntry& entry, uint64_t segment_size_bytes);

// The file that holds segment (tli, segno): the complete one, else a .partial when it is the
// newest segment of its timeline (a .partial behind a complete later segment is a leftover).
std::optional<WalFileEntry> find_wal_file(const Repository& repo, TimelineId tli, SegmentNo segno);

}  // namespace walvault
