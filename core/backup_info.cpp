#include "core/backup_info.h"

#include <algorithm>

#include "core/error.h"
#include "core/repo_lock.h"

namespace walvault {

std::string_view to_string(BackupStatus s) {
  switch (s) {
    case BackupStatus::running:
      return "running";
    case BackupStatus::complete:
      return "complete";
    case BackupStatus::failed:
      return "failed";
  }
  return "unknown";
}

namespace {
BackupStatus parse_status(const std::string& s) {
  if (s == "running") return BackupStatus::running;
  if (s == "complete") return BackupStatus::complete;
  if (s == "failed") return BackupStatus::failed;
  throw Error("unknown backup status \"" + s + "\"");
}

Lsn lsn_field(const Json& j, const char* key) {
  auto lsn = Lsn::parse(j.at(key).get<std::string>());
  if (!lsn) throw Error(std::string("invalid LSN in field ") + key);
  return *lsn;
}

Timestamp time_field(const Json& j, const char* key) {
  auto t = parse_timestamp(j.at(key).get<std::string>());
  if (!t || !t->had_zone) throw Error(std::string("invalid time in field ") + key);
  return t->time;
}
}  // namespace

Json to_json(const BackupInfo& b) {
  Json j;
  j["id"] = b.id;
  j["label"] = b.label;
  j["status"] = to_string(b.status);
  j["timeline"] = b.timeline.value;
  j["stop_timeline"] = b.stop_timeline.value;
  j["start_lsn"] = b.start_lsn.str();
  j["stop_lsn"] = b.stop_lsn.str();
  j["start_time"] = format_iso8601_utc(b.start_time);
  j["stop_time"] = format_iso8601_utc(b.stop_time);
  j["bytes"] = b.bytes;
  j["stored_bytes"] = b.stored_bytes;
  j["pg_version_num"] = b.pg_version_num;
  j["system_identifier"] = b.system_identifier;
  j["files"] = Json::array();
  for (const auto& f : b.files) {
    j["files"].push_back({{"name", f.name},
                          {"bytes", f.bytes},
                          {"stored_bytes", f.stored_bytes},
                          {"sha256", f.sha256}});
  }
  j["tablespaces"] = Json::array();
  for (const auto& t : b.tablespaces) {
    j["tablespaces"].push_back({{"oid", t.oid}, {"location", t.location}, {"file", t.file}});
  }
  if (!b.snapshots.empty()) j["snapshots"] = b.snapshots;
  if (!b.error.empty()) j["error"] = b.error;
  return j;
}

BackupInfo backup_info_from_json(const Json& j) {
  BackupInfo b;
  b.id = j.at("id").get<std::string>();
  b.label = j.value("label", "");
  b.status = parse_status(j.at("status").get<std::string>());
  b.timeline = TimelineId(j.at("timeline").get<uint32_t>());
  b.stop_timeline = TimelineId(j.value("stop_timeline", b.timeline.value));
  b.start_lsn = lsn_field(j, "start_lsn");
  b.stop_lsn = lsn_field(j, "stop_lsn");
  b.start_time = time_field(j, "start_time");
  b.stop_time = time_field(j, "stop_time");
  b.bytes = j.value("bytes", uint64_t(0));
  b.stored_bytes = j.value("stored_bytes", uint64_t(0));
  b.pg_version_num = j.value("pg_version_num", 0);
  b.system_identifier = j.value("system_identifier", "");
  for (const auto& f : j.value("files", Json::array())) {
    b.files.push_back({f.at("name").get<std::string>(), f.at("bytes").get<uint64_t>(),
                       f.at("stored_bytes").get<uint64_t>(), f.at("sha256").get<std::string>()});
  }
  for (const auto& t : j.value("tablespaces", Json::array())) {
    b.tablespaces.push_back({t.at("oid").get<uint32_t>(), t.at("location").get<std::string>(),
                             t.at("file").get<std::string>()});
  }
  b.snapshots = j.value("snapshots", std::vector<std::string>{});
  b.error = j.value("error", "");
  return b;
}

fs::path backup_dir(const Repository& repo, const std::string& id) {
  return repo.backups_dir() / id;
}

void save_backup_info(const Repository& repo, const BackupInfo& b) {
  write_file_durable(backup_dir(repo, b.id) / "backup.json", to_json(b).dump(2) + "\n");
}

std::string backup_lock_name(const std::string& backup_id) {
  return "backup-" + backup_id;
}

bool backup_in_progress(const Repository& repo, const std::string& backup_id) {
  return lock_holder(repo, backup_lock_name(backup_id)).has_value();
}

std::vector<BackupInfo> load_backups(const Repository& repo, std::vector<std::string>* problems) {
  std::vector<BackupInfo> out;
  auto report = [&](const std::string& problem) {
    if (problems) problems->push_back(problem);
  };
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(repo.backups_dir(), ec)) {
    if (!e.is_directory()) continue;
    const fs::path file = e.path() / "backup.json";
    std::optional<std::string> text;
    try {
      text = read_file_if_exists(file);
    } catch (const Error& ex) {
      report("backup " + e.path().filename().string() + " is unreadable: " + ex.what());
      continue;
    }
    if (!text) {
      report("backup " + e.path().filename().string() +
             " has no backup.json: it is not offered for restore");
      continue;
    }
    try {
      BackupInfo b = backup_info_from_json(Json::parse(*text));
      if (b.id != e.path().filename().string()) throw Error("its id is \"" + b.id + "\"");
      if (b.status == BackupStatus::running && !backup_in_progress(repo, b.id)) {
        // Its process died (kill -9, a crash, a reboot): it will never complete.
        b.status = BackupStatus::failed;
        if (b.error.empty()) b.error = "the backup process ended before the backup completed";
      }
      out.push_back(std::move(b));
    } catch (const std::exception& ex) {
      std::string why = ex.what();
      // nlohmann prefixes "[json.exception.parse_error.101] "; the reader needs the rest.
      if (auto pos = why.find("] "); why.starts_with("[json.") && pos != std::string::npos) {
        why = why.substr(pos + 2);
      }
      report("backup " + e.path().filename().string() +
             " is not offered for restore: its backup.json is damaged (" + why + ")");
    }
  }
  std::sort(out.begin(), out.end(),
            [](const BackupInfo& a, const BackupInfo& b) { return a.start_lsn < b.start_lsn; });
  return out;
}

}  // namespace walvault
