#pragma once
// walvault service: the archiver, running continuously, plus scheduled base backups,
// scheduled snapshots, retention after each backup and metrics, in one process.
//
// Threads, not child processes: the archiver's position is published through atomics
// (metrics without a side channel), one stop flag reaches every job, and the repository's
// locks are flock(2) locks, which distinguish open files, not processes (a backup in this
// process sees the archiver thread's lock and waits for its WAL exactly as a separate
// `walvault backup` does). Each job is isolated by catching everything it throws: a failing
// backup, snapshot or retention run is logged, counted and retried at its next slot; an
// archiver that ends with an error is restarted with backoff. Signals are blocked in every
// thread and taken by the caller's thread (cli/cmd_service.cpp, sigtimedwait), so no job is
// ever interrupted in the middle of a system call.

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "service/metrics_server.h"
#include "service/service_config.h"
#include "service/service_metrics.h"

namespace walvault {

class Service {
 public:
  explicit Service(ServiceConfig config);
  ~Service();  // stop()
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Starts the metrics endpoint (an Error when its address cannot be bound), the archiver
  // and the scheduler.
  void start();
  // A new configuration (SIGHUP): schedules, retention, directories and log level apply from
  // the next job on; changed archiver settings restart the archiver (its data stays durable);
  // a changed metrics address rebinds (on failure the old endpoint stays).
  void reload(ServiceConfig config);
  // Asks every job to stop and waits: the archiver makes what it received durable (the
  // .partial stays resumable), a backup in progress is marked failed, a snapshot in progress
  // is removed.
  void stop();
  // Called about once a second by the owner: rewrites the metrics textfile when it is due.
  void tick();

  const ServiceMetrics& metrics() const { return metrics_; }

 private:
  std::shared_ptr<const ServiceConfig> config() const;
  bool wait_until(std::chrono::steady_clock::time_point deadline);  // false: stop or reload
  void archiver_loop();
  void scheduler_loop();
  void run_backup_job(const ServiceConfig& c);
  void run_snapshot_job(const ServiceConfig& c);
  void run_retention_job(const ServiceConfig& c);  // walvault expire's run_expire
  void load_repository_state(const ServiceConfig& c);
  void write_textfile(const ServiceConfig& c);

  mutable std::mutex mutex_;  // config_, wake_
  std::condition_variable wake_cv_;
  bool wake_ = false;  // a reload or a stop: the scheduler recomputes its next slot
  std::shared_ptr<const ServiceConfig> config_;

  std::atomic<bool> stop_{false};
  std::atomic<bool> archiver_restart_{false};
  ServiceMetrics metrics_;
  std::unique_ptr<MetricsServer> metrics_server_;
  std::optional<Timestamp> last_backup_attempt_;
  std::optional<Timestamp> last_snapshot_attempt_;
  std::chrono::steady_clock::time_point next_textfile_;
  bool textfile_failing_ = false;  // one warning per run of failures, not one every interval
  std::thread archiver_thread_;
  std::thread scheduler_thread_;
};

// Writes the metrics text to path atomically (temporary file, then rename), mode 0644 so
// that node_exporter, running as another user, can read it.
void write_metrics_textfile(const fs::path& path, const std::string& text);

}  // namespace walvault
