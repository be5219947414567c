#include "core/tar.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include "core/error.h"
#include "core/fs.h"
#include "core/tar_extract.h"

namespace walvault {
namespace {

struct Seen {
  TarEntry entry;
  std::string content;
};

class CollectingSink : public TarSink {
 public:
  std::vector<Seen> seen;
  bool ended = false;
  void begin_entry(const TarEntry& e) override { seen.push_back({e, {}}); }
  void entry_data(std::span<const std::byte> d) override {
    seen.back().content.append(reinterpret_cast<const char*>(d.data()), d.size());
  }
  void end_entry() override {}
  void end_archive() override { ended = true; }
};

TarEntry make(std::string path, TarEntryType type, uint32_t mode, std::string link = {}) {
  TarEntry e;
  e.path = std::move(path);
  e.type = type;
  e.mode = mode;
  e.link_target = std::move(link);
  e.mtime = 1700000000;
  e.uid = 1000;
  e.gid = 1000;
  return e;
}

// Appends a member written by our own writer.
void add(std::string& tar, TarEntry e, const std::string& content = {}) {
  e.size = content.size();
  tar += tar_member_header(e);
  tar += content;
  tar.append(tar_padding_bytes(content.size()), '\0');
}

// A hand-made header block, for formats our writer does not produce (GNU 'L', prefix).
std::string raw_header(const std::string& name, char type, uint64_t size,
                       const std::string& prefix = {},
                       const char* magic =
                           "ustar\0"
                           "00") {
  std::string h(512, '\0');
  std::memcpy(h.data(), name.data(), std::min<size_t>(name.size(), 100));
  std::snprintf(h.data() + 100, 8, "%07o", 0644);
  std::snprintf(h.data() + 108, 8, "%07o", 0);
  std::snprintf(h.data() + 116, 8, "%07o", 0);
  std::snprintf(h.data() + 124, 12, "%011llo", static_cast<unsigned long long>(size));
  std::snprintf(h.data() + 136, 12, "%011o", 0);
  h[156] = type;
  std::memcpy(h.data() + 257, magic, 8);
  std::memcpy(h.data() + 345, prefix.data(), std::min<size_t>(prefix.size(), 155));
  std::memset(h.data() + 148, ' ', 8);
  unsigned sum = 0;
  for (char c : h) sum += uint8_t(c);
  std::snprintf(h.data() + 148, 8, "%06o", sum);
  return h;
}

std::string pad(const std::string& s) {
  return s + std::string(tar_padding_bytes(s.size()), '\0');
}

std::span<const std::byte> bytes(const std::string& s) {
  return as_bytes(s);
}

CollectingSink parse_all(const std::string& tar, size_t chunk = 0) {
  CollectingSink sink;
  TarReader reader(sink, "test.tar");
  if (chunk == 0) {
    reader.feed(bytes(tar));
  } else {
    for (size_t pos = 0; pos < tar.size(); pos += chunk) {
      reader.feed(bytes(tar).subspan(pos, std::min(chunk, tar.size() - pos)));
    }
  }
  reader.finish();
  return sink;
}

std::string sample_archive() {
  std::string tar;
  add(tar, make("base", TarEntryType::directory, 0700));
  add(tar, make("base/1", TarEntryType::directory, 0750));
  add(tar, make("base/1/1259", TarEntryType::file, 0600), std::string(1000, 'x'));
  add(tar, make("PG_VERSION", TarEntryType::file, 0644), "15\n");
  add(tar, make("empty", TarEntryType::file, 0600));
  add(tar, make("pg_tblspc", TarEntryType::directory, 0700));
  add(tar, make("pg_tblspc/16385", TarEntryType::symlink, 0777, "/srv/ts1"));
  add(tar, make("base/1/1259_copy", TarEntryType::hardlink, 0600, "base/1/1259"));
  tar += tar_end_of_archive();
  return tar;
}

TEST(Tar, ReadsRegularDirectorySymlinkAndHardLink) {
  const std::string tar = sample_archive();
  for (size_t chunk : {size_t(0), size_t(1), size_t(7), size_t(511), size_t(513), size_t(4096)}) {
    CollectingSink sink = parse_all(tar, chunk);
    ASSERT_EQ(sink.seen.size(), 8u) << "chunk " << chunk;
    EXPECT_TRUE(sink.ended);
    EXPECT_EQ(sink.seen[0].entry.path, "base");
    EXPECT_EQ(sink.seen[0].entry.type, TarEntryType::directory);
    EXPECT_EQ(sink.seen[1].entry.mode, 0750u);
    EXPECT_EQ(sink.seen[2].entry.type, TarEntryType::file);
    EXPECT_EQ(sink.seen[2].entry.size, 1000u);
    EXPECT_EQ(sink.seen[2].content, std::string(1000, 'x'));
    EXPECT_EQ(sink.seen[2].entry.mtime, 1700000000);
    EXPECT_EQ(sink.seen[2].entry.uid, 1000u);
    EXPECT_EQ(sink.seen[3].content, "15\n");
    EXPECT_EQ(sink.seen[3].entry.mode, 0644u);
    EXPECT_EQ(sink.seen[4].entry.size, 0u);
    EXPECT_EQ(sink.seen[6].entry.type, TarEntryType::symlink);
    EXPECT_EQ(sink.seen[6].entry.link_target, "/srv/ts1");
    EXPECT_EQ(sink.seen[7].entry.type, TarEntryType::hardlink);
    EXPECT_EQ(sink.seen[7].entry.link_target, "base/1/1259");
  }
}

TEST(Tar, IgnoresRecordPaddingAfterTheEndMarker) {
  std::string tar = sample_archive();
  tar.append(10240 - tar.size() % 10240, '\0');
  EXPECT_EQ(parse_all(tar).seen.size(), 8u);
}

TEST(Tar, LongNamesThroughPaxHeaders) {
  const std::string long_name = "base/16384/" + std::string(150, 'n');
  const std::string long_link = "/srv/" + std::string(120, 'l');
  std::string tar;
  add(tar, make(long_name, TarEntryType::file, 0600), "abc");
  add(tar, make("pg_tblspc/1", TarEntryType::symlink, 0777, long_link));
  add(tar, make("short", TarEntryType::file, 0600), "d");  // pax applies to one member only
  tar += tar_end_of_archive();
  CollectingSink sink = parse_all(tar, 100);
  ASSERT_EQ(sink.seen.size(), 3u);
  EXPECT_EQ(sink.seen[0].entry.path, long_name);
  EXPECT_EQ(sink.seen[0].content, "abc");
  EXPECT_EQ(sink.seen[1].entry.link_target, long_link);
  EXPECT_EQ(sink.seen[2].entry.path, "short");
}

TEST(Tar, LongNamesThroughGnuLongLinkMembers) {
  const std::string long_name = std::string(130, 'g') + "/file";
  std::string tar;
  tar += raw_header("././@LongLink", 'L', long_name.size() + 1, {}, "ustar  \0");
  tar += pad(long_name + '\0');
  tar += raw_header(long_name.substr(0, 100), '0', 2, {}, "ustar  \0");
  tar += pad("hi");
  tar += tar_end_of_archive();
  CollectingSink sink = parse_all(tar);
  ASSERT_EQ(sink.seen.size(), 1u);
  EXPECT_EQ(sink.seen[0].entry.path, long_name);
  EXPECT_EQ(sink.seen[0].content, "hi");
}

TEST(Tar, UstarPrefixField) {
  std::string tar = raw_header("file", '0', 1, "some/dir") + pad("z") + tar_end_of_archive();
  CollectingSink sink = parse_all(tar);
  ASSERT_EQ(sink.seen.size(), 1u);
  EXPECT_EQ(sink.seen[0].entry.path, "some/dir/file");
}

TEST(Tar, NormalisesNames) {
  EXPECT_EQ(safe_tar_path("./a//b/"), "a/b");
  EXPECT_EQ(safe_tar_path("./"), "");
  EXPECT_EQ(safe_tar_path("a/./b"), "a/b");
  EXPECT_EQ(safe_tar_path("a..b/..c"), "a..b/..c");
}

TEST(Tar, RejectsPathTraversal) {
  for (const char* bad : {"../etc/passwd", "/etc/passwd", "a/../../b", "a/..", ".."}) {
    EXPECT_THROW(safe_tar_path(bad), Error) << bad;
    std::string tar = raw_header(bad, '0', 1) + pad("x") + tar_end_of_archive();
    CollectingSink sink;
    TarReader reader(sink, "evil.tar");
    try {
      reader.feed(bytes(tar));
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("evil.tar"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(sink.seen.empty()) << bad;
  }
  std::string tar = raw_header("link", '1', 0) + tar_end_of_archive();
  // A hard link's target field is at offset 157.
  std::string evil = tar;
  std::memcpy(evil.data() + 157, "../../x", 7);
  std::memset(evil.data() + 148, ' ', 8);
  unsigned sum = 0;
  for (size_t i = 0; i < 512; ++i) sum += uint8_t(evil[i]);
  std::snprintf(evil.data() + 148, 8, "%06o", sum);
  EXPECT_THROW(parse_all(evil), Error);
}

TEST(Tar, TruncatedArchiveIsAnError) {
  const std::string tar = sample_archive();
  // Cut inside a member's content, inside a header, and just before the end marker.
  const size_t data_cut = 4 * 512 + 100;
  for (size_t cut : {data_cut, size_t(512 + 200), tar.size() - 1024, tar.size() - 512}) {
    CollectingSink sink;
    TarReader reader(sink, "cut.tar");
    reader.feed(bytes(tar).first(cut));
    EXPECT_THROW(reader.finish(), Error) << "cut at " << cut;
    EXPECT_FALSE(sink.ended);
  }
}

TEST(Tar, DamagedHeaderIsAnError) {
  std::string tar = sample_archive();
  tar[10] ^= 0x20;  // a byte of the first name, so the checksum no longer matches
  EXPECT_THROW(parse_all(tar), Error);
}

TEST(Tar, RejectsDevicesAndFifos) {
  std::string tar = raw_header("fifo", '6', 0) + tar_end_of_archive();
  EXPECT_THROW(parse_all(tar), Error);
}

TEST(Tar, Base256Size) {
  std::string h = raw_header("big", '0', 0);
  // 3 bytes of content, size field in base-256 notation.
  std::memset(h.data() + 124, 0, 12);
  h[124] = char(0x80);
  h[135] = 3;
  std::memset(h.data() + 148, ' ', 8);
  unsigned sum = 0;
  for (char c : h) sum += uint8_t(c);
  std::snprintf(h.data() + 148, 8, "%06o", sum);
  CollectingSink sink = parse_all(h + pad("abc") + tar_end_of_archive());
  ASSERT_EQ(sink.seen.size(), 1u);
  EXPECT_EQ(sink.seen[0].content, "abc");
}

// ------------------------------------------------------------------- extraction

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "walvault-tar-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
    for (auto& e : fs::recursive_directory_iterator(path_, ec)) {
      if (e.is_directory(ec) && !e.is_symlink(ec))
        fs::permissions(e.path(), fs::perms::owner_all, fs::perm_options::add, ec);
    }
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void extract(const std::string& tar, const fs::path& dir, TarExtractor::SymlinkTargetFn fn = {}) {
  TarExtractor ex(dir, std::move(fn));
  TarReader reader(ex, "test.tar");
  reader.feed(bytes(tar));
  reader.finish();
  ex.sync();
}

uint32_t mode_of(const fs::path& p) {
  struct stat st;
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

TEST(TarExtract, WritesFilesDirectoriesLinksWithModes) {
  TempDir tmp;
  extract(sample_archive(), tmp.path(), [](const TarEntry& e) {
    return e.path == "pg_tblspc/16385" ? std::string("/elsewhere/ts") : e.link_target;
  });
  const fs::path d = tmp.path();
  EXPECT_EQ(read_file(d / "PG_VERSION"), "15\n");
  EXPECT_EQ(read_file(d / "base/1/1259"), std::string(1000, 'x'));
  EXPECT_EQ(read_file(d / "empty"), "");
  EXPECT_EQ(mode_of(d / "PG_VERSION"), 0644u);
  EXPECT_EQ(mode_of(d / "base/1/1259"), 0600u);
  EXPECT_EQ(mode_of(d / "base/1"), 0750u);
  EXPECT_EQ(mode_of(d / "base"), 0700u);
  EXPECT_TRUE(fs::is_symlink(d / "pg_tblspc/16385"));
  EXPECT_EQ(fs::read_symlink(d / "pg_tblspc/16385"), "/elsewhere/ts");
  struct stat a, b;
  ASSERT_EQ(::stat((d / "base/1/1259").c_str(), &a), 0);
  ASSERT_EQ(::stat((d / "base/1/1259_copy").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_mtime, 1700000000);
}

TEST(TarExtract, CreatesMissingParentDirectories) {
  TempDir tmp;
  std::string tar;
  add(tar, make("a/b/c", TarEntryType::file, 0600), "deep");
  tar += tar_end_of_archive();
  extract(tar, tmp.path());
  EXPECT_EQ(read_file(tmp.path() / "a/b/c"), "deep");
}

// A file of many MiB (relation files are up to 1 GB), fed in pieces that line up with
// neither the tar records nor the file: what lands on disk is exactly the content.
TEST(TarExtract, LargeFileFedInPieces) {
  TempDir tmp;
  std::string content(20 * 1024 * 1024 + 12345, '\0');
  for (size_t i = 0; i < content.size(); ++i) content[i] = char('a' + (i * 7 + i / 4096) % 26);
  std::string tar;
  add(tar, make("base/1/16384", TarEntryType::file, 0600), content);
  add(tar, make("base/1/16385", TarEntryType::file, 0600), "after");
  tar += tar_end_of_archive();
  TarExtractor ex(tmp.path());
  TarReader reader(ex, "test.tar");
  for (size_t pos = 0; pos < tar.size(); pos += 1000003) {
    const std::string piece = tar.substr(pos, 1000003);
    reader.feed(bytes(piece));
  }
  reader.finish();
  ex.sync();
  EXPECT_EQ(read_file(tmp.path() / "base/1/16384"), content);
  EXPECT_EQ(read_file(tmp.path() / "base/1/16385"), "after");
}

TEST(TarExtract, NeverWritesThroughASymlink) {
  TempDir tmp;
  TempDir outside;
  std::string tar;
  add(tar, make("link", TarEntryType::symlink, 0777, outside.path().string()));
  add(tar, make("link/evil", TarEntryType::file, 0600), "pwned");
  tar += tar_end_of_archive();
  EXPECT_THROW(extract(tar, tmp.path()), Error);
  EXPECT_FALSE(fs::exists(outside.path() / "evil"));
}

TEST(TarExtract, RefusesDuplicatesAndDanglingHardLinks) {
  {
    TempDir tmp;
    std::string tar;
    add(tar, make("f", TarEntryType::file, 0600), "1");
    add(tar, make("f", TarEntryType::file, 0600), "2");
    tar += tar_end_of_archive();
    EXPECT_THROW(extract(tar, tmp.path()), Error);
  }
  {
    TempDir tmp;
    std::string tar;
    add(tar, make("h", TarEntryType::hardlink, 0600, "missing"));
    tar += tar_end_of_archive();
    EXPECT_THROW(extract(tar, tmp.path()), Error);
  }
}

TEST(TarExtract, RefusesANonEmptyTarget) {
  TempDir tmp;
  write_file_durable(tmp.path() / "x", "x");
  EXPECT_THROW(TarExtractor ex(tmp.path()), Error);
}

// Interoperability with GNU tar, when it is installed: it reads what we write, we read
// what it writes (including its own long-name format).
TEST(Tar, InteroperatesWithGnuTar) {
  if (::access("/usr/bin/tar", X_OK) != 0 && ::access("/bin/tar", X_OK) != 0) {
    GTEST_SKIP() << "GNU tar is not installed";
  }
  TempDir tmp;
  const fs::path src = tmp.path() / "src";
  const std::string long_name = std::string(120, 'q');
  fs::create_directories(src / "d" / long_name);
  write_file_durable(src / "d" / long_name / "f", "content");
  fs::create_symlink("d", src / "s");
  for (const char* format : {"gnu", "pax", "ustar"}) {
    const fs::path tar_file = tmp.path() / (std::string(format) + ".tar");
    const std::string cmd = "tar --format=" + std::string(format) + " -C " + src.string() +
                            " -cf " + tar_file.string() + " . 2>/dev/null";
    if (std::system(cmd.c_str()) != 0) {
      EXPECT_STREQ(format, "ustar");  // ustar cannot hold the 120-byte name; the others must
      continue;
    }
    const fs::path out = tmp.path() / (std::string("out-") + format);
    fs::create_directory(out);
    extract(read_file(tar_file), out);
    EXPECT_EQ(read_file(out / "d" / long_name / "f"), "content") << format;
    EXPECT_EQ(fs::read_symlink(out / "s"), "d") << format;
  }
  // GNU tar lists what our writer produced.
  std::string ours;
  add(ours, make("dir/" + std::string(150, 'w'), TarEntryType::file, 0600), "pax");
  add(ours, make("plain", TarEntryType::file, 0600), "ustar");
  ours += tar_end_of_archive();
  write_file_durable(tmp.path() / "ours.tar", ours);
  const std::string list =
      "tar -tf " + (tmp.path() / "ours.tar").string() + " > " + (tmp.path() / "list.txt").string();
  ASSERT_EQ(std::system(list.c_str()), 0);
  EXPECT_EQ(read_file(tmp.path() / "list.txt"), "dir/" + std::string(150, 'w') + "\nplain\n");
}

}  // namespace
}  // namespace walvault
