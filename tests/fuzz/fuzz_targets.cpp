// The fuzz target bodies (see fuzz_targets.h for what each one feeds and expects).

#include "tests/fuzz/fuzz_targets.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <span>
#include <sstream>
#include <string>

#include "basebackup/backup_stream.h"
#include "core/backup_info.h"
#include "core/backup_manifest.h"
#include "core/error.h"
#include "core/json.h"
#include "core/lsn.h"
#include "core/lz4_frame.h"
#include "core/repository.h"
#include "core/tar.h"
#include "core/timeline_history.h"
#include "core/timestamp.h"
#include "pitr/recovery_target.h"
#include "pitr/wal_records.h"
#include "service/service_config.h"
#include "snapshot/snapshot_manifest.h"
#include "walarchiver/replication_source.h"

namespace walvault::fuzz {
namespace {

// A property the parser promised does not hold: a finding like a crash.
void require(bool ok) {
  if (!ok) std::abort();
}

std::span<const std::byte> bytes_of(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const std::byte*>(data), size};
}

std::string_view text_of(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// Feeds bytes in chunks of chunk_bytes (0: all at once).
template <typename Feed>
void feed_in_chunks(std::span<const std::byte> bytes, size_t chunk_bytes, Feed&& feed) {
  if (chunk_bytes == 0) chunk_bytes = bytes.size();
  for (size_t at = 0; at < bytes.size(); at += chunk_bytes) {
    feed(bytes.subspan(at, std::min(chunk_bytes, bytes.size() - at)));
  }
}

// Consumes tar members, checking what the reader promises a sink.
class CheckingTarSink : public TarSink {
 public:
  void begin_entry(const TarEntry& entry) override {
    require(!in_entry_);
    require(entry.path.find('\0') == std::string::npos && !entry.path.starts_with('/'));
    require(entry.type == TarEntryType::file || entry.size == 0);
    in_entry_ = true;
    left_ = entry.size;
  }
  void entry_data(std::span<const std::byte> data) override {
    require(in_entry_ && data.size() <= left_);
    left_ -= data.size();
  }
  void end_entry() override {
    require(in_entry_ && left_ == 0);
    in_entry_ = false;
  }

 private:
  bool in_entry_ = false;
  uint64_t left_ = 0;
};

class FuzzBackupSink : public BackupStreamSink {
 public:
  void begin_archive(const std::string& name, const std::string&) override {
    (void)tablespace_oid_of_archive(name);
    tar_ = std::make_unique<TarReader>(tar_sink_, name);
  }
  void archive_data(std::span<const std::byte> data) override { tar_->feed(data); }
  void end_archive() override { tar_->finish(); }
  void manifest_data(std::span<const std::byte> data) override {
    manifest_.append(reinterpret_cast<const char*>(data.data()), data.size());
  }
  const std::string& manifest() const { return manifest_; }

 private:
  CheckingTarSink tar_sink_;
  std::unique_ptr<TarReader> tar_;
  std::string manifest_;
};

}  // namespace

int replication_message(const uint8_t* data, size_t size) {
  const auto payload = bytes_of(data, size);
  try {
    const StreamMessage m =
        parse_stream_message(std::span<const char>(reinterpret_cast<const char*>(data), size));
    if (m.kind == StreamMessage::Kind::xlog_data) {
      require(m.data.empty() || (m.data.data() >= payload.data() &&
                                 m.data.data() + m.data.size() == payload.data() + payload.size()));
    }
  } catch (const Error&) {
  }
  return 0;
}

int base_backup_stream(const uint8_t* data, size_t size) {
  FuzzBackupSink sink;
  BackupStreamDecoder decoder(sink);
  try {
    size_t at = 0;
    while (at + 2 <= size) {
      const size_t n = std::min<size_t>(data[at] | (size_t{data[at + 1]} << 8), size - at - 2);
      decoder.on_message(bytes_of(data + at + 2, n));
      at += 2 + n;
    }
    decoder.finish();
    if (decoder.saw_manifest()) (void)parse_backup_manifest(sink.manifest());
  } catch (const Error&) {
  }
  return 0;
}

int tar_archive(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  CheckingTarSink sink;
  TarReader reader(sink, "fuzz.tar");
  try {
    feed_in_chunks(bytes_of(data + 1, size - 1), data[0], [&](auto chunk) { reader.feed(chunk); });
    reader.finish();
  } catch (const Error&) {
  }
  return 0;
}

int timeline_history(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  const TimelineId tli(be32(data));
  const uint32_t probe = be32(data + 4);
  const std::string_view text = text_of(data + 8, size - 8);
  try {
    (void)parse_timeline_history(text, tli, "fuzz.history");
    const auto switches = check_timeline_history_file(text, tli, "fuzz.history");
    const TimelineHistory history(tli, switches);
    require(history.target() == tli);
    (void)history.timeline_of(Lsn(uint64_t{probe} << 20));
    (void)history.timeline_of_segment(SegmentNo(probe), 16 << 20);
    (void)history.contains(TimelineId(probe & 0xff));
    (void)history.parent_of(TimelineId(probe & 0xff));
    (void)history.span_of(TimelineId(probe & 0xff));
  } catch (const Error&) {
  }
  return 0;
}

int backup_manifest(const uint8_t* data, size_t size) {
  try {
    (void)parse_backup_manifest(text_of(data, size));
  } catch (const Error&) {
  }
  return 0;
}

int json_metadata(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string_view text = text_of(data + 1, size - 1);
  try {
    switch (data[0] % 4) {
      case 0: {
        const Json j = Json::parse(text);
        const BackupInfo b = backup_info_from_json(j);
        (void)backup_info_from_json(to_json(b));  // what we read, we can write and read back
        break;
      }
      case 1:
        (void)parse_repo_identity(text, "walvault.json");
        break;
      case 2: {
        const SnapshotInfo s = snapshot_info_from_json(Json::parse(text));
        (void)snapshot_info_from_json(to_json(s));
        break;
      }
      case 3: {
        const SnapshotEntry e = snapshot_entry_from_json(Json::parse(text));
        (void)snapshot_entry_from_json(to_json(e));
        break;
      }
    }
  } catch (const Error&) {
  } catch (const Json::exception&) {
  }
  return 0;
}

int target_spec(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string_view text = text_of(data + 1, size - 1);
  try {
    switch (data[0] % 6) {
      case 0:
        (void)parse_target_time(text);
        break;
      case 1:
        if (auto lsn = Lsn::parse(text)) require(Lsn::parse(lsn->str()) == lsn);
        break;
      case 2:
        if (auto n = parse_u32(text)) require(parse_u32(std::to_string(*n)) == n);
        break;
      case 3:
        (void)parse_timeline_choice(text);
        break;
      case 4:
        if (auto a = parse_target_action(text)) require(parse_target_action(to_string(*a)) == a);
        break;
      case 5: {
        std::string why;
        if (auto t = parse_timestamp(text, &why); t && t->had_zone) {
          const auto again = parse_timestamp(format_iso8601_utc(t->time));
          require(again && again->time == t->time);
        }
        break;
      }
    }
  } catch (const Error&) {
  }
  return 0;
}

int wal_file_name(const uint8_t* data, size_t size) {
  const std::string_view name = text_of(data, size);
  for (uint64_t segment_size : {uint64_t{1} << 20, uint64_t{16} << 20, uint64_t{1} << 30}) {
    if (auto w = parse_wal_file_name(name, segment_size)) {
      const auto again =
          parse_wal_file_name(wal_file_name(w->timeline, w->segno, segment_size), segment_size);
      require(again && again->timeline == w->timeline && again->segno == w->segno);
    }
  }
  if (auto tli = parse_history_file_name(name)) {
    require(parse_history_file_name(history_file_name(*tli)) == tli);
  }
  return 0;
}

int lz4_frame(const uint8_t* data, size_t size) {
  const auto frame = bytes_of(data, size);
  uint64_t scanned = 0;
  const Lz4FrameScan scan =
      scan_lz4_frame(frame, [&](std::span<const std::byte> c) { scanned += c.size(); });
  require(scan.valid_bytes <= size && scan.content_bytes == scanned);
  uint64_t decoded = 0;
  try {
    Lz4FrameDecoder decoder("fuzz.lz4", [&](std::span<const std::byte> c) { decoded += c.size(); });
    feed_in_chunks(frame, 4093, [&](auto chunk) { decoder.feed(chunk); });
    decoder.finish();
    require(decoded == decoder.content_bytes());
  } catch (const Error&) {
  }
  return 0;
}

int wal_records(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const uint8_t flags = data[0];
  constexpr uint64_t kSegmentSizes[] = {uint64_t{16} << 20, uint64_t{1} << 20, uint64_t{64} << 20,
                                        uint64_t{1} << 30};
  const uint64_t kSegmentBytes = kSegmentSizes[(flags >> 2) & 3];
  const int pg_major = 13 + (flags & 3);
  size_t at = 1;
  WalPageExpectations expect;
  if (flags & 0x10) {
    if (size < at + 9 + 2) return 0;
    for (int i = 0; i < 8; ++i)
      expect.system_identifier = (expect.system_identifier << 8) | data[at + i];
    expect.timeline = TimelineId(data[at + 8]);
    at += 9;
  }
  const SegmentNo segno(data[at]);
  const size_t chunk_bytes = data[at + 1];
  at += 2;
  WalRecordScanner scanner(kSegmentBytes, pg_major,
                           [](const WalEvent& e) { require(e.end_lsn > e.lsn); });
  if (flags & 0x10) scanner.expect(expect);
  Lsn pos = segment_start(segno, kSegmentBytes);
  feed_in_chunks(bytes_of(data + at, size - at), chunk_bytes, [&](auto chunk) {
    if (scanner.stop() != WalScanStop::none) return;  // a stopped scanner reads no further
    scanner.feed(pos, chunk);
    pos = pos + chunk.size();
  });
  return 0;
}

int service_config(const uint8_t* data, size_t size) {
  // The parser reads a file: one per process, rewritten for every input.
  static const fs::path path =
      fs::temp_directory_path() / ("walvault-fuzz-config-" + std::to_string(::getpid()));
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
  }
  std::ostringstream help;
  try {
    if (auto config = load_service_config({"--config", path.string()}, help)) {
      (void)describe(*config);
    }
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace walvault::fuzz
