#pragma once
// The catalog: what a repository holds, read once — timelines with their ancestry and
// archived WAL, gaps, backups, and the restorable window — for `walvault info` and as the
// input of the planner.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/repository.h"
#include "pitr/planner.h"
#include "pitr/repo_wal.h"

namespace walvault {

struct CatalogTimeline {
  TimelineId timeline;
  std::optional<TimelineId> parent;
  std::optional<Lsn> switch_lsn;  // where it branched off its parent
  bool has_history_file = false;
  std::vector<WalRange> ranges;
  std::optional<WalFileEntry> partial;  // the segment being written, if any
  uint64_t partial_bytes = 0;
};

struct WalGap {
  TimelineId timeline;  // whose WAL is missing
  Lsn start;
  Lsn end;
  friend bool operator==(const WalGap&, const WalGap&) = default;
};

class Catalog {
 public:
  // Reads the repository (nothing is written). Damaged history files are reported in
  // problems() and their timeline treated as having no known ancestors.
  explicit Catalog(const Repository& repo);

  const Repository& repo() const { return repo_; }
  const RepoState& state() const { return state_; }
  RepoWal& wal() { return *wal_; }
  const std::vector<CatalogTimeline>& timelines() const { return timelines_; }
  const std::vector<WalGap>& gaps() const { return gaps_; }
  const std::vector<std::string>& problems() const { return problems_; }
  // The subset of problems() about backups left out (damaged or missing backup.json).
  const std::vector<std::string>& backup_problems() const { return backup_problems_; }

  // The restorable window along the newest timeline (computed on first use).
  const RecoverableWindow& window();

  Json to_json();
  std::string to_text();

 private:
  const Repository& repo_;
  RepoState state_;
  std::unique_ptr<RepoWal> wal_;
  std::vector<CatalogTimeline> timelines_;
  std::vector<WalGap> gaps_;
  std::vector<std::string> problems_;
  std::vector<std::string> backup_problems_;
  std::optional<RecoverableWindow> window_;
};

// Holes in archived WAL: between the ranges of each timeline, and along the history of
// `path` (where the file PostgreSQL would read for a segment is missing).
std::vector<WalGap> find_gaps(const WalRangesByTimeline& wal, const TimelineHistory& path,
                              uint64_t segment_size_bytes);

// "15.18" from 150018.
std::string pg_version_text(int version_num);

}  // namespace walvault
