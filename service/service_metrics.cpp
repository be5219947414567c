#include "service/service_metrics.h"

#include <cstdio>

namespace walvault {
namespace {

class Writer {
 public:
  void metric(const char* name, const char* type, const char* help, double value) {
    out_ += std::string("# HELP walvault_") + name + " " + help + "\n";
    out_ += std::string("# TYPE walvault_") + name + " " + type + "\n";
    out_ += std::string("walvault_") + name + " " + number(value) + "\n";
  }
  std::string take() { return std::move(out_); }

 private:
  static std::string number(double v) {
    char buf[64];
    // %.17g keeps every integer up to 2^53 exact (LSNs, byte counts) without an exponent.
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
  }
  std::string out_;
};

double seconds(std::optional<Timestamp> t) {
  return t ? double(t->unix_us) / 1e6 : 0.0;
}

}  // namespace

std::string ServiceMetrics::render() const {
  const JobStats j = jobs();
  const uint64_t flushed = archiver_.flushed_lsn;
  const uint64_t server_end = archiver_.server_wal_end;
  const int64_t last_segment_us = archiver_.last_segment_unix_us;
  Writer w;
  w.metric("up", "gauge", "1 while walvault service runs", 1);
  w.metric("start_time_seconds", "gauge", "when the service started (Unix time)",
           seconds(start_time_));
  w.metric("archiver_up", "gauge", "1 while the archiver streams WAL from the server",
           archiver_.streaming ? 1 : 0);
  w.metric("archiver_timeline", "gauge", "timeline being archived", archiver_.timeline);
  w.metric("wal_received_lsn", "gauge", "WAL received from the server up to this LSN (as a number)",
           double(archiver_.received_lsn));
  w.metric("wal_flushed_lsn", "gauge",
           "WAL durable in the repository up to this LSN (as a number); reported to the server",
           double(flushed));
  w.metric("wal_server_lsn", "gauge", "the server's WAL end as it last reported it (as a number)",
           double(server_end));
  w.metric("wal_lag_bytes", "gauge", "bytes of WAL the server has that are not yet durable here",
           server_end > flushed ? double(server_end - flushed) : 0.0);
  w.metric("wal_segments_archived_total", "counter",
           "WAL segments completed in the repository since the service started",
           double(archiver_.segments_archived));
  w.metric("wal_received_bytes_total", "counter", "bytes of WAL received since the service started",
           double(archiver_.bytes_received));
  w.metric("wal_last_segment_time_seconds", "gauge",
           "when the newest WAL segment was completed (Unix time; 0: none since the start)",
           double(last_segment_us) / 1e6);
  w.metric("archiver_errors_total", "counter",
           "times the archiver stopped with an error and was restarted", double(j.archiver_errors));
  w.metric("backup_running", "gauge", "1 while a scheduled base backup runs",
           j.backup_running ? 1 : 0);
  w.metric("last_backup_time_seconds", "gauge",
           "stop time of the newest complete base backup (Unix time; 0: none)",
           seconds(j.last_backup_time));
  w.metric("last_backup_duration_seconds", "gauge", "how long the newest complete base backup took",
           j.last_backup_duration_s);
  w.metric("backups_completed_total", "counter", "scheduled base backups completed",
           double(j.backups_completed));
  w.metric("backup_errors_total", "counter", "scheduled base backups that failed",
           double(j.backup_errors));
  w.metric("last_snapshot_time_seconds", "gauge",
           "time of the newest snapshot of a configured directory (Unix time; 0: none)",
           seconds(j.last_snapshot_time));
  w.metric("snapshots_completed_total", "counter", "scheduled directory snapshots completed",
           double(j.snapshots_completed));
  w.metric("snapshot_errors_total", "counter", "scheduled directory snapshots that failed",
           double(j.snapshot_errors));
  w.metric("retention_runs_total", "counter", "retention runs completed", double(j.retention_runs));
  w.metric("retention_errors_total", "counter", "retention runs that failed",
           double(j.retention_errors));
  return w.take();
}

}  // namespace walvault
