#include "core/backup_manifest.h"

#include "core/error.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/json_integer.h"

namespace walvault {
namespace {

constexpr std::string_view kChecksumKey = "\"Manifest-Checksum\"";

std::string hex_decode(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) throw Error("an Encoded-Path is not hexadecimal");
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) throw Error("an Encoded-Path is not hexadecimal");
    out.push_back(char(hi * 16 + lo));
  }
  return out;
}

Lsn lsn_of(const Json& j, const char* key) {
  auto lsn = Lsn::parse(j.at(key).get<std::string>());
  if (!lsn) throw Error(std::string("a WAL range has an invalid ") + key);
  return *lsn;
}

}  // namespace

BackupManifest parse_backup_manifest(std::string_view text) {
  // The checksum covers everything up to and including the newline before its own line.
  const size_t key = text.rfind(kChecksumKey);
  if (key == std::string_view::npos || key == 0 || text[key - 1] != '\n') {
    throw Error("it has no Manifest-Checksum line");
  }
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::exception& e) {
    std::string why = e.what();
    if (auto pos = why.find("] "); why.starts_with("[json.") && pos != std::string::npos) {
      why = why.substr(pos + 2);
    }
    throw Error("it is not valid JSON (" + why + ")");
  }
  BackupManifest m;
  try {
    if (!j.is_object()) throw Error("it is not a JSON object");
    m.version = json_integer<int>(j.at("PostgreSQL-Backup-Manifest-Version"),
                                  "PostgreSQL-Backup-Manifest-Version");
    if (m.version != 1 && m.version != 2) {
      throw Error("its version " + std::to_string(m.version) + " is not 1 or 2");
    }
    if (m.version >= 2)
      m.system_identifier = json_integer<uint64_t>(j.at("System-Identifier"), "System-Identifier");
    for (const auto& f : j.at("Files")) {
      ManifestFile file;
      if (f.contains("Path")) {
        file.path = f.at("Path").get<std::string>();
      } else {
        file.path = hex_decode(f.at("Encoded-Path").get<std::string>());
      }
      file.size = json_integer<uint64_t>(f.at("Size"), "Size");
      f.at("Last-Modified").get<std::string>();
      file.checksum_algorithm = f.value("Checksum-Algorithm", std::string("NONE"));
      if (file.checksum_algorithm != "NONE") file.checksum = f.at("Checksum").get<std::string>();
      m.files.push_back(std::move(file));
    }
    for (const auto& r : j.at("WAL-Ranges")) {
      m.wal_ranges.push_back({TimelineId(json_integer<uint32_t>(r.at("Timeline"), "Timeline")),
                              lsn_of(r, "Start-LSN"), lsn_of(r, "End-LSN")});
      if (m.wal_ranges.back().end < m.wal_ranges.back().start) {
        throw Error("a WAL range ends before it starts");
      }
    }
    const std::string want = j.at("Manifest-Checksum").get<std::string>();
    if (sha256_hex(text.substr(0, key)) != want)
      throw Error("its Manifest-Checksum does not match");
  } catch (const Json::exception& e) {
    std::string why = e.what();
    if (auto pos = why.find("] "); why.starts_with("[json.") && pos != std::string::npos) {
      why = why.substr(pos + 2);
    }
    throw Error("it is malformed (" + why + ")");
  } catch (const std::invalid_argument& e) {
    throw Error(std::string("it is malformed (") + e.what() + ")");
  }
  return m;
}

}  // namespace walvault
