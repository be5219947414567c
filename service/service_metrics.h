#pragma once
// What walvault service reports to Prometheus: the archiver's position (published by the
// receive loop, walarchiver/archiver_stats.h) and the outcome of the scheduled jobs. Rendered
// in the Prometheus text exposition format (version 0.0.4), every name prefixed walvault_
// and with HELP and TYPE lines.

#include <mutex>
#include <optional>
#include <string>

#include "core/timestamp.h"
#include "walarchiver/archiver_stats.h"

namespace walvault {

struct JobStats {
  std::optional<Timestamp> last_backup_time;  // stop time of the newest complete backup
  double last_backup_duration_s = 0;
  bool backup_running = false;
  std::optional<Timestamp> last_snapshot_time;  // newest snapshot of a configured dir
  uint64_t backups_completed = 0;               // since the service started
  uint64_t backup_errors = 0;
  uint64_t snapshots_completed = 0;
  uint64_t snapshot_errors = 0;
  uint64_t retention_runs = 0;
  uint64_t retention_errors = 0;
  uint64_t archiver_errors = 0;  // the archiver ended with an error and was restarted
};

class ServiceMetrics {
 public:
  ServiceMetrics() : start_time_(now()) {}

  ArchiverStats& archiver() { return archiver_; }

  // Changes the job statistics under the lock.
  template <typename F>
  void update(F&& change) {
    std::lock_guard lock(mutex_);
    change(jobs_);
  }
  JobStats jobs() const {
    std::lock_guard lock(mutex_);
    return jobs_;
  }

  std::string render() const;

 private:
  ArchiverStats archiver_;
  Timestamp start_time_;
  mutable std::mutex mutex_;
  JobStats jobs_;
};

}  // namespace walvault
