#include "basebackup/backup_stream.h"

#include <cstring>

#include "core/error.h"
#include "core/pg_versions.h"

namespace walvault {
namespace {

constexpr const char* kProtocolHint =
    "the server sent a base backup stream walvault does not understand; report a bug with "
    "the server's version";

std::string sql_literal(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

// Reads a NUL-terminated string at pos; throws when there is none.
std::string take_cstring(std::span<const std::byte> msg, size_t& pos) {
  const char* begin = reinterpret_cast<const char*>(msg.data()) + pos;
  const void* nul = std::memchr(begin, 0, msg.size() - pos);
  if (!nul) throw Error("malformed base backup message: unterminated string", kProtocolHint);
  std::string s(begin, static_cast<const char*>(nul));
  pos += s.size() + 1;
  return s;
}

}  // namespace

std::string base_backup_command(const BaseBackupOptions& o, int server_major) {
  if (!has_new_base_backup_protocol(server_major)) {
    // The same request in PostgreSQL 14's grammar (repl_gram.y): FAST = CHECKPOINT 'fast',
    // NOWAIT = WAIT false; spread is the default there.
    std::string cmd = "BASE_BACKUP LABEL " + sql_literal(o.label);
    if (o.progress) cmd += " PROGRESS";
    if (o.checkpoint == CheckpointMode::fast) cmd += " FAST";
    cmd += " NOWAIT";
    if (o.max_rate_kbps) cmd += " MAX_RATE " + std::to_string(o.max_rate_kbps);
    cmd += " MANIFEST 'yes' MANIFEST_CHECKSUMS 'CRC32C'";
    return cmd;
  }
  std::string cmd = "BASE_BACKUP (LABEL " + sql_literal(o.label);
  if (o.progress) cmd += ", PROGRESS";
  cmd += o.checkpoint == CheckpointMode::fast ? ", CHECKPOINT 'fast'" : ", CHECKPOINT 'spread'";
  // WAIT false: with the default (true) pg_backup_stop waits until archive_command has
  // archived the last WAL segment the backup needs. walvault does not use archive_command:
  // it streams WAL itself and marks the backup complete only once that WAL is in the
  // repository (run_backup checks it). Waiting would hang forever on a server whose
  // archive_command is failing, and only print a warning where archiving is off.
  cmd += ", WAIT false";
  if (o.max_rate_kbps) cmd += ", MAX_RATE " + std::to_string(o.max_rate_kbps);
  // No WAL option: the backup's WAL comes through the repository's WAL archive, not the tar.
  // No TABLESPACE_MAP: base.tar then carries the pg_tblspc/<oid> symlinks, which the
  // extraction points at the chosen tablespace directories.
  cmd += ", MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C')";
  return cmd;
}

void BackupStreamDecoder::on_message(std::span<const std::byte> msg) {
  if (msg.empty()) throw Error("malformed base backup message: empty CopyData", kProtocolHint);
  if (state_ == State::finished) throw Error("base backup message after the end of the stream");
  const char type = char(std::to_integer<uint8_t>(msg[0]));
  switch (type) {
    case 'n': {
      size_t pos = 1;
      std::string name = take_cstring(msg, pos);
      std::string location = take_cstring(msg, pos);
      if (pos != msg.size()) throw Error("malformed base backup message 'n'", kProtocolHint);
      begin_archive(name, location);
      return;
    }
    case 'd':
      data(msg.subspan(1));
      return;
    case 'p': {
      if (msg.size() != 9) throw Error("malformed base backup message 'p'", kProtocolHint);
      uint64_t v = 0;
      for (size_t i = 1; i < 9; ++i) v = (v << 8) | std::to_integer<uint8_t>(msg[i]);
      sink_.progress(v);
      return;
    }
    case 'm':
      if (msg.size() != 1) throw Error("malformed base backup message 'm'", kProtocolHint);
      begin_manifest();
      return;
    default:
      throw Error(std::string("unknown base backup message type '") +
                      (type >= 32 && type < 127 ? type : '?') + "'",
                  kProtocolHint);
  }
}

void BackupStreamDecoder::begin_archive(const std::string& name, const std::string& location) {
  if (state_ == State::finished) throw Error("base backup message after the end of the stream");
  if (state_ == State::manifest) {
    throw Error("base backup stream: a new archive after the manifest", kProtocolHint);
  }
  if (state_ == State::archive) sink_.end_archive();
  tablespace_oid_of_archive(name);  // validates the name
  for (const auto& seen : archives_) {
    if (seen == name) throw Error("base backup stream: archive \"" + name + "\" sent twice");
  }
  archives_.push_back(name);
  state_ = State::archive;
  sink_.begin_archive(name, location);
}

void BackupStreamDecoder::data(std::span<const std::byte> bytes) {
  if (state_ == State::archive) {
    sink_.archive_data(bytes);
  } else if (state_ == State::manifest) {
    sink_.manifest_data(bytes);
  } else if (state_ == State::finished) {
    throw Error("base backup message after the end of the stream");
  } else {
    throw Error("base backup stream: data before the first archive", kProtocolHint);
  }
}

void BackupStreamDecoder::begin_manifest() {
  if (state_ == State::finished) throw Error("base backup message after the end of the stream");
  if (state_ == State::manifest) throw Error("base backup stream: second manifest");
  if (state_ == State::archive) sink_.end_archive();
  state_ = State::manifest;
  saw_manifest_ = true;
}

void BackupStreamDecoder::finish() {
  if (state_ == State::archive) sink_.end_archive();
  state_ = State::finished;
}

std::optional<uint32_t> tablespace_oid_of_archive(const std::string& name) {
  if (name == "base.tar") return std::nullopt;
  if (name.size() > 4 && name.size() <= 14 && name.ends_with(".tar")) {
    uint64_t v = 0;
    bool digits = true;
    for (size_t i = 0; i + 4 < name.size(); ++i) {
      if (name[i] < '0' || name[i] > '9')
        digits = false;
      else
        v = v * 10 + uint64_t(name[i] - '0');
    }
    if (digits && v > 0 && v <= UINT32_MAX) return uint32_t(v);
  }
  throw Error("the server sent an archive named \"" + name +
                  "\"; walvault expects base.tar and <tablespace oid>.tar",
              "server-side compression or another backup target is not supported");
}

}  // namespace walvault
