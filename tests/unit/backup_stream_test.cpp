#include "basebackup/backup_stream.h"

#include <gtest/gtest.h>

#include "basebackup/archive_store.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/hash.h"
#include "core/lz4_frame.h"
#include "core/tar.h"

namespace walvault {
namespace {

std::vector<std::byte> msg(char type, const std::string& payload = {}) {
  std::vector<std::byte> m;
  m.push_back(std::byte(type));
  for (char c : payload) m.push_back(std::byte(c));
  return m;
}

std::vector<std::byte> new_archive(const std::string& name, const std::string& location) {
  return msg('n', name + '\0' + location + '\0');
}

std::vector<std::byte> progress(uint64_t v) {
  std::string p(8, '\0');
  for (int i = 0; i < 8; ++i) p[size_t(i)] = char((v >> (56 - 8 * i)) & 0xff);
  return msg('p', p);
}

class RecordingSink : public BackupStreamSink {
 public:
  std::vector<std::string> events;
  void begin_archive(const std::string& name, const std::string& location) override {
    events.push_back("begin " + name + " [" + location + "]");
  }
  void archive_data(std::span<const std::byte> d) override {
    events.push_back("data " + std::string(reinterpret_cast<const char*>(d.data()), d.size()));
  }
  void end_archive() override { events.push_back("end"); }
  void manifest_data(std::span<const std::byte> d) override {
    events.push_back("manifest " + std::string(reinterpret_cast<const char*>(d.data()), d.size()));
  }
  void progress(uint64_t b) override { events.push_back("progress " + std::to_string(b)); }
};

TEST(BackupStream, DecodesAScriptedStream) {
  RecordingSink sink;
  BackupStreamDecoder dec(sink);
  dec.on_message(new_archive("base.tar", ""));
  dec.on_message(msg('d', "abc"));
  dec.on_message(msg('d', "def"));
  dec.on_message(progress(0x0102030405ull));
  dec.on_message(new_archive("16385.tar", "/srv/ts"));
  dec.on_message(msg('d', "ts"));
  dec.on_message(progress(7));
  dec.on_message(msg('m'));
  dec.on_message(msg('d', "{\"PostgreSQL-Backup-Manifest-Version\": 1"));
  dec.on_message(msg('d', "}"));
  dec.finish();
  EXPECT_TRUE(dec.saw_manifest());
  const std::vector<std::string> expected = {"begin base.tar []",
                                             "data abc",
                                             "data def",
                                             "progress 4328719365",
                                             "end",
                                             "begin 16385.tar [/srv/ts]",
                                             "data ts",
                                             "progress 7",
                                             "end",
                                             "manifest {\"PostgreSQL-Backup-Manifest-Version\": 1",
                                             "manifest }"};
  EXPECT_EQ(sink.events, expected);
  EXPECT_EQ(dec.archives(), (std::vector<std::string>{"base.tar", "16385.tar"}));
}

TEST(BackupStream, StreamWithoutManifestClosesTheLastArchive) {
  RecordingSink sink;
  BackupStreamDecoder dec(sink);
  dec.on_message(new_archive("base.tar", ""));
  dec.on_message(msg('d', "x"));
  dec.finish();
  EXPECT_EQ(sink.events, (std::vector<std::string>{"begin base.tar []", "data x", "end"}));
  EXPECT_FALSE(dec.saw_manifest());
}

TEST(BackupStream, RefusesMalformedOrOutOfOrderMessages) {
  auto fails = [](std::vector<std::vector<std::byte>> msgs) {
    RecordingSink sink;
    BackupStreamDecoder dec(sink);
    try {
      for (const auto& m : msgs) dec.on_message(m);
      dec.finish();
    } catch (const Error&) {
      return true;
    }
    return false;
  };
  EXPECT_TRUE(fails({msg('d', "early")}));
  EXPECT_TRUE(fails({std::vector<std::byte>{}}));
  EXPECT_TRUE(fails({msg('x', "?")}));
  EXPECT_TRUE(fails({new_archive("base.tar", ""), msg('p', "1234")}));
  EXPECT_TRUE(fails({new_archive("base.tar", ""), msg('m'), new_archive("1.tar", "/t")}));
  EXPECT_TRUE(fails({new_archive("base.tar", ""), msg('m'), msg('m')}));
  EXPECT_TRUE(fails({msg('n', "base.tar")}));  // location missing
  EXPECT_TRUE(fails({new_archive("../evil.tar", "")}));
  EXPECT_TRUE(fails({new_archive("base.tar.gz", "")}));
  EXPECT_TRUE(fails({new_archive("base.tar", ""), new_archive("base.tar", "")}));
  EXPECT_FALSE(fails({new_archive("base.tar", ""), msg('m'), msg('d', "{}")}));
}

TEST(BackupStream, ArchiveNames) {
  EXPECT_EQ(tablespace_oid_of_archive("base.tar"), std::nullopt);
  EXPECT_EQ(tablespace_oid_of_archive("16385.tar"), 16385u);
  EXPECT_EQ(tablespace_oid_of_archive("4294967295.tar"), 4294967295u);
  EXPECT_THROW(tablespace_oid_of_archive("4294967296.tar"), Error);
  EXPECT_THROW(tablespace_oid_of_archive("0.tar"), Error);
  EXPECT_THROW(tablespace_oid_of_archive(".tar"), Error);
  EXPECT_THROW(tablespace_oid_of_archive("a/1.tar"), Error);
}

TEST(BackupStream, Command) {
  BaseBackupOptions o;
  o.label = "it's";
  o.checkpoint = CheckpointMode::spread;
  for (int major : {15, 16, 17, 18}) {
    EXPECT_EQ(base_backup_command(o, major),
              "BASE_BACKUP (LABEL 'it''s', PROGRESS, CHECKPOINT 'spread', WAIT false, "
              "MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C')");
  }
  o.max_rate_kbps = 1024;
  for (int major : {15, 16, 17, 18}) {
    EXPECT_EQ(base_backup_command(o, major),
              "BASE_BACKUP (LABEL 'it''s', PROGRESS, CHECKPOINT 'spread', WAIT false, "
              "MAX_RATE 1024, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C')");
  }
}

// PostgreSQL 14's grammar: bare keywords; FAST for a fast checkpoint, none for spread.
TEST(BackupStream, CommandPg14) {
  BaseBackupOptions o;
  o.label = "it's";
  o.checkpoint = CheckpointMode::spread;
  EXPECT_EQ(base_backup_command(o, 14),
            "BASE_BACKUP LABEL 'it''s' PROGRESS NOWAIT MANIFEST 'yes' MANIFEST_CHECKSUMS 'CRC32C'");
  o.checkpoint = CheckpointMode::fast;
  o.progress = false;
  EXPECT_EQ(base_backup_command(o, 14),
            "BASE_BACKUP LABEL 'it''s' FAST NOWAIT MANIFEST 'yes' MANIFEST_CHECKSUMS 'CRC32C'");
  o.max_rate_kbps = 32;
  EXPECT_EQ(base_backup_command(o, 14),
            "BASE_BACKUP LABEL 'it''s' FAST NOWAIT MAX_RATE 32 MANIFEST 'yes' MANIFEST_CHECKSUMS "
            "'CRC32C'");
}

// The typed calls (how the 14 stream is fed) keep the same order rules as the messages.
TEST(BackupStream, TypedCallsKeepOrder) {
  auto bytes = [](const std::string& text) {
    return std::span<const std::byte>(reinterpret_cast<const std::byte*>(text.data()), text.size());
  };
  const std::string x = "x", ts = "ts", base = "base", manifest = "{}", late = "late";
  RecordingSink sink;
  BackupStreamDecoder d(sink);
  EXPECT_THROW(d.data(bytes(x)), Error);
  d.begin_archive("16385.tar", "/ts");
  d.data(bytes(ts));
  d.begin_archive("base.tar", "");
  d.data(bytes(base));
  d.begin_manifest();
  d.data(bytes(manifest));
  EXPECT_THROW(d.begin_archive("16386.tar", "/x"), Error);
  d.finish();
  EXPECT_TRUE(d.saw_manifest());
  EXPECT_EQ(d.archives(), (std::vector<std::string>{"16385.tar", "base.tar"}));
  EXPECT_THROW(d.data(bytes(late)), Error);
  EXPECT_EQ(sink.events,
            (std::vector<std::string>{"begin 16385.tar [/ts]", "data ts", "end",
                                      "begin base.tar []", "data base", "end", "manifest {}"}));
}

// ------------------------------------------------------------------- storing archives

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "walvault-store-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string sample_tar(size_t file_bytes) {
  std::string content(file_bytes, '\0');
  for (size_t i = 0; i < content.size(); ++i) content[i] = char((i * 7919) % 251);
  std::string tar;
  TarEntry d;
  d.path = "base";
  d.type = TarEntryType::directory;
  d.mode = 0700;
  tar += tar_member_header(d);
  TarEntry f;
  f.path = "base/1";
  f.mode = 0600;
  f.size = content.size();
  tar += tar_member_header(f) + content + std::string(tar_padding_bytes(content.size()), '\0');
  return tar + tar_end_of_archive();
}

std::string decode(const fs::path& p) {
  std::string out;
  decode_lz4_file(p, [&](std::span<const std::byte> d) {
    out.append(reinterpret_cast<const char*>(d.data()), d.size());
  });
  return out;
}

void feed_in_pieces(BackupStreamSink& sink, const std::string& data, size_t piece) {
  for (size_t pos = 0; pos < data.size(); pos += piece) {
    sink.archive_data(as_bytes(std::string_view(data).substr(pos, piece)));
  }
}

TEST(ArchiveStore, PipelineStoresEachArchiveAsAVerifiedLz4Frame) {
  TempDir tmp;
  const std::string base = sample_tar(3 * 1024 * 1024 + 12345);  // more chunks than the pool
  const std::string ts = sample_tar(10);
  std::vector<StoredArchive> stored;
  std::string manifest;
  {
    ArchiveWriterPipeline pipe(tmp.path());
    BackupStreamDecoder dec(pipe);
    dec.on_message(new_archive("base.tar", ""));
    feed_in_pieces(pipe, base, 65537);
    dec.on_message(new_archive("16385.tar", "/srv/ts"));
    feed_in_pieces(pipe, ts, 100);
    dec.on_message(msg('m'));
    dec.on_message(msg('d', "{manifest}"));
    dec.finish();
    stored = pipe.finish();
    manifest = pipe.manifest();
    EXPECT_EQ(pipe.received_bytes(), base.size() + ts.size());
  }
  EXPECT_EQ(manifest, "{manifest}");
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].archive_name, "base.tar");
  EXPECT_EQ(stored[0].tablespace_oid, std::nullopt);
  EXPECT_EQ(stored[0].file.name, "base.tar.lz4");
  EXPECT_EQ(stored[0].file.bytes, base.size());
  EXPECT_EQ(stored[1].tablespace_oid, 16385u);
  EXPECT_EQ(stored[1].location, "/srv/ts");
  EXPECT_EQ(stored[1].file.name, "16385.tar.lz4");
  for (const auto& s : stored) {
    const fs::path p = tmp.path() / s.file.name;
    const std::string raw = read_file(p);
    EXPECT_EQ(raw.size(), s.file.stored_bytes);
    EXPECT_EQ(sha256_hex(raw), s.file.sha256);
  }
  EXPECT_EQ(decode(tmp.path() / "base.tar.lz4"), base);
  EXPECT_EQ(decode(tmp.path() / "16385.tar.lz4"), ts);
  EXPECT_LT(stored[0].file.stored_bytes, base.size());
  EXPECT_FALSE(fs::exists(tmp.path() / "base.tar.lz4.tmp"));
}

TEST(ArchiveStore, ACutArchiveFailsAndLeavesNothing) {
  TempDir tmp;
  const std::string base = sample_tar(600 * 1024);
  ArchiveWriterPipeline pipe(tmp.path());
  BackupStreamDecoder dec(pipe);
  dec.on_message(new_archive("base.tar", ""));
  feed_in_pieces(pipe, base.substr(0, base.size() - 2000), 8192);
  dec.finish();
  EXPECT_THROW(pipe.finish(), Error);
  EXPECT_TRUE(fs::is_empty(tmp.path()));
}

TEST(ArchiveStore, AWriterErrorReachesTheReceiver) {
  TempDir tmp;
  ArchiveWriterPipeline pipe(tmp.path() / "missing-dir");
  bool thrown = false;
  try {
    pipe.begin_archive("base.tar", "");
    feed_in_pieces(pipe, sample_tar(8 << 20), 1 << 20);
    pipe.end_archive();
    pipe.finish();
  } catch (const Error& e) {
    thrown = true;
    EXPECT_NE(std::string(e.what()).find("missing-dir"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(thrown);
}

TEST(ArchiveStore, AbandonedPipelineRemovesItsTempFile) {
  TempDir tmp;
  {
    ArchiveWriterPipeline pipe(tmp.path());
    pipe.begin_archive("base.tar", "");
    feed_in_pieces(pipe, sample_tar(1 << 20), 4096);
  }
  EXPECT_TRUE(fs::is_empty(tmp.path()));
}

}  // namespace
}  // namespace walvault
