// walvault verify over repositories built from the real WAL fixture (tests/fixtures/wal: two
// 1 MB segments of timeline 1) plus a small synthetic backup: an intact repository is clean,
// and each kind of damage is named with its file; the WAL checker and the lz4 frame scanner's
// torn-tail / damage distinction on their own.

#include "pitr/repo_verify.h"

#include <gtest/gtest.h>

#include <cstring>

#include "core/backup_info.h"
#include "core/backup_manifest.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/lz4_frame.h"
#include "core/tar.h"
#include "pitr/wal_check.h"

namespace walvault {
namespace {

const fs::path kFixtureDir = fs::path(WALVAULT_SOURCE_DIR) / "tests/fixtures/wal";
constexpr uint64_t kSeg = 1 << 20;
const std::string kSeg7 = "000000010000000000000007";
const std::string kSeg8 = "000000010000000000000008";

std::vector<std::byte> decoded(const fs::path& lz4) {
  std::vector<std::byte> out;
  decode_lz4_file(lz4,
                  [&](std::span<const std::byte> d) { out.insert(out.end(), d.begin(), d.end()); });
  return out;
}

uint64_t fixture_sysid() {
  const auto seg = decoded(kFixtureDir / (kSeg7 + ".lz4"));
  uint64_t v;
  std::memcpy(&v, seg.data() + 24, 8);
  return v;
}

std::string frame_of(std::span<const std::byte> content, bool finish = true) {
  Lz4FrameEncoder enc;
  std::vector<std::byte> out(Lz4FrameEncoder::kHeaderBytes);
  enc.write_header(out.data());
  std::vector<std::byte> block(Lz4FrameEncoder::max_block_bytes());
  for (size_t pos = 0; pos < content.size(); pos += Lz4FrameEncoder::kBlockSize) {
    const size_t n = std::min(Lz4FrameEncoder::kBlockSize, content.size() - pos);
    const size_t w = enc.write_block(content.subspan(pos, n), block.data());
    out.insert(out.end(), block.begin(), block.begin() + long(w));
  }
  if (finish) {
    std::byte end[Lz4FrameEncoder::kEndBytes];
    enc.write_end(end);
    out.insert(out.end(), end, end + sizeof end);
  }
  return std::string(reinterpret_cast<const char*>(out.data()), out.size());
}

void flip_byte(const fs::path& p, uint64_t offset) {
  std::string s = read_file(p);
  ASSERT_LT(offset, s.size());
  s[offset] = char(255 - static_cast<unsigned char>(s[offset]));
  write_file_durable(p, s);
}

// A manifest as PostgreSQL writes it, with its own checksum.
std::string manifest_text(const std::string& start, const std::string& end) {
  std::string m =
      "{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n"
      "\"Files\": [\n"
      "{ \"Path\": \"PG_VERSION\", \"Size\": 3, \"Last-Modified\": \"2026-12-03 14:05:00 GMT\", "
      "\"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \"6e2fa1c4\" }\n"
      "],\n"
      "\"WAL-Ranges\": [\n"
      "{ \"Timeline\": 1, \"Start-LSN\": \"" +
      start + "\", \"End-LSN\": \"" + end +
      "\" }\n"
      "],\n";
  return m + "\"Manifest-Checksum\": \"" + sha256_hex(m) + "\"}\n";
}

class VerifyRepo {
 public:
  VerifyRepo() {
    std::string tmpl = (fs::temp_directory_path() / "walvault-verify-test-XXXXXX").string();
    root_ = ::mkdtemp(tmpl.data());
    write_identity(std::to_string(fixture_sysid()));
    fs::create_directories(root_ / "wal/00000001");
    fs::create_directories(root_ / "backups");
    fs::create_directories(root_ / "lock");
    for (const auto& s : {kSeg7, kSeg8}) {
      fs::copy_file(kFixtureDir / (s + ".lz4"), wal(s + ".lz4"));
    }
  }
  ~VerifyRepo() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  void write_identity(const std::string& sysid) {
    write_file_durable(root_ / "walvault.json",
                       "{\"format_version\":1,\"system_identifier\":\"" + sysid +
                           "\",\"pg_version_num\":150018,\"wal_segment_size\":1048576}\n");
  }
  const fs::path& root() const { return root_; }
  fs::path wal(const std::string& name) const { return root_ / "wal/00000001" / name; }
  fs::path backup(const std::string& file) const { return root_ / "backups/B1" / file; }

  // A complete backup whose WAL (0/700028 .. 0/800100) lies in segments 7 and 8.
  void add_backup() {
    std::string tar;
    TarEntry e;
    e.path = "PG_VERSION";
    e.mode = 0600;
    e.size = 3;
    tar += tar_member_header(e) + "15\n" + std::string(tar_padding_bytes(3), '\0');
    tar += tar_end_of_archive();
    const std::string base = frame_of(as_bytes(tar));
    const std::string manifest = manifest_text("0/700028", "0/800100");
    fs::create_directories(root_ / "backups/B1");
    write_file_durable(backup("base.tar.lz4"), base);
    write_file_durable(backup("backup_manifest"), manifest);
    BackupInfo b;
    b.id = "B1";
    b.status = BackupStatus::complete;
    b.timeline = b.stop_timeline = TimelineId(1);
    b.start_lsn = *Lsn::parse("0/700028");
    b.stop_lsn = *Lsn::parse("0/800100");
    b.pg_version_num = 150018;
    b.system_identifier = std::to_string(fixture_sysid());
    b.files.push_back({"base.tar.lz4", tar.size(), base.size(), sha256_hex(base)});
    b.files.push_back({"backup_manifest", manifest.size(), manifest.size(), sha256_hex(manifest)});
    write_file_durable(backup("backup.json"), to_json(b).dump(2));
  }

 private:
  fs::path root_;
};

// The damaged lines of a report, as "<path>: <problem>".
std::vector<std::string> damage(const RepoVerifyReport& r) {
  std::vector<std::string> out;
  for (const auto& f : r.findings) {
    if (f.severity == VerifyFinding::Severity::damaged) out.push_back(f.line());
  }
  return out;
}

bool names(const RepoVerifyReport& r, const fs::path& path, const std::string& what) {
  for (const auto& f : r.findings) {
    if (f.severity == VerifyFinding::Severity::damaged && f.path == path.string() &&
        f.problem.find(what) != std::string::npos) {
      return true;
    }
  }
  return false;
}

std::string dump(const RepoVerifyReport& r) {
  return r.to_text();
}

TEST(RepoVerify, IntactRepositoryIsClean) {
  VerifyRepo repo;
  repo.add_backup();
  const RepoVerifyReport r = verify_repository(repo.root());
  EXPECT_TRUE(r.ok()) << dump(r);
  EXPECT_EQ(r.warnings(), 0u) << dump(r);
  EXPECT_EQ(r.wal_segments, 2u);
  EXPECT_EQ(r.wal_bytes, 2 * kSeg);
  EXPECT_EQ(r.backups, 1u);
  EXPECT_EQ(r.backup_files, 2u);
  EXPECT_FALSE(r.identity_from_wal);
  const Json j = r.to_json();
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["checked"]["wal_segments"], 2);
  EXPECT_TRUE(j["damaged"].empty());
}

TEST(RepoVerify, SingleThreadedAndParallelAgree) {
  VerifyRepo repo;
  repo.add_backup();
  flip_byte(repo.wal(kSeg8 + ".lz4"), 5000);
  const auto one = damage(verify_repository(repo.root(), {1}));
  const auto two = damage(verify_repository(repo.root(), {2}));
  EXPECT_EQ(one, two);
  EXPECT_FALSE(one.empty());
}

TEST(RepoVerify, BitFlippedSegmentIsNamedAndSoIsTheBackupThatNeedsIt) {
  VerifyRepo repo;
  repo.add_backup();
  const fs::path seg = repo.wal(kSeg7 + ".lz4");
  flip_byte(seg, fs::file_size(seg) / 2);
  const RepoVerifyReport r = verify_repository(repo.root());
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(names(r, seg, "checksum")) << dump(r);
  EXPECT_TRUE(names(r, repo.root() / "backups/B1", "is damaged: " + seg.string())) << dump(r);
  EXPECT_EQ(r.damaged(), 2u) << dump(r);
}

TEST(RepoVerify, TruncatedAndEmptySegments) {
  VerifyRepo repo;
  const fs::path seg7 = repo.wal(kSeg7 + ".lz4");
  const fs::path seg8 = repo.wal(kSeg8 + ".lz4");
  fs::resize_file(seg7, fs::file_size(seg7) / 3);
  fs::resize_file(seg8, 0);
  const RepoVerifyReport r = verify_repository(repo.root());
  EXPECT_TRUE(names(r, seg7, "lz4 frame")) << dump(r);
  EXPECT_TRUE(names(r, seg8, "empty file")) << dump(r);
}

TEST(RepoVerify, UncompressedSegmentWithAFlippedRecordByte) {
  VerifyRepo repo;
  fs::remove(repo.wal(kSeg7 + ".lz4"));
  auto bytes = decoded(kFixtureDir / (kSeg7 + ".lz4"));
  // A byte inside some record's data (past the long header): its CRC no longer matches.
  bytes[100000] = std::byte(255 - std::to_integer<int>(bytes[100000]));
  const fs::path raw = repo.wal(kSeg7);
  write_file_durable(raw, std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  const RepoVerifyReport r = verify_repository(repo.root());
  EXPECT_TRUE(names(r, raw, "")) << dump(r);
  EXPECT_EQ(r.damaged(), 1u) << dump(r);
}

TEST(RepoVerify, MissingSegmentInTheMiddleIsAGapNamingTheFile) {
  VerifyRepo repo;
  // 6 .. 8 with 7 missing: make segment 6 out of nothing is not possible, so use 7 and 8 and a
  // copy of 8's content under segment 10's name would fail its page addresses; instead remove 8
  // and add a .partial of segment 9 (the newest), which leaves 8 as a hole.
  fs::remove(repo.wal(kSeg8 + ".lz4"));
  auto seg = decoded(kFixtureDir / (kSeg8 + ".lz4"));
  // Rewrite the page addresses of segment 8 as segment 9's: a valid-looking .partial prefix.
  const std::string partial_name = "000000010000000000000009.lz4.partial";
  std::vector<std::byte> prefix(seg.begin(), seg.begin() + 8192);
  uint64_t addr = 9 * kSeg;
  std::memcpy(prefix.data() + 8, &addr, 8);
  // The first record continues from segment 8: mark nothing; the checker only reads pages.
  write_file_durable(repo.wal(partial_name), frame_of(prefix));
  const RepoVerifyReport r = verify_repository(repo.root());
  EXPECT_TRUE(names(r, repo.wal(kSeg8 + ".lz4"), "missing")) << dump(r);
}

TEST(RepoVerify, PartialTornTailIsAWarningDamageInsideIsNot) {
  VerifyRepo repo;
  fs::remove(repo.wal(kSeg8 + ".lz4"));
  const auto seg = decoded(kFixtureDir / (kSeg8 + ".lz4"));
  const std::span<const std::byte> prefix(seg.data(), 3 * Lz4FrameEncoder::kBlockSize);
  const fs::path partial = repo.wal(kSeg8 + ".lz4.partial");
  const std::string frame = frame_of(prefix, false);
  write_file_durable(partial, frame.substr(0, frame.size() - 100));  // the last block torn
  RepoVerifyReport r = verify_repository(repo.root());
  EXPECT_TRUE(r.ok()) << dump(r);
  ASSERT_EQ(r.warnings(), 1u) << dump(r);
  EXPECT_EQ(r.findings[0].path, partial.string());
  EXPECT_NE(r.findings[0].problem.find("torn tail"), std::string::npos);

  std::string flipped = frame_of(prefix, true);
  flipped[Lz4FrameEncoder::kHeaderBytes + 1000] ^= 0x40;  // inside the first of three blocks
  write_file_durable(partial, flipped);
  r = verify_repository(repo.root());
  EXPECT_TRUE(names(r, partial, "block checksum mismatch")) << dump(r);

  write_file_durable(partial, "");
  r = verify_repository(repo.root());
  EXPECT_TRUE(r.ok()) << dump(r);  // created, nothing written yet: nothing lost
  EXPECT_EQ(r.warnings(), 1u) << dump(r);
}

TEST(RepoVerify, BackupFilesAndMetadata) {
  VerifyRepo repo;
  repo.add_backup();
  const std::string base = read_file(repo.backup("base.tar.lz4"));
  const std::string manifest = read_file(repo.backup("backup_manifest"));
  const std::string json = read_file(repo.backup("backup.json"));

  flip_byte(repo.backup("base.tar.lz4"), base.size() / 2);
  RepoVerifyReport r = verify_repository(repo.root());
  EXPECT_TRUE(names(r, repo.backup("base.tar.lz4"), "SHA-256")) << dump(r);
  write_file_durable(repo.backup("base.tar.lz4"), base);

  fs::remove(repo.backup("base.tar.lz4"));
  r = verify_repository(repo.root());
  EXPECT_TRUE(names(r, repo.backup("base.tar.lz4"), "missing")) << dump(r);
  write_file_durable(repo.backup("base.tar.lz4"), base);

  fs::resize_file(repo.backup("backup_manifest"), manifest.size() / 2);
  r = verify_repository(repo.root());
  EXPECT_TRUE(names(r, repo.backup("backup_manifest"), "bytes, backup.json says")) << dump(r);
  EXPECT_TRUE(names(r, repo.backup("backup_manifest"), "manifest is damaged")) << dump(r);
  write_file_durable(repo.backup("backup_manifest"), manifest);

  write_file_durable(repo.backup("backup.json"), json.substr(0, json.size() / 2));
  r = verify_repository(repo.root());
  EXPECT_TRUE(names(r, repo.backup("backup.json"), "damaged")) << dump(r);
  fs::remove(repo.backup("backup.json"));
  r = verify_repository(repo.root());
  EXPECT_TRUE(names(r, repo.backup("backup.json"), "missing")) << dump(r);
  write_file_durable(repo.backup("backup.json"), json);

  fs::remove(repo.wal(kSeg7 + ".lz4"));
  r = verify_repository(repo.root());
  EXPECT_TRUE(
      names(r, repo.root() / "backups/B1", "is missing: " + repo.wal(kSeg7 + ".lz4").string()))
      << dump(r);
}

TEST(RepoVerify, DamagedWalvaultJsonIsNamedAndTheRestStillChecked) {
  VerifyRepo repo;
  repo.add_backup();
  write_file_durable(repo.root() / "walvault.json", "{\"format_version\":1,\"syst");
  RepoVerifyReport r = verify_repository(repo.root());
  EXPECT_TRUE(names(r, repo.root() / "walvault.json", "damaged")) << dump(r);
  EXPECT_TRUE(r.identity_from_wal);
  EXPECT_EQ(r.wal_segments, 2u);
  EXPECT_EQ(r.damaged(), 1u) << dump(r);

  repo.write_identity("1234567");  // parses, but names another database system
  r = verify_repository(repo.root());
  EXPECT_TRUE(names(r, repo.root() / "walvault.json", "disagrees with every WAL segment"))
      << dump(r);

  fs::remove(repo.root() / "walvault.json");
  r = verify_repository(repo.root());
  EXPECT_TRUE(names(r, repo.root() / "walvault.json", "missing")) << dump(r);
}

TEST(RepoVerify, HistoryFilesAndTimelines) {
  VerifyRepo repo;
  fs::create_directories(repo.root() / "wal/00000002");
  RepoVerifyReport r = verify_repository(repo.root());
  EXPECT_TRUE(names(r, repo.root() / "wal/00000002.history", "missing")) << dump(r);

  write_file_durable(repo.root() / "wal/00000002.history", "1\tX/800000\tno recovery target\n");
  r = verify_repository(repo.root());
  EXPECT_TRUE(names(r, repo.root() / "wal/00000002.history", "not an LSN")) << dump(r);

  write_file_durable(repo.root() / "wal/00000002.history", "");
  r = verify_repository(repo.root());
  EXPECT_TRUE(names(r, repo.root() / "wal/00000002.history", "is empty")) << dump(r);
  write_file_durable(repo.root() / "wal/00000002.history", "1\t0/800000\tno recov");
  r = verify_repository(repo.root());
  EXPECT_TRUE(names(r, repo.root() / "wal/00000002.history", "truncated")) << dump(r);

  write_file_durable(repo.root() / "wal/00000002.history", "1\t0/800000\tno recovery target\n");
  write_file_durable(repo.root() / "wal/00000003.history", "2\t0/900000\tno recovery target\n");
  r = verify_repository(repo.root());
  EXPECT_TRUE(names(r, repo.root() / "wal/00000003.history", "disagrees with 00000002.history"))
      << dump(r);
}

TEST(RepoVerify, StaleLockFilesAreNoDamage) {
  VerifyRepo repo;
  write_file_durable(repo.root() / "lock/archiver.lock", "pid=999999 host=gone\n");
  write_file_durable(repo.root() / "lock/backup-B9.lock", "");
  const RepoVerifyReport r = verify_repository(repo.root());
  EXPECT_TRUE(r.ok()) << dump(r);
  ASSERT_EQ(r.locks.size(), 2u);
  EXPECT_FALSE(r.locks[0].holder);
  EXPECT_NE(
      r.to_text().find("lock " + (repo.root() / "lock/archiver.lock").string() + ": not held"),
      std::string::npos);
}

TEST(RepoVerify, NotADirectoryIsAnError) {
  EXPECT_THROW(verify_repository("/nonexistent/walvault-repo"), Error);
}

// ---------------------------------------------------------------------------- WAL checker

TEST(WalFileChecker, ConsecutiveSegmentsAndIdentity) {
  WalIdentity id{kSeg, 15, fixture_sysid()};
  WalFileChecker checker(id, TimelineId(1), {});
  WalFileEntry e7{TimelineId(1), SegmentNo(7), Compression::lz4, false,
                  kFixtureDir / (kSeg7 + ".lz4")};
  WalFileEntry e8{TimelineId(1), SegmentNo(8), Compression::lz4, false,
                  kFixtureDir / (kSeg8 + ".lz4")};
  EXPECT_EQ(checker.check(e7).kind, WalFileVerdict::Kind::ok);
  const WalFileVerdict v8 = checker.check(e8);
  EXPECT_EQ(v8.kind, WalFileVerdict::Kind::ok) << v8.problem;
  EXPECT_EQ(v8.content_bytes, kSeg);
  EXPECT_EQ(v8.system_identifier, fixture_sysid());

  WalFileChecker foreign(WalIdentity{kSeg, 15, fixture_sysid() + 1}, TimelineId(1), {});
  const WalFileVerdict f = foreign.check(e7);
  EXPECT_EQ(f.kind, WalFileVerdict::Kind::damaged);
  EXPECT_TRUE(f.foreign_system);
  EXPECT_NE(f.problem.find("belongs to database system"), std::string::npos) << f.problem;

  WalFileEntry gone = e7;
  gone.path = "/nonexistent/" + kSeg7 + ".lz4";
  EXPECT_EQ(checker.check(gone).kind, WalFileVerdict::Kind::vanished);
}

TEST(WalRecordScanner, PageOfALaterTimelineIsInvalid) {
  auto seg = decoded(kFixtureDir / (kSeg7 + ".lz4"));
  const uint32_t later = 5;
  std::memcpy(seg.data() + 3 * 8192 + 4, &later, 4);  // the 4th page says timeline 5
  WalRecordScanner scanner(kSeg, 15, nullptr);
  WalPageExpectations e;
  e.timeline = TimelineId(1);
  scanner.expect(e);
  scanner.feed(Lsn(7 * kSeg), seg);
  EXPECT_EQ(scanner.stop(), WalScanStop::invalid);
  EXPECT_NE(scanner.problem().find("carries timeline 5"), std::string::npos) << scanner.problem();

  WalRecordScanner unchecked(kSeg, 15, nullptr);  // without expectations: as before
  unchecked.feed(Lsn(7 * kSeg), seg);
  EXPECT_EQ(unchecked.stop(), WalScanStop::none);
}

// ---------------------------------------------------------------------------- lz4 frames

TEST(Lz4FrameScanDamage, TornTailVersusDamageWithDataAfterIt) {
  std::vector<std::byte> content(3 * Lz4FrameEncoder::kBlockSize);
  for (size_t i = 0; i < content.size(); ++i) content[i] = std::byte((i * 7) % 251);
  const std::string whole = frame_of(content, true);
  auto scan = [](const std::string& s) { return scan_lz4_frame(as_bytes(s), nullptr); };
  EXPECT_FALSE(scan(whole).damaged);
  EXPECT_FALSE(scan(whole.substr(0, whole.size() - 30)).damaged);  // torn last block
  EXPECT_FALSE(scan("").damaged);
  std::string mid = whole;
  mid[Lz4FrameEncoder::kHeaderBytes + 100] ^= 1;
  const Lz4FrameScan s = scan(mid);
  EXPECT_TRUE(s.damaged);
  EXPECT_EQ(s.content_bytes, 0u);
  std::string header = whole;
  header[4] ^= 0x01;
  EXPECT_TRUE(scan(header).damaged);
}

TEST(Lz4FrameDecoderStream, AnyChunkingDecodesAndDamageThrows) {
  std::vector<std::byte> content(600000);
  for (size_t i = 0; i < content.size(); ++i) content[i] = std::byte((i * 13) % 241);
  const std::string frame = frame_of(content, true);
  for (size_t chunk : {size_t(1), size_t(7), size_t(4096), frame.size()}) {
    std::vector<std::byte> out;
    Lz4FrameDecoder d(
        "x", [&](std::span<const std::byte> b) { out.insert(out.end(), b.begin(), b.end()); });
    for (size_t pos = 0; pos < frame.size(); pos += chunk) {
      d.feed(as_bytes(std::string_view(frame).substr(pos, chunk)));
    }
    d.finish();
    EXPECT_EQ(out, content) << "chunk " << chunk;
  }
  Lz4FrameDecoder truncated("x", nullptr);
  truncated.feed(as_bytes(std::string_view(frame).substr(0, frame.size() - 1)));
  EXPECT_THROW(truncated.finish(), Lz4FrameError);
  Lz4FrameDecoder trailing("x", nullptr);
  EXPECT_THROW(trailing.feed(as_bytes(frame + "junk")), Lz4FrameError);
}

// ---------------------------------------------------------------------------- backup_manifest

TEST(BackupManifestParse, ValidAndDamaged) {
  const std::string m = manifest_text("0/700028", "0/800100");
  const BackupManifest parsed = parse_backup_manifest(m);
  EXPECT_EQ(parsed.version, 1);
  ASSERT_EQ(parsed.files.size(), 1u);
  EXPECT_EQ(parsed.files[0].path, "PG_VERSION");
  ASSERT_EQ(parsed.wal_ranges.size(), 1u);
  EXPECT_EQ(parsed.wal_ranges[0].start.str(), "0/700028");

  std::string flipped = m;
  flipped[m.find("PG_VERSION")] = 'Q';
  EXPECT_THROW(parse_backup_manifest(flipped), Error);  // checksum
  EXPECT_THROW(parse_backup_manifest(m.substr(0, m.size() / 2)), Error);
  EXPECT_THROW(parse_backup_manifest(""), Error);
  EXPECT_THROW(parse_backup_manifest("[1,2]\n\"Manifest-Checksum\""), Error);
}

}  // namespace
}  // namespace walvault
