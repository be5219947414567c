#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "archiver_test_util.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/lz4_frame.h"
#include "core/object_store.h"
#include "snapshot_test_util.h"

namespace walvault {
namespace {

using testing::TempDir;

void flip_byte(const fs::path& p, off_t offset) {
  UniqueFd fd(::open(p.c_str(), O_RDWR));
  char c;
  ASSERT_EQ(::pread(fd.get(), &c, 1, offset), 1);
  c ^= 0x20;
  ASSERT_EQ(::pwrite(fd.get(), &c, 1, offset), 1);
}

TEST(SnapshotObjectStore, PutGetRoundTripAndDeduplicate) {
  TempDir tmp;
  ObjectStore store(tmp.path() / "store");
  const std::string text(100000, 'x');
  const PutResult a = store.put(as_bytes(text));
  EXPECT_TRUE(a.added);
  EXPECT_EQ(a.sha256, sha256_hex(text));
  EXPECT_EQ(store.object_path(a.sha256),
            tmp.path() / "store" / a.sha256.substr(0, 2) / (a.sha256 + ".lz4"));
  EXPECT_LT(a.stored_bytes, 2000u);                       // compressed
  EXPECT_FALSE(fs::exists(store.object_path(a.sha256)));  // not before sync()
  const PutResult b = store.put(as_bytes(text));
  EXPECT_FALSE(b.added);
  EXPECT_EQ(b.stored_bytes, a.stored_bytes);
  store.sync();
  EXPECT_FALSE(store.put(as_bytes(text)).added);

  std::vector<std::byte> out;
  store.get(a.sha256, out);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(out.data()), out.size()), text);
  EXPECT_EQ(store.list(), std::vector<std::string>{a.sha256});
  // No temporary file is left next to the object.
  size_t files = 0;
  for (const auto& e : fs::recursive_directory_iterator(tmp.path() / "store")) {
    files += e.is_regular_file() ? 1 : 0;
  }
  EXPECT_EQ(files, 1u);
}

TEST(SnapshotObjectStore, ObjectIsAStandardLz4Frame) {
  TempDir tmp;
  ObjectStore store(tmp.path() / "store");
  const std::string data = testing::random_bytes(700000, 5) + std::string(300000, 'z');
  const PutResult r = store.put(as_bytes(data));
  store.sync();
  std::string decoded;
  decode_lz4_file(store.object_path(r.sha256), [&](std::span<const std::byte> part) {
    decoded.append(reinterpret_cast<const char*>(part.data()), part.size());
  });
  EXPECT_EQ(decoded, data);
  const ObjectCheck c = store.check(r.sha256);
  EXPECT_TRUE(c.ok) << c.problem;
  EXPECT_EQ(c.bytes, data.size());
  EXPECT_EQ(c.stored_bytes, r.stored_bytes);
}

TEST(SnapshotObjectStore, UnsyncedObjectsLeaveNoTemporaryFiles) {
  TempDir tmp;
  {
    ObjectStore store(tmp.path() / "store");
    store.put(as_bytes(std::string("never synced")));
  }
  for (const auto& e : fs::recursive_directory_iterator(tmp.path() / "store")) {
    EXPECT_FALSE(e.is_regular_file()) << e.path();
  }
}

TEST(SnapshotObjectStore, ManyObjectsAreFlushedInBatches) {
  TempDir tmp;
  ObjectStore store(tmp.path() / "store");
  std::vector<std::string> names;
  for (size_t i = 0; i < ObjectStore::kMaxPendingObjects + 5; ++i) {
    names.push_back(store.put(as_bytes("object " + std::to_string(i))).sha256);
  }
  // The first batch went to its final names when it was full, the rest waits for sync().
  EXPECT_EQ(store.list().size(), ObjectStore::kMaxPendingObjects);
  store.sync();
  std::sort(names.begin(), names.end());
  EXPECT_EQ(store.list(), names);
}

TEST(SnapshotObjectStore, EmptyContent) {
  TempDir tmp;
  ObjectStore store(tmp.path() / "store");
  const PutResult r = store.put(std::span<const std::byte>{});
  store.sync();
  std::vector<std::byte> out{std::byte(1)};
  store.get(r.sha256, out);
  EXPECT_TRUE(out.empty());
}

TEST(SnapshotObjectStore, DamageIsDetectedAndNamed) {
  TempDir tmp;
  ObjectStore store(tmp.path() / "store");
  const std::string data = testing::random_bytes(50000, 9);
  const PutResult r = store.put(as_bytes(data));
  store.sync();
  const fs::path path = store.object_path(r.sha256);
  flip_byte(path, 1000);
  const ObjectCheck c = store.check(r.sha256);
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.problem, "damaged: block checksum mismatch");
  std::vector<std::byte> out;
  try {
    store.get(r.sha256, out);
    FAIL() << "damaged object was returned";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "object \"" + path.string() + "\" is damaged (block checksum mismatch)");
  }
}

TEST(SnapshotObjectStore, WellFormedFrameWithOtherContentDoesNotMatchItsName) {
  TempDir tmp;
  ObjectStore store(tmp.path() / "store");
  const PutResult a = store.put(as_bytes(std::string("first")));
  const PutResult b = store.put(as_bytes(std::string("second")));
  store.sync();
  fs::copy_file(store.object_path(b.sha256), store.object_path(a.sha256),
                fs::copy_options::overwrite_existing);
  EXPECT_EQ(store.check(a.sha256).problem, "content does not match its name (SHA-256)");
}

TEST(SnapshotObjectStore, MissingAndTruncated) {
  TempDir tmp;
  ObjectStore store(tmp.path() / "store");
  EXPECT_EQ(store.check(std::string(64, 'a')).problem, "missing");
  const PutResult r = store.put(as_bytes(testing::random_bytes(10000, 2)));
  store.sync();
  fs::resize_file(store.object_path(r.sha256), r.stored_bytes - 2);
  EXPECT_EQ(store.check(r.sha256).problem, "damaged: truncated content checksum");
}

}  // namespace
}  // namespace walvault
