#include "pitr/wal_check.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <vector>

#include "core/error.h"
#include "core/fs.h"
#include "core/lz4_frame.h"

namespace walvault {
namespace {

constexpr size_t kReadBytes = 1 << 20;

// Raised inside a decode callback to stop at the first problem.
struct Stop {
  std::string problem;
};

UniqueFd open_wal(const fs::path& path, bool& vanished) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      vanished = true;
      return UniqueFd();
    }
    throw errno_error("could not open \"" + path.string() + "\"", errno);
  }
  return UniqueFd(fd);
}

// Judges what the record scan found in a file of `content` WAL bytes.
void judge_scan(const WalRecordScanner& scanner, bool partial, WalFileVerdict& v) {
  v.system_identifier = scanner.seen_system_identifier();
  if (scanner.stop() == WalScanStop::invalid) {
    v.kind = WalFileVerdict::Kind::damaged;
    v.problem = scanner.problem();
    v.foreign_system = scanner.problem().find("belongs to database system") != std::string::npos;
  } else if (scanner.stop() == WalScanStop::end_of_wal && !partial) {
    // A complete segment is all WAL (or switch padding): zeros where records should be are
    // what a recovering server takes for the end of WAL, ending recovery early.
    v.kind = WalFileVerdict::Kind::damaged;
    v.problem = "records end early: " + scanner.problem();
  }
}

}  // namespace

WalIdentity wal_identity(const RepoIdentity& identity) {
  WalIdentity w;
  w.segment_size = identity.wal_segment_size;
  w.pg_major = identity.pg_version_num / 10000;
  const std::string& s = identity.system_identifier;
  uint64_t sysid = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), sysid);
  if (ec == std::errc() && ptr == s.data() + s.size()) w.system_identifier = sysid;
  return w;
}

WalFileChecker::WalFileChecker(WalIdentity identity, TimelineId timeline,
                               std::vector<TimelineId> ancestors)
    : identity_(identity) {
  expect_.system_identifier = identity.system_identifier;
  expect_.timeline = timeline;
  expect_.ancestors = std::move(ancestors);
}

WalFileChecker::~WalFileChecker() = default;

std::unique_ptr<WalRecordScanner> WalFileChecker::new_scanner() const {
  auto s = std::make_unique<WalRecordScanner>(identity_.segment_size, identity_.pg_major, nullptr);
  s->expect(expect_);
  return s;
}

void WalFileChecker::prime(const WalFileEntry& file) {
  if (file.partial) return;
  scanner_.reset();
  next_.reset();
  const WalFileVerdict v = run(file);
  if (v.kind != WalFileVerdict::Kind::ok) {
    scanner_.reset();
    next_.reset();
  }
}

WalFileVerdict WalFileChecker::check(const WalFileEntry& file) {
  return run(file);
}

WalFileVerdict WalFileChecker::run(const WalFileEntry& file) {
  const bool continues = scanner_ && next_ && *next_ == file.segno &&
                         scanner_->stop() == WalScanStop::none && !file.partial;
  if (!continues) scanner_ = new_scanner();
  next_.reset();
  WalFileVerdict v;
  try {
    v = file.partial ? read_partial(file, *scanner_) : read_complete(file, *scanner_);
  } catch (const Error& e) {
    v.kind = WalFileVerdict::Kind::damaged;
    v.problem = e.what();
  }
  if (v.kind == WalFileVerdict::Kind::ok && !file.partial) {
    next_ = file.segno.next();
  } else {
    scanner_.reset();
  }
  return v;
}

WalFileVerdict WalFileChecker::read_complete(const WalFileEntry& file, WalRecordScanner& scanner) {
  WalFileVerdict v;
  bool vanished = false;
  UniqueFd fd = open_wal(file.path, vanished);
  if (vanished) {
    v.kind = WalFileVerdict::Kind::vanished;
    return v;
  }
  const uint64_t seg = identity_.segment_size;
  const Lsn start = segment_start(file.segno, seg);
  auto on_content = [&](std::span<const std::byte> d) {
    if (v.content_bytes + d.size() > seg) {
      throw Stop{"holds more than one WAL segment (" + std::to_string(seg) + " bytes)"};
    }
    scanner.feed(start + v.content_bytes, d);
    v.content_bytes += d.size();
  };
  std::optional<Lz4FrameDecoder> decoder;
  if (file.compression == Compression::lz4) decoder.emplace(file.path.string(), on_content);
  std::vector<std::byte> buf(kReadBytes);
  try {
    for (;;) {
      const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        throw errno_error("could not read \"" + file.path.string() + "\"", errno);
      }
      if (n == 0) break;
      v.stored_bytes += uint64_t(n);
      const std::span<const std::byte> chunk(buf.data(), size_t(n));
      if (decoder) {
        decoder->feed(chunk);
      } else {
        on_content(chunk);
      }
    }
    if (decoder) decoder->finish();
  } catch (const Stop& s) {
    v.kind = WalFileVerdict::Kind::damaged;
    v.problem = s.problem;
    return v;
  } catch (const Lz4FrameError& e) {
    v.kind = WalFileVerdict::Kind::damaged;
    v.problem = e.reason();
    if (v.stored_bytes == 0) v.problem = "empty file";
    return v;
  }
  if (v.content_bytes != seg) {
    v.kind = WalFileVerdict::Kind::damaged;
    v.problem = v.content_bytes == 0 && v.stored_bytes == 0
                    ? "empty file"
                    : "holds " + std::to_string(v.content_bytes) +
                          " bytes of WAL, not a whole segment of " + std::to_string(seg);
    return v;
  }
  judge_scan(scanner, false, v);
  return v;
}

WalFileVerdict WalFileChecker::read_partial(const WalFileEntry& file, WalRecordScanner& scanner) {
  WalFileVerdict v;
  bool vanished = false;
  UniqueFd fd = open_wal(file.path, vanished);
  if (vanished) {
    v.kind = WalFileVerdict::Kind::vanished;
    return v;
  }
  const uint64_t seg = identity_.segment_size;
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    throw errno_error("could not stat \"" + file.path.string() + "\"", errno);
  }
  // An lz4 frame of one segment is barely larger than the segment (raw blocks carry 8 bytes
  // per 256 KiB): anything much larger is not a .partial of ours, and is not read into memory.
  if (uint64_t(st.st_size) > seg + seg / 1024 + 4096) {
    v.kind = WalFileVerdict::Kind::damaged;
    v.problem = "larger (" + std::to_string(st.st_size) + " bytes) than any segment's file";
    return v;
  }
  const std::string bytes = read_file(file.path);
  v.stored_bytes = bytes.size();
  const Lsn start = segment_start(file.segno, seg);
  auto on_content = [&](std::span<const std::byte> d) {
    if (v.content_bytes + d.size() > seg) {
      throw Stop{"holds more than one WAL segment (" + std::to_string(seg) + " bytes)"};
    }
    scanner.feed(start + v.content_bytes, d);
    v.content_bytes += d.size();
  };
  try {
    if (file.compression == Compression::none) {
      on_content(as_bytes(bytes));
    } else {
      const Lz4FrameScan scan = scan_lz4_frame(as_bytes(bytes), on_content);
      if (scan.damaged) {
        v.kind = WalFileVerdict::Kind::damaged;
        v.problem = scan.problem + " at byte " + std::to_string(scan.valid_bytes) + ", with " +
                    std::to_string(bytes.size() - scan.valid_bytes) +
                    " bytes after it: WAL after byte " + std::to_string(scan.content_bytes) +
                    " of the segment is lost";
        return v;
      }
      if (!scan.problem.empty()) {
        v.kind = WalFileVerdict::Kind::torn_tail;
        v.problem = "torn tail (" + scan.problem +
                    "): " + std::to_string(bytes.size() - scan.valid_bytes) +
                    " bytes after the last whole block are not WAL; its " +
                    std::to_string(scan.content_bytes) +
                    " bytes before them are (the archiver cuts the tail when it starts)";
      }
    }
  } catch (const Stop& s) {
    v.kind = WalFileVerdict::Kind::damaged;
    v.problem = s.problem;
    return v;
  }
  const WalFileVerdict::Kind before = v.kind;
  judge_scan(scanner, true, v);
  if (v.kind == WalFileVerdict::Kind::damaged && before == WalFileVerdict::Kind::torn_tail) {
    v.problem += " (and the file has a torn tail)";
  }
  return v;
}

}  // namespace walvault
