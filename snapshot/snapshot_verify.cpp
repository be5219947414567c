#include "snapshot/snapshot_verify.h"

#include <map>

#include "core/error.h"
#include "core/object_store.h"

namespace walvault {

std::string SnapshotProblem::describe() const {
  std::string out = "snapshot " + snapshot_id;
  if (!path.empty()) out += ", file \"" + path + "\"";
  out += ": ";
  if (!object.empty()) out += "object " + object + " is ";
  return out + problem;
}

Json SnapshotVerifyReport::to_json() const {
  Json j;
  j["snapshots"] = snapshots;
  j["objects"] = objects;
  j["bytes"] = bytes;
  j["stored_bytes"] = stored_bytes;
  j["problems"] = Json::array();
  for (const auto& p : problems) {
    Json item{{"snapshot", p.snapshot_id}};
    set_bytes_field(item, "path", p.path);
    item["object"] = p.object;
    item["problem"] = p.problem;
    j["problems"].push_back(std::move(item));
  }
  return j;
}

SnapshotVerifyReport verify_snapshots(const Repository& repo,
                                      const std::vector<SnapshotInfo>& snapshots) {
  SnapshotVerifyReport report;
  ObjectStore store(repo.store_dir());
  std::map<std::string, ObjectCheck> checked;
  for (const auto& s : snapshots) {
    ++report.snapshots;
    std::vector<SnapshotEntry> entries;
    try {
      entries = load_snapshot_entries(repo, s);
    } catch (const Error& e) {
      report.problems.push_back({s.id, "", "", e.what()});
      continue;
    }
    for (const auto& e : entries) {
      for (const auto& c : e.chunks) {
        auto it = checked.find(c.sha256);
        if (it == checked.end()) {
          it = checked.emplace(c.sha256, store.check(c.sha256)).first;
          ++report.objects;
          report.bytes += it->second.bytes;
          report.stored_bytes += it->second.stored_bytes;
        }
        const ObjectCheck& oc = it->second;
        if (!oc.ok) {
          report.problems.push_back(
              {s.id, e.path, store.object_path(c.sha256).string(), oc.problem});
        } else if (oc.bytes != c.bytes) {
          report.problems.push_back({s.id, e.path, store.object_path(c.sha256).string(),
                                     "of " + std::to_string(oc.bytes) + " bytes, the entry says " +
                                         std::to_string(c.bytes)});
        }
      }
    }
  }
  return report;
}

}  // namespace walvault

namespace walvault {

std::set<std::string> objects_in_use(const Repository& repo,
                                     const std::vector<SnapshotInfo>& kept) {
  std::set<std::string> out;
  for (const auto& s : kept) {
    for (const auto& e : load_snapshot_entries(repo, s)) {
      for (const auto& c : e.chunks) out.insert(c.sha256);
    }
  }
  return out;
}

}  // namespace walvault
