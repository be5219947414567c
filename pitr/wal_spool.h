#pragma once
// The wal-get prefetch spool: a local directory (by default `pg_wal/walvault-prefetch/` of the
// recovering cluster) that a background prefetcher fills with the segments PostgreSQL will ask
// for next, so that recovery does not wait for each one to be read and decompressed from the
// repository.
//
// Layout: complete segments under their WAL file names; a segment is written to
// `<name>.tmp.<pid>` and renamed, so a name is only ever a whole, checked segment. Dot files
// hold the protocol between wal-get (the consumer) and the prefetcher:
//   .want            the file PostgreSQL asked for last (written by wal-get, read by the
//   prefetcher) .prefetch.lock   flock()ed by the one running prefetcher .served          how many
//   requests wal-get served from the spool / how many it served at all .prefetched      how many
//   segments the prefetcher spooled, and the most it held at once
//
// Bounds: at most max_segments segments and max_bytes bytes at any time (put refuses more).

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/lsn.h"

namespace walvault {

namespace fs = std::filesystem;

class WalSpool {
 public:
  WalSpool(fs::path dir, uint64_t segment_size, size_t max_segments, uint64_t max_bytes);

  const fs::path& dir() const { return dir_; }
  size_t max_segments() const { return max_segments_; }
  uint64_t max_bytes() const { return max_bytes_; }
  bool exists() const;
  void create() const;  // mkdir 0700 (not the parents); fine when it exists

  // The spooled segments (WAL file names, complete ones only), sorted.
  std::vector<std::string> entries() const;
  bool contains(const std::string& name) const;
  bool has_room() const;

  // Producer: writes a whole segment (exactly segment_size bytes) under a temporary name and
  // renames it into place. Returns false (writes nothing) when the spool is full or gone.
  bool put(const std::string& name, std::span<const std::byte> segment);
  // True while a producer is writing name.
  bool writing(const std::string& name) const;

  // Consumer: moves the spooled segment to dest (rename, or copy + unlink across file systems)
  // when it is there and exactly one segment long; a spooled file of another length is removed
  // and false returned. A segment is served at most once.
  bool take(const std::string& name, const fs::path& dest);
  // Removes spooled segments PostgreSQL will not ask for again: those of earlier segment
  // numbers, and other timelines' files of this segment number.
  void drop_before(const WalFileName& asked);

  // .want
  void set_want(const std::string& name) const;
  std::optional<std::string> want() const;

  // Counters (best effort, for logs and tests).
  struct Stats {
    uint64_t served_from_spool = 0;
    uint64_t requests = 0;
    uint64_t prefetched = 0;
    uint64_t max_spooled = 0;
  };
  Stats stats() const;
  void count_request(bool from_spool) const;
  void count_prefetched(size_t spooled_now) const;

  // Removes the whole spool directory (what is in it, then the directory). Fine when absent.
  void remove() const;

  fs::path lock_path() const { return dir_ / ".prefetch.lock"; }

 private:
  fs::path dir_;
  uint64_t segment_size_;
  size_t max_segments_;
  uint64_t max_bytes_;
};

}  // namespace walvault
