#include "snapshot/snapshot_manifest.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "core/error.h"
#include "core/hash.h"
#include "core/lz4_frame.h"

namespace walvault {
namespace {

constexpr const char* kInfoFile = "snapshot.json";

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = uint8_t(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = uint8_t(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    const uint32_t min_cp = n == 1 ? 0x80 : n == 2 ? 0x800 : 0x10000;
    if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

std::string to_hex(std::string_view s) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2);
  for (char ch : s) {
    const auto c = uint8_t(ch);
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

std::string from_hex(const std::string& hex) {
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (hex.size() % 2) throw Error("invalid hex string in snapshot entry");
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = val(hex[i]), lo = val(hex[i + 1]);
    if (hi < 0 || lo < 0) throw Error("invalid hex string in snapshot entry");
    out.push_back(char(hi * 16 + lo));
  }
  return out;
}

Timestamp time_field(const Json& j, const char* key) {
  auto t = parse_timestamp(j.at(key).get<std::string>());
  if (!t || !t->had_zone) throw Error(std::string("invalid time in field ") + key);
  return t->time;
}

EntryType parse_type(const std::string& s) {
  if (s == "dir") return EntryType::dir;
  if (s == "file") return EntryType::file;
  if (s == "symlink") return EntryType::symlink;
  throw Error("unknown entry type \"" + s + "\"");
}

uint32_t parse_mode(const std::string& s) {
  if (s.empty() || s.size() > 6) throw Error("invalid mode \"" + s + "\"");
  uint32_t m = 0;
  for (char c : s) {
    if (c < '0' || c > '7') throw Error("invalid mode \"" + s + "\"");
    m = m * 8 + uint32_t(c - '0');
  }
  if (m > 07777) throw Error("invalid mode \"" + s + "\"");
  return m;
}

// write_file_durable with the file handed to owner before it gets its final name.
void write_owned_durable(const fs::path& path, std::string_view contents,
                         const std::optional<RepoOwner>& owner) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    UniqueFd fd = open_or_throw(tmp, O_WRONLY | O_CREAT | O_TRUNC);
    write_all(fd.get(), as_bytes(contents), tmp);
    if (owner && ::fchown(fd.get(), owner->uid, owner->gid) != 0) {
      throw errno_error("could not change the owner of \"" + tmp.string() + "\"", errno);
    }
    fsync_fd(fd.get(), tmp);
  }
  rename_durable(tmp, path);
}

}  // namespace

std::optional<RepoOwner> repository_owner_for_writes(const Repository& repo) {
  struct stat st;
  if (::geteuid() != 0 || ::stat(repo.root().c_str(), &st) != 0 || st.st_uid == 0) {
    return std::nullopt;
  }
  return RepoOwner{st.st_uid, st.st_gid};
}

std::string_view to_string(EntryType t) {
  switch (t) {
    case EntryType::dir:
      return "dir";
    case EntryType::file:
      return "file";
    case EntryType::symlink:
      return "symlink";
  }
  return "unknown";
}

std::string format_mode(uint32_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", unsigned(mode & 07777));
  return buf;
}

void set_bytes_field(Json& j, const std::string& key, const std::string& value) {
  if (valid_utf8(value)) {
    j[key] = value;
  } else {
    j[key + "_hex"] = to_hex(value);
  }
}

std::string get_bytes_field(const Json& j, const std::string& key) {
  if (auto it = j.find(key); it != j.end()) return it->get<std::string>();
  if (auto it = j.find(key + "_hex"); it != j.end()) return from_hex(it->get<std::string>());
  throw Error("field \"" + key + "\" missing");
}

bool is_valid_snapshot_name(std::string_view name) {
  if (name.empty() || name.size() > 64 || name[0] == '.' || name[0] == '-') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

Json to_json(const SnapshotEntry& e) {
  Json j;
  set_bytes_field(j, "path", e.path);
  j["type"] = to_string(e.type);
  j["mode"] = format_mode(e.mode);
  j["uid"] = e.uid;
  j["gid"] = e.gid;
  if (!e.user.empty()) set_bytes_field(j, "user", e.user);
  if (!e.group.empty()) set_bytes_field(j, "group", e.group);
  j["mtime_ns"] = e.mtime_ns;
  if (e.type == EntryType::file) {
    j["size"] = e.size;
    j["sha256"] = e.sha256;
    Json chunks = Json::array();
    for (const auto& c : e.chunks) chunks.push_back(Json::array({c.sha256, c.bytes}));
    j["chunks"] = std::move(chunks);
    if (e.inconsistent) j["inconsistent"] = true;
  } else if (e.type == EntryType::symlink) {
    set_bytes_field(j, "target", e.link_target);
  }
  return j;
}

SnapshotEntry snapshot_entry_from_json(const Json& j) {
  SnapshotEntry e;
  e.path = get_bytes_field(j, "path");
  e.type = parse_type(j.at("type").get<std::string>());
  e.mode = parse_mode(j.at("mode").get<std::string>());
  e.uid = j.at("uid").get<uint32_t>();
  e.gid = j.at("gid").get<uint32_t>();
  if (j.contains("user") || j.contains("user_hex")) e.user = get_bytes_field(j, "user");
  if (j.contains("group") || j.contains("group_hex")) e.group = get_bytes_field(j, "group");
  e.mtime_ns = j.at("mtime_ns").get<int64_t>();
  if (e.type == EntryType::file) {
    e.size = j.at("size").get<uint64_t>();
    e.sha256 = j.at("sha256").get<std::string>();
    uint64_t sum = 0;
    for (const auto& c : j.at("chunks")) {
      ChunkRef r{c.at(0).get<std::string>(), c.at(1).get<uint64_t>()};
      if (r.sha256.size() != 64) throw Error("invalid chunk name \"" + r.sha256 + "\"");
      sum += r.bytes;
      e.chunks.push_back(std::move(r));
    }
    if (sum != e.size) throw Error("chunks of \"" + e.path + "\" do not add up to its size");
    e.inconsistent = j.value("inconsistent", false);
  } else if (e.type == EntryType::symlink) {
    e.link_target = get_bytes_field(j, "target");
  }
  return e;
}

Json to_json(const SnapshotInfo& s) {
  Json j;
  j["id"] = s.id;
  j["name"] = s.name;
  set_bytes_field(j, "source", s.source);
  j["host"] = s.host;
  j["status"] = "complete";
  j["start_time"] = format_iso8601_utc(s.start_time);
  j["time"] = format_iso8601_utc(s.time);
  if (!s.backup_id.empty()) j["backup"] = s.backup_id;
  j["excludes"] = s.excludes;
  j["files"] = s.files;
  j["dirs"] = s.dirs;
  j["symlinks"] = s.symlinks;
  j["bytes"] = s.bytes;
  j["objects"] = s.objects;
  j["new_objects"] = s.new_objects;
  j["stored_bytes"] = s.stored_bytes;
  j["referenced_bytes"] = s.referenced_bytes;
  j["inconsistent"] = Json::array();
  for (const auto& p : s.inconsistent) {
    Json item;
    set_bytes_field(item, "path", p);
    j["inconsistent"].push_back(std::move(item));
  }
  j["skipped"] = Json::array();
  for (const auto& k : s.skipped) {
    Json item;
    set_bytes_field(item, "path", k.path);
    item["reason"] = k.reason;
    j["skipped"].push_back(std::move(item));
  }
  j["entries"] = {
      {"file", s.entries_file}, {"count", s.entries_count}, {"sha256", s.entries_sha256}};
  return j;
}

SnapshotInfo snapshot_info_from_json(const Json& j) {
  SnapshotInfo s;
  s.id = j.at("id").get<std::string>();
  s.name = j.at("name").get<std::string>();
  s.source = get_bytes_field(j, "source");
  s.host = j.value("host", "");
  if (j.at("status").get<std::string>() != "complete") throw Error("status is not complete");
  s.start_time = time_field(j, "start_time");
  s.time = time_field(j, "time");
  s.backup_id = j.value("backup", "");
  s.excludes = j.value("excludes", std::vector<std::string>{});
  s.files = j.at("files").get<uint64_t>();
  s.dirs = j.at("dirs").get<uint64_t>();
  s.symlinks = j.at("symlinks").get<uint64_t>();
  s.bytes = j.at("bytes").get<uint64_t>();
  s.objects = j.at("objects").get<uint64_t>();
  s.new_objects = j.at("new_objects").get<uint64_t>();
  s.stored_bytes = j.at("stored_bytes").get<uint64_t>();
  s.referenced_bytes = j.value("referenced_bytes", uint64_t(0));
  for (const auto& item : j.value("inconsistent", Json::array())) {
    s.inconsistent.push_back(get_bytes_field(item, "path"));
  }
  for (const auto& item : j.value("skipped", Json::array())) {
    s.skipped.push_back({get_bytes_field(item, "path"), item.value("reason", "")});
  }
  const Json& e = j.at("entries");
  s.entries_file = e.at("file").get<std::string>();
  if (s.entries_file.find('/') != std::string::npos || s.entries_file.starts_with(".")) {
    throw Error("invalid entries file name \"" + s.entries_file + "\"");
  }
  s.entries_count = e.at("count").get<uint64_t>();
  s.entries_sha256 = e.at("sha256").get<std::string>();
  return s;
}

fs::path snapshot_dir(const Repository& repo, const std::string& id) {
  return repo.snapshots_dir() / id;
}

void save_snapshot_entries(const Repository& repo, SnapshotInfo& info,
                           const std::vector<SnapshotEntry>& entries,
                           const std::optional<RepoOwner>& owner) {
  std::string text;
  for (const auto& e : entries) {
    text += to_json(e).dump();
    text += '\n';
  }
  Lz4FrameEncoder encoder;
  const std::span<const std::byte> content = as_bytes(text);
  const size_t blocks =
      (content.size() + Lz4FrameEncoder::kBlockSize - 1) / Lz4FrameEncoder::kBlockSize;
  std::vector<std::byte> frame(Lz4FrameEncoder::kHeaderBytes +
                               blocks * Lz4FrameEncoder::max_block_bytes() +
                               Lz4FrameEncoder::kEndBytes);
  size_t pos = encoder.write_header(frame.data());
  for (size_t off = 0; off < content.size(); off += Lz4FrameEncoder::kBlockSize) {
    const size_t len = std::min(Lz4FrameEncoder::kBlockSize, content.size() - off);
    pos += encoder.write_block(content.subspan(off, len), frame.data() + pos);
  }
  pos += encoder.write_end(frame.data() + pos);
  const std::string_view stored(reinterpret_cast<const char*>(frame.data()), pos);
  write_owned_durable(snapshot_dir(repo, info.id) / info.entries_file, stored, owner);
  info.entries_sha256 = sha256_hex(stored);
  info.entries_count = entries.size();
}

void save_snapshot_info(const Repository& repo, const SnapshotInfo& info,
                        const std::optional<RepoOwner>& owner) {
  write_owned_durable(snapshot_dir(repo, info.id) / kInfoFile, to_json(info).dump(2) + "\n", owner);
}

std::vector<SnapshotInfo> load_snapshots(const Repository& repo,
                                         std::vector<std::string>* problems) {
  std::vector<SnapshotInfo> out;
  std::error_code ec;
  for (const auto& d : fs::directory_iterator(repo.snapshots_dir(), ec)) {
    if (!d.is_directory()) continue;
    const fs::path file = d.path() / kInfoFile;
    try {
      auto text = read_file_if_exists(file);
      if (!text) continue;
      SnapshotInfo s = snapshot_info_from_json(Json::parse(*text));
      if (s.id != d.path().filename().string()) throw Error("its id does not match its directory");
      out.push_back(std::move(s));
    } catch (const std::exception& e) {
      if (problems) {
        problems->push_back("snapshot file \"" + file.string() + "\" is damaged (" + e.what() +
                            "); the snapshot is left out");
        continue;
      }
      throw Error("snapshot file \"" + file.string() + "\" is damaged: " + e.what(),
                  "restore the file from a copy, or move the snapshot's directory aside");
    }
  }
  std::sort(out.begin(), out.end(), [](const SnapshotInfo& a, const SnapshotInfo& b) {
    if (a.time != b.time) return a.time < b.time;
    return a.id < b.id;
  });
  return out;
}

std::vector<SnapshotEntry> load_snapshot_entries(const Repository& repo, const SnapshotInfo& info) {
  const fs::path file = snapshot_dir(repo, info.id) / info.entries_file;
  const std::string stored = read_file(file);
  if (sha256_hex(stored) != info.entries_sha256) {
    throw Error("snapshot entries file \"" + file.string() + "\" is damaged (SHA-256 mismatch)",
                "run walvault verify on the repository; restore an older snapshot");
  }
  std::string text;
  const Lz4FrameScan scan = scan_lz4_frame(as_bytes(stored), [&](std::span<const std::byte> part) {
    text.append(reinterpret_cast<const char*>(part.data()), part.size());
  });
  if (!scan.complete) {
    throw Error("snapshot entries file \"" + file.string() + "\" is damaged (" + scan.problem +
                ")");
  }
  std::vector<SnapshotEntry> entries;
  size_t start = 0;
  try {
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      entries.push_back(snapshot_entry_from_json(Json::parse(text.substr(start, end - start))));
      start = end + 1;
    }
  } catch (const std::exception& e) {
    throw Error("snapshot entries file \"" + file.string() + "\" is damaged: " + e.what());
  }
  if (entries.size() != info.entries_count) {
    throw Error("snapshot entries file \"" + file.string() + "\" holds " +
                std::to_string(entries.size()) + " entries, snapshot.json says " +
                std::to_string(info.entries_count));
  }
  return entries;
}

std::optional<SnapshotInfo> newest_snapshot_at_or_before(const std::vector<SnapshotInfo>& all,
                                                         const std::string& name,
                                                         std::optional<Timestamp> target) {
  std::optional<SnapshotInfo> best;
  for (const auto& s : all) {
    if (s.name != name) continue;
    if (target && s.time > *target) continue;
    if (!best || s.time > best->time || (s.time == best->time && s.id > best->id)) best = s;
  }
  return best;
}

}  // namespace walvault
