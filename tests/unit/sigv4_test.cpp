// AWS Signature Version 4: AWS's published test suite (service "service", 2015-08-30) and the
// S3 examples of the S3 API reference (bucket "examplebucket", 2013-05-24). Each case gives
// the request as sent and the signature AWS publishes for it.
#include "objectstore/sigv4.h"

#include <gtest/gtest.h>

namespace walvault::s3 {
namespace {

constexpr char kEmptySha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct Vector {
  const char* name;
  RequestToSign request;
  std::string session_token;
  const char* expected_signature;
};

Credentials suite_creds(std::string token = {}) {
  return {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", std::move(token)};
}

std::string signature_of(RequestToSign r, const Credentials& c, const SigningScope& scope,
                         const std::string& date) {
  const std::string auth = sign(r, c, scope, date);
  const auto at = auth.find("Signature=");
  return at == std::string::npos ? auth : auth.substr(at + 10);
}

class AwsSuite : public ::testing::TestWithParam<Vector> {};

TEST_P(AwsSuite, SignsAsPublished) {
  const Vector& v = GetParam();
  EXPECT_EQ(v.expected_signature, signature_of(v.request, suite_creds(v.session_token),
                                               {"us-east-1", "service"}, "20150830T123600Z"))
      << v.name;
}

RequestToSign req(std::string method, std::string path, NameValues query, NameValues extra,
                  std::string payload = kEmptySha256) {
  RequestToSign r{std::move(method), std::move(path), std::move(query), {}, std::move(payload)};
  r.headers.emplace_back("Host", "example.amazonaws.com");
  for (auto& h : extra) r.headers.push_back(std::move(h));
  return r;
}

INSTANTIATE_TEST_SUITE_P(
    Sigv4TestSuite, AwsSuite,
    ::testing::Values(
        Vector{"get-vanilla",
               req("GET", "/", {}, {}),
               {},
               "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
        Vector{"get-vanilla-query-order-key-case",
               req("GET", "/", {{"Param2", "value2"}, {"Param1", "value1"}}, {}),
               {},
               "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
        Vector{"get-vanilla-query-unreserved",
               req("GET", "/",
                   {{"-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                     "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"}},
                   {}),
               {},
               "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
        Vector{"get-vanilla-utf8-query",
               req("GET", "/", {{"\xe1\x88\xb4", "bar"}}, {}),
               {},
               "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
        Vector{"get-vanilla-empty-query-key",
               req("GET", "/", {{"Param1", "value1"}}, {}),
               {},
               "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"},
        Vector{"get-utf8",
               req("GET", "/\xe1\x88\xb4", {}, {}),
               {},
               "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
        Vector{"get-space-unnormalized",
               req("GET", "/example space/", {}, {}),
               {},
               "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"},
        Vector{"get-slashes-unnormalized",
               req("GET", "//example//", {}, {}),
               {},
               "87cca117541a147f6df867677d98a7d80dff226d2bfca9e4ffa899665623c7e5"},
        Vector{"get-header-value-trim",
               req("GET", "/", {}, {{"My-Header1", " value1"}, {"My-Header2", " \"a   b   c\""}}),
               {},
               "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
        Vector{"get-header-key-duplicate",
               req("GET", "/", {},
                   {{"My-Header1", "value2"}, {"My-Header1", "value2"}, {"My-Header1", "value1"}}),
               {},
               "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"},
        Vector{"post-header-key-sort",
               req("POST", "/", {}, {{"My-Header1", "value1"}}),
               {},
               "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"},
        Vector{"post-x-www-form-urlencoded",
               req("POST", "/", {},
                   {{"Content-Type", "application/x-www-form-urlencoded"},
                    {"Content-Length", "13"},
                    {"x-amz-content-sha256",
                     "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"}},
                   "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"),
               {},
               "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"},
        Vector{"get-vanilla-with-session-token", req("GET", "/", {}, {}),
               "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267",
               "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"}),
    [](const ::testing::TestParamInfo<Vector>& info) {
      std::string n = info.param.name;
      for (char& c : n)
        if (c == '-') c = '_';
      return n;
    });

TEST(Sigv4, TheCanonicalRequestOfTheSuiteSortsQueryAndHeaders) {
  RequestToSign r = req("GET", "/", {{"Param2", "value2"}, {"Param1", "value1"}}, {});
  r.headers.emplace_back("X-Amz-Date", "20150830T123600Z");
  std::string names;
  EXPECT_EQ(
      "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\n"
      "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" +
          std::string(kEmptySha256),
      canonical_request(r, &names));
  EXPECT_EQ("host;x-amz-date", names);
}

// The S3 API reference's examples ("Signature Calculations for the Authorization Header").
const Credentials kS3Creds{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
const SigningScope kS3Scope{"us-east-1", "s3"};

TEST(Sigv4, S3GetObjectWithRange) {
  RequestToSign r{"GET", "/test.txt", {}, {}, kEmptySha256};
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
               {"Range", "bytes=0-9"},
               {"x-amz-content-sha256", kEmptySha256}};
  RequestToSign copy = r;
  EXPECT_EQ(
      "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
      "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
      "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
      sign(copy, kS3Creds, kS3Scope, "20130524T000000Z"));
}

TEST(Sigv4, S3PutObjectEncodesTheKeyOnce) {
  const std::string body_sha = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
  RequestToSign r{"PUT", "/test$file.text", {}, {}, body_sha};
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
               {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
               {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
               {"x-amz-content-sha256", body_sha}};
  EXPECT_EQ("98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
            signature_of(r, kS3Creds, kS3Scope, "20130524T000000Z"));
}

TEST(Sigv4, S3ListObjectsSortsTheQuery) {
  RequestToSign r{"GET", "/", {{"prefix", "J"}, {"max-keys", "2"}}, {}, kEmptySha256};
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"}, {"x-amz-content-sha256", kEmptySha256}};
  EXPECT_EQ("34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
            signature_of(r, kS3Creds, kS3Scope, "20130524T000000Z"));
}

TEST(Sigv4, QueryValuesEncodeSlashPathsKeepIt) {
  EXPECT_EQ("wal%2F00000001%2F", uri_encode("wal/00000001/", false));
  EXPECT_EQ("/bucket/wal/00000001/a%20b%2Bc", uri_encode("/bucket/wal/00000001/a b+c", true));
}

TEST(Sigv4, AmzDateIsSixteenCharactersOfUtc) {
  const std::string d = amz_date_now();
  ASSERT_EQ(16u, d.size());
  EXPECT_EQ('T', d[8]);
  EXPECT_EQ('Z', d[15]);
}

}  // namespace
}  // namespace walvault::s3
