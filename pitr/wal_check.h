#pragma once
// Checking archived WAL files without replaying them: the lz4 frame (block and content
// checksums), the size (a complete file holds exactly one segment), and what a recovering
// server checks first: page headers (address, database system, timeline) and every record's
// length, back link and CRC-32C (pitr/wal_records.h). Files are streamed, never loaded whole,
// except a `.partial` (at most one segment).
//
// Used by `walvault verify` (every file), `restore` (the files its plan needs, before anything
// is written) and `wal-get` (what it hands PostgreSQL).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/repository.h"
#include "pitr/wal_records.h"

namespace walvault {

struct WalFileVerdict {
  enum class Kind {
    ok,
    torn_tail,  // a .partial whose last write was torn: its verified prefix is its content
    damaged,
    vanished,  // gone between listing and reading (a .partial completed meanwhile)
  };
  Kind kind = Kind::ok;
  std::string problem;             // damaged, torn_tail: what is wrong, without the file name
  uint64_t content_bytes = 0;      // WAL bytes decoded (a .partial: its verified prefix)
  uint64_t stored_bytes = 0;       // bytes read from the file
  uint64_t system_identifier = 0;  // from the segment's long page header (0: not read)
  bool foreign_system = false;     // damaged only because the system identifier differs
};

// The identity the pages of a repository's WAL must carry (walvault.json).
struct WalIdentity {
  uint64_t segment_size = 0;
  int pg_major = 0;
  uint64_t system_identifier = 0;  // 0: not checked
};
WalIdentity wal_identity(const RepoIdentity& identity);

class WalFileChecker {
 public:
  // Checks files of one timeline; ancestors (when known, from its history file) are the
  // earlier timelines its pages may carry.
  WalFileChecker(WalIdentity identity, TimelineId timeline, std::vector<TimelineId> ancestors);
  ~WalFileChecker();
  WalFileChecker(const WalFileChecker&) = delete;
  WalFileChecker& operator=(const WalFileChecker&) = delete;

  // Checks one file of the timeline. A complete segment right after the previous one checked
  // continues its record scan, so records crossing into it are checked too; anything else
  // starts afresh at the file's segment start.
  WalFileVerdict check(const WalFileEntry& file);
  // Reads a complete segment without judging it, so that the next check() sees records that
  // cross into its segment (used before the first file of a run).
  void prime(const WalFileEntry& file);

 private:
  WalFileVerdict run(const WalFileEntry& file);
  WalFileVerdict read_complete(const WalFileEntry& file, WalRecordScanner& scanner);
  WalFileVerdict read_partial(const WalFileEntry& file, WalRecordScanner& scanner);
  std::unique_ptr<WalRecordScanner> new_scanner() const;

  WalIdentity identity_;
  WalPageExpectations expect_;
  std::unique_ptr<WalRecordScanner> scanner_;
  std::optional<SegmentNo> next_;  // the segment the running scan continues with
};

}  // namespace walvault
