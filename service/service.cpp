#include "service/service.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>

#include "basebackup/backup_runner.h"
#include "core/backup_info.h"
#include "core/error.h"
#include "core/log.h"
#include "pitr/retention.h"
#include "snapshot/snapshot_writer.h"
#include "walarchiver/archiver.h"

namespace walvault {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr int kFirstArchiverBackoffS = 5;
constexpr int kMaxArchiverBackoffS = 300;
constexpr auto kMaxSchedulerSleep = std::chrono::seconds(30);

std::string with_hint(const std::exception& e) {
  std::string out = e.what();
  if (const auto* err = dynamic_cast<const Error*>(&e); err && !err->hint().empty()) {
    out += " (HINT: " + err->hint() + ")";
  }
  return out;
}

std::string when(std::optional<Timestamp> t) {
  return t ? format_iso8601_utc(Timestamp{t->unix_us - t->unix_us % 1'000'000}) : "never";
}

std::vector<std::string> dir_names(const ServiceConfig& c) {
  std::vector<std::string> out;
  for (const auto& d : c.dirs) out.push_back(d.substr(0, d.find('=')));
  return out;
}

}  // namespace

void write_metrics_textfile(const fs::path& path, const std::string& text) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) throw errno_error("could not create \"" + tmp.string() + "\"", errno);
    if (::fchmod(fd.get(), 0644) != 0) {
      throw errno_error("could not chmod \"" + tmp.string() + "\"", errno);
    }
    write_all(fd.get(), as_bytes(text), tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    throw errno_error("could not rename \"" + tmp.string() + "\" to \"" + path.string() + "\"",
                      errno);
  }
}

Service::Service(ServiceConfig config)
    : config_(std::make_shared<const ServiceConfig>(std::move(config))) {}

Service::~Service() {
  stop();
}

std::shared_ptr<const ServiceConfig> Service::config() const {
  std::lock_guard lock(mutex_);
  return config_;
}

void Service::start() {
  const auto c = config();
  log::set_level(c->log_level);
  for (const auto& line : describe(*c)) log::info(line);
  if (c->metrics_listen) {
    metrics_server_ =
        std::make_unique<MetricsServer>(*c->metrics_listen, [this] { return metrics_.render(); });
    log::info("metrics at http://" + c->metrics_listen->describe() + "/metrics");
  }
  next_textfile_ = SteadyClock::now();
  archiver_thread_ = std::thread([this] { archiver_loop(); });
  scheduler_thread_ = std::thread([this] { scheduler_loop(); });
}

void Service::reload(ServiceConfig next) {
  const auto old = config();
  log::set_level(next.log_level);
  if (next.metrics_listen != old->metrics_listen) {
    const auto bind = [this](const std::optional<ListenAddress>& a) {
      metrics_server_.reset();
      if (a) {
        metrics_server_ = std::make_unique<MetricsServer>(*a, [this] { return metrics_.render(); });
      }
    };
    try {
      bind(next.metrics_listen);
      if (next.metrics_listen)
        log::info("metrics now at http://" + next.metrics_listen->describe() + "/metrics");
    } catch (const std::exception& e) {
      log::error(std::string("reload: ") + with_hint(e) + "; keeping the previous metrics address");
      next.metrics_listen = old->metrics_listen;
      try {
        bind(old->metrics_listen);
      } catch (const std::exception& again) {
        log::error(std::string("metrics endpoint lost: ") + with_hint(again));
        next.metrics_listen.reset();
      }
    }
  }
  const bool restart_archiver = archiver_settings_differ(*old, next);
  for (const auto& line : describe(next)) log::info("reloaded: " + line);
  {
    std::lock_guard lock(mutex_);
    config_ = std::make_shared<const ServiceConfig>(std::move(next));
    wake_ = true;
  }
  wake_cv_.notify_all();
  if (restart_archiver) {
    log::info("the archiver's settings changed: restarting it");
    archiver_restart_ = true;
  }
}

void Service::stop() {
  if (stop_.exchange(true) && !archiver_thread_.joinable() && !scheduler_thread_.joinable()) {
    return;
  }
  {
    std::lock_guard lock(mutex_);
    wake_ = true;
  }
  wake_cv_.notify_all();
  if (scheduler_thread_.joinable()) scheduler_thread_.join();
  if (archiver_thread_.joinable()) archiver_thread_.join();
  metrics_server_.reset();
  const auto c = config();
  if (c->metrics_textfile) {
    try {
      write_metrics_textfile(*c->metrics_textfile, metrics_.render());
    } catch (const std::exception& e) {
      log::warning(std::string("could not write the metrics textfile: ") + e.what());
    }
  }
}

void Service::tick() {
  const auto c = config();
  if (!c->metrics_textfile || SteadyClock::now() < next_textfile_) return;
  next_textfile_ = SteadyClock::now() + c->metrics_interval;
  try {
    write_metrics_textfile(*c->metrics_textfile, metrics_.render());
    if (textfile_failing_) log::info("the metrics textfile is written again");
    textfile_failing_ = false;
  } catch (const std::exception& e) {
    if (!textfile_failing_) {
      log::warning(std::string("could not write the metrics textfile: ") + e.what());
    }
    textfile_failing_ = true;
  }
}

bool Service::wait_until(SteadyClock::time_point deadline) {
  std::unique_lock lock(mutex_);
  wake_cv_.wait_until(lock, deadline, [this] { return wake_ || stop_; });
  const bool woken = wake_ || stop_;
  wake_ = false;
  return !woken;
}

void Service::archiver_loop() {
  int backoff_s = kFirstArchiverBackoffS;
  while (!stop_) {
    archiver_restart_ = false;
    const auto c = config();
    ArchiveOptions o;
    o.repo = c->repo;
    o.conninfo = c->conninfo;
    o.application_name = c->application_name;
    o.slot = c->slot;
    o.create_slot = c->create_slot;
    o.allow_gap = c->allow_gap;
    o.synchronous = c->synchronous;
    o.compression = c->compression;
    o.io = c->io;
    o.status_interval_ms = c->status_interval_ms;
    o.stats = &metrics_.archiver();
    o.stop_requested = [this] { return stop_ || archiver_restart_; };
    const auto started = SteadyClock::now();
    try {
      run_archiver(o);
      if (stop_ || archiver_restart_) continue;
      log::error("the archiver stopped by itself; restarting it");
    } catch (const std::exception& e) {
      metrics_.update([](JobStats& j) { ++j.archiver_errors; });
      if (SteadyClock::now() - started > std::chrono::seconds(kMaxArchiverBackoffS)) {
        backoff_s = kFirstArchiverBackoffS;
      }
      log::error("archiver: " + with_hint(e) + "; restarting it in " + std::to_string(backoff_s) +
                 " s");
    }
    const auto until = SteadyClock::now() + std::chrono::seconds(backoff_s);
    while (!stop_ && !archiver_restart_ && SteadyClock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    backoff_s = std::min(backoff_s * 2, kMaxArchiverBackoffS);
  }
}

void Service::load_repository_state(const ServiceConfig& c) {
  try {
    const Repository repo = Repository::open(c.repo);
    std::vector<std::string> problems;
    std::optional<BackupInfo> newest;
    for (const BackupInfo& b : load_backups(repo, &problems)) {
      if (b.status == BackupStatus::complete && (!newest || b.stop_time > newest->stop_time)) {
        newest = b;
      }
    }
    if (newest) {
      // Interrupted or failed backups after it do not count: the next slot may be due now.
      last_backup_attempt_ = newest->start_time;
      metrics_.update([&](JobStats& j) {
        j.last_backup_time = newest->stop_time;
        j.last_backup_duration_s =
            double(newest->stop_time.unix_us - newest->start_time.unix_us) / 1e6;
      });
    }
    const std::vector<std::string> names = dir_names(c);
    std::optional<Timestamp> snapshot_time;
    for (const SnapshotInfo& s : load_snapshots(repo, &problems)) {
      if (std::find(names.begin(), names.end(), s.name) == names.end()) continue;
      if (!snapshot_time || s.time > *snapshot_time) snapshot_time = s.time;
    }
    if (snapshot_time) {
      last_snapshot_attempt_ = snapshot_time;
      metrics_.update([&](JobStats& j) { j.last_snapshot_time = snapshot_time; });
    }
  } catch (const std::exception& e) {
    log::warning(std::string("could not read the repository's backups and snapshots (") + e.what() +
                 "); scheduling as if there were none");
  }
}

void Service::scheduler_loop() {
  bool waiting_logged = false;
  while (!stop_) {
    const auto c = config();
    std::error_code ec;
    if (fs::exists(c->repo / "walvault.json", ec)) {
      load_repository_state(*c);
      break;
    }
    if (!waiting_logged && (c->backup.enabled() || c->snapshot.enabled())) {
      log::info("scheduled jobs wait until the archiver has created the repository");
      waiting_logged = true;
    }
    wait_until(SteadyClock::now() + std::chrono::seconds(1));
  }
  std::optional<Timestamp> logged_backup, logged_snapshot;
  while (!stop_) {
    const auto c = config();
    const Timestamp t = now();
    const auto backup_at = next_slot(c->backup, last_backup_attempt_, t);
    const auto snapshot_at = next_slot(c->snapshot, last_snapshot_attempt_, t);
    if (backup_at && *backup_at <= t) {
      run_backup_job(*c);
      continue;
    }
    if (snapshot_at && *snapshot_at <= t) {
      run_snapshot_job(*c);
      continue;
    }
    if (backup_at != logged_backup && backup_at)
      log::info("next base backup at " + when(backup_at));
    if (snapshot_at != logged_snapshot && snapshot_at) {
      log::info("next snapshot at " + when(snapshot_at));
    }
    logged_backup = backup_at;
    logged_snapshot = snapshot_at;
    // Sleep until the earliest slot, but wake now and then: the wall clock may be set.
    auto sleep = std::chrono::microseconds(kMaxSchedulerSleep);
    for (const auto& at : {backup_at, snapshot_at}) {
      if (at) sleep = std::min(sleep, std::chrono::microseconds(at->unix_us - t.unix_us));
    }
    wait_until(SteadyClock::now() + sleep);
  }
}

void Service::run_backup_job(const ServiceConfig& c) {
  last_backup_attempt_ = now();
  metrics_.update([](JobStats& j) { j.backup_running = true; });
  log::info("scheduled base backup starting" +
            (c.backup_max_rate_kbps
                 ? " (at most " + std::to_string(c.backup_max_rate_kbps) + " kB/s)"
                 : std::string()));
  BackupOptions o;
  o.repo = c.repo;
  o.conninfo = c.conninfo;
  o.checkpoint = c.checkpoint;
  o.wal_timeout_s = c.wal_timeout_s;
  o.max_rate_kbps = c.backup_max_rate_kbps;
  o.label = "walvault service";
  o.stop_requested = [this] { return stop_.load(); };
  bool with_snapshots = false;
  try {
    const std::vector<SnapshotRequest> dirs = snapshot_requests(c.dirs, c.excludes);
    with_snapshots = !dirs.empty();
    if (with_snapshots) {
      o.take_snapshots = [&](const Repository& repo, const std::string& id) {
        SnapshotOptions options;
        options.stop_requested = o.stop_requested;
        return take_backup_snapshots(repo, dirs, id, options);
      };
    }
    const BackupInfo info = run_backup(o);
    const double duration_s = double(info.stop_time.unix_us - info.start_time.unix_us) / 1e6;
    metrics_.update([&](JobStats& j) {
      j.backup_running = false;
      ++j.backups_completed;
      j.last_backup_time = info.stop_time;
      j.last_backup_duration_s = duration_s;
      if (with_snapshots) {
        j.snapshots_completed += info.snapshots.size();
        j.last_snapshot_time = info.start_time;
      }
    });
    // The backup's snapshots are as fresh as a scheduled snapshot would be.
    if (with_snapshots)
      last_snapshot_attempt_ =
          std::max(*last_backup_attempt_, last_snapshot_attempt_.value_or(Timestamp{}));
  } catch (const std::exception& e) {
    metrics_.update([](JobStats& j) {
      j.backup_running = false;
      ++j.backup_errors;
    });
    if (stop_) {
      log::warning(
          "the base backup in progress was interrupted by the shutdown and is marked "
          "failed (" +
          std::string(e.what()) + ")");
    } else {
      log::error("scheduled base backup failed: " + with_hint(e) +
                 "; it is retried at the next slot");
    }
    return;
  }
  // Only after a complete backup: a failing backup never makes retention remove anything.
  if (c.retention_enabled() && !stop_) run_retention_job(c);
}

void Service::run_retention_job(const ServiceConfig& c) {
  const RetentionPolicy policy = c.retain_full ? RetentionPolicy::retain_full(*c.retain_full)
                                               : RetentionPolicy::retain_days(*c.retain_days);
  try {
    const Repository repo = Repository::open(c.repo);
    const ExpireReport report = run_expire(repo, policy);
    metrics_.update([](JobStats& j) { ++j.retention_runs; });
    const size_t backups = report.plan.backups.size();
    const size_t snapshots = report.plan.snapshots.size();
    log::info("retention (" + policy.describe() + "): " + std::to_string(backups) + " backup(s), " +
              std::to_string(report.wal_files) + " WAL file(s), " + std::to_string(snapshots) +
              " snapshot(s) and " + std::to_string(report.objects) + " store object(s) removed, " +
              format_bytes(report.bytes_freed()) + " freed");
    for (const auto& note : report.notes) log::info("retention: " + note);
  } catch (const std::exception& e) {
    metrics_.update([](JobStats& j) { ++j.retention_errors; });
    log::error("retention (" + policy.describe() + ") failed: " + with_hint(e) +
               "; the backup is kept, retention runs again after the next backup");
  }
}

void Service::run_snapshot_job(const ServiceConfig& c) {
  last_snapshot_attempt_ = now();
  std::vector<SnapshotRequest> requests;
  std::optional<Repository> repo;
  try {
    requests = snapshot_requests(c.dirs, c.excludes);
    repo.emplace(Repository::open(c.repo));
  } catch (const std::exception& e) {
    metrics_.update([](JobStats& j) { ++j.snapshot_errors; });
    log::error("scheduled snapshots failed: " + with_hint(e) + "; retried at the next slot");
    return;
  }
  for (const SnapshotRequest& r : requests) {
    if (stop_) return;
    try {
      SnapshotOptions options;
      options.stop_requested = [this] { return stop_.load(); };
      const SnapshotInfo info = take_snapshot(*repo, r, options);
      log::info(describe(info));
      metrics_.update([&](JobStats& j) {
        ++j.snapshots_completed;
        j.last_snapshot_time = info.time;
      });
    } catch (const std::exception& e) {
      metrics_.update([](JobStats& j) { ++j.snapshot_errors; });
      if (stop_) {
        log::warning("the snapshot of \"" + r.name +
                     "\" was interrupted by the shutdown; nothing of it is kept");
      } else {
        log::error("scheduled snapshot of \"" + r.name + "\" failed: " + with_hint(e) +
                   "; retried at the next slot");
      }
    }
  }
}

}  // namespace walvault
