// The S3 client against a real S3-compatible server (s3rver, which checks SigV4 signatures),
// started by tests/integration/s3_client.sh: WV_S3_ENDPOINT (http), WV_S3_TLS_ENDPOINT and
// WV_S3_CA_FILE (https with a self-signed CA), WV_S3_ACCESS_KEY/WV_S3_SECRET_KEY.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "core/error.h"
#include "core/hash.h"
#include "objectstore/s3_client.h"

namespace walvault::s3 {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) throw std::runtime_error(std::string(name) + " is not set (run s3_client.sh)");
  return v;
}

std::span<const std::byte> bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

S3Config config(const std::string& url, const std::string& endpoint) {
  S3Config c = parse_s3_url(url);
  c.endpoint = endpoint;
  c.uri_style = UriStyle::path;
  return c;
}

Credentials creds() {
  return {env("WV_S3_ACCESS_KEY"), env("WV_S3_SECRET_KEY"), ""};
}

class S3 : public ::testing::Test {
 protected:
  void SetUp() override {
    S3Client root(config("s3://walvault-test", env("WV_S3_ENDPOINT")), creds());
    root.create_bucket();
    root.create_bucket();  // a second time is fine: the bucket is ours
  }
  S3Client client(const std::string& prefix) {
    return S3Client(config("s3://walvault-test/" + prefix, env("WV_S3_ENDPOINT")), creds());
  }
};

TEST_F(S3, PutGetHeadRoundTrip) {
  auto c = client("roundtrip");
  const std::string body = "WAL bytes \x01\x02\x00 end";
  c.put("wal/00000001/a.lz4", bytes(body));
  auto got = c.get("wal/00000001/a.lz4");
  ASSERT_TRUE(got);
  EXPECT_EQ(body, *got);
  auto info = c.head("wal/00000001/a.lz4");
  ASSERT_TRUE(info);
  EXPECT_EQ(body.size(), info->size);
  EXPECT_EQ(sha256_hex(body), info->sha256);
  EXPECT_FALSE(c.get("wal/00000001/absent"));
  EXPECT_FALSE(c.head("wal/00000001/absent"));
}

TEST_F(S3, KeysWithSpacesPlusAndUtf8) {
  auto c = client("odd prefix+x");
  const std::string key = "dir/a b+c=d&e\xc3\xa9~.txt";
  c.put(key, bytes("x"));
  EXPECT_EQ("x", c.get(key).value_or("?"));
  auto listed = c.list("dir/");
  ASSERT_EQ(1u, listed.size());
  EXPECT_EQ(key, listed[0].key);
}

TEST_F(S3, CreateOnlyIsIdempotentAndNeverReplaces) {
  auto c = client("create-only");
  EXPECT_EQ(CreateResult::created, c.put_create_only("seg", bytes("one")));
  EXPECT_EQ(CreateResult::identical, c.put_create_only("seg", bytes("one")));
  try {
    c.put_create_only("seg", bytes("two"));
    FAIL() << "a different body was accepted";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(std::string::npos, m.find("already exists with different content"));
    EXPECT_NE(std::string::npos, m.find(sha256_hex("one")));
    EXPECT_NE(std::string::npos, m.find(sha256_hex("two")));
  }
  EXPECT_EQ("one", c.get("seg").value_or("?"));
}

TEST_F(S3, ListPagesThroughEverythingInKeyOrder) {
  auto c = client("list");
  for (const char* k : {"wal/3", "wal/1", "wal/2", "wal/10", "backups/x", "walnot/1"})
    c.put(k, bytes(k));
  auto all = c.list("wal/", 2);  // three pages
  ASSERT_EQ(4u, all.size());
  EXPECT_EQ("wal/1", all[0].key);
  EXPECT_EQ("wal/10", all[1].key);
  EXPECT_EQ("wal/2", all[2].key);
  EXPECT_EQ("wal/3", all[3].key);
  EXPECT_EQ(6u, all[1].size);  // "wal/10"
  EXPECT_EQ(6u, c.list("").size());
}

TEST_F(S3, RemoveIsIdempotent) {
  auto c = client("remove");
  c.put("k", bytes("v"));
  c.remove("k");
  EXPECT_FALSE(c.get("k"));
  c.remove("k");
}

TEST_F(S3, MultipartUploadOfALargeObject) {
  auto c = client("multipart");
  std::string big(12 * 1024 * 1024 + 12345, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131) ^ (i >> 9));
  c.put_multipart("backups/b/base.tar.lz4", bytes(big), 5 * 1024 * 1024);
  auto got = c.get("backups/b/base.tar.lz4");
  ASSERT_TRUE(got);
  EXPECT_EQ(big.size(), got->size());
  EXPECT_TRUE(*got == big);
  EXPECT_EQ(sha256_hex(big), c.head("backups/b/base.tar.lz4")->sha256);
}

TEST_F(S3, AWrongSecretIsRefusedWithAHint) {
  S3Client bad(config("s3://walvault-test/x", env("WV_S3_ENDPOINT")),
               {env("WV_S3_ACCESS_KEY"), "not-the-secret", ""});
  try {
    bad.put("k", bytes("v"));
    FAIL() << "a wrong signature was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string::npos, std::string(e.what()).find("HTTP 403 SignatureDoesNotMatch"))
        << e.what();
    EXPECT_NE(std::string::npos, e.hint().find("credentials"));
    EXPECT_EQ(std::string::npos, std::string(e.what()).find("not-the-secret"));
  }
  EXPECT_FALSE(client("x").get("k"));  // nothing was stored
}

// Run by s3_client.sh under faketime two hours in the past (WV_S3_EXPECT_SKEW=1).
TEST(S3Clock, ASkewedClockIsNamedWithItsSize) {
  if (!std::getenv("WV_S3_EXPECT_SKEW")) GTEST_SKIP() << "needs faketime (s3_client.sh)";
  S3Client c(config("s3://walvault-test/skew", env("WV_S3_ENDPOINT")), creds());
  try {
    c.put("k", bytes("v"));
    FAIL() << "a request two hours old was accepted";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(std::string::npos, m.find("this machine's clock is 7")) << m;  // 7200 s, give or take
    EXPECT_NE(std::string::npos, m.find(" s behind the store's")) << m;
    EXPECT_NE(std::string::npos, e.hint().find("NTP"));
  }
}

TEST_F(S3, AMissingBucketIsNamed) {
  S3Client c(config("s3://no-such-bucket/x", env("WV_S3_ENDPOINT")), creds());
  try {
    c.put("k", bytes("v"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string::npos, std::string(e.what()).find("NoSuchBucket")) << e.what();
  }
}

TEST(S3Tls, VerifiedAgainstTheGivenCa) {
  S3Config c = config("s3://walvault-test/tls", env("WV_S3_TLS_ENDPOINT"));
  c.ca_file = env("WV_S3_CA_FILE");
  S3Client ok(c, creds());
  ok.create_bucket();
  ok.put("k", bytes("over tls"));
  EXPECT_EQ("over tls", ok.get("k").value_or("?"));
}

TEST(S3Tls, AnUnknownCaIsRefused) {
  S3Config c = config("s3://walvault-test/tls", env("WV_S3_TLS_ENDPOINT"));
  S3Client untrusted(c, creds());  // the system's CAs only
  try {
    untrusted.get("k");
    FAIL() << "a self-signed certificate was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string::npos, std::string(e.what()).find("certificate")) << e.what();
  }
}

}  // namespace
}  // namespace walvault::s3
