#include "snapshot/snapshot_listing.h"

#include <iomanip>
#include <map>
#include <sstream>

namespace walvault {

Json snapshots_to_json(const std::vector<SnapshotInfo>& snapshots) {
  Json out = Json::array();
  for (const auto& s : snapshots) {
    Json j;
    j["id"] = s.id;
    j["name"] = s.name;
    j["time"] = format_iso8601_utc(s.time);
    j["files"] = s.files;
    j["bytes"] = s.bytes;
    j["stored_bytes"] = s.stored_bytes;
    j["start_time"] = format_iso8601_utc(s.start_time);
    set_bytes_field(j, "source", s.source);
    if (!s.backup_id.empty()) j["backup"] = s.backup_id;
    Json bad = Json::array();
    for (const auto& p : s.inconsistent) {
      Json item;
      set_bytes_field(item, "path", p);
      bad.push_back(std::move(item));
    }
    j["inconsistent"] = std::move(bad);
    out.push_back(std::move(j));
  }
  return out;
}

std::string snapshots_to_text(const std::vector<SnapshotInfo>& snapshots) {
  if (snapshots.empty()) return "  no snapshots\n";
  std::ostringstream out;
  out << "  " << std::left << std::setw(36) << "id" << std::setw(18) << "name" << std::setw(34)
      << "time" << std::right << std::setw(8) << "files" << std::setw(14) << "bytes"
      << std::setw(14) << "stored"
      << "\n";
  for (const auto& s : snapshots) {
    out << "  " << std::left << std::setw(36) << s.id << std::setw(18) << s.name << std::setw(34)
        << format_iso8601_utc(s.time) << std::right << std::setw(8) << s.files << std::setw(14)
        << s.bytes << std::setw(14) << s.stored_bytes;
    if (!s.backup_id.empty()) out << "  backup " << s.backup_id;
    if (!s.inconsistent.empty()) out << "  (" << s.inconsistent.size() << " inconsistent)";
    out << "\n";
  }
  return out.str();
}

std::string snapshots_summary_text(const std::vector<SnapshotInfo>& snapshots) {
  if (snapshots.empty()) return "  no snapshots\n";
  std::map<std::string, std::vector<const SnapshotInfo*>> by_name;
  for (const auto& s : snapshots) by_name[s.name].push_back(&s);  // oldest first
  std::ostringstream out;
  for (const auto& [name, list] : by_name) {
    const SnapshotInfo& newest = *list.back();
    out << "  " << name << ": " << list.size() << (list.size() == 1 ? " snapshot" : " snapshots")
        << ", " << format_iso8601_utc(list.front()->time);
    if (list.size() > 1) out << " to " << format_iso8601_utc(newest.time);
    out << "; newest " << newest.id << " (" << newest.files << " files, " << newest.bytes
        << " bytes";
    if (!newest.inconsistent.empty()) out << ", " << newest.inconsistent.size() << " inconsistent";
    out << ")\n";
  }
  out << "  (walvault snapshot --list shows every snapshot)\n";
  return out.str();
}

}  // namespace walvault
