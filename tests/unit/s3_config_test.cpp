#include "objectstore/s3_config.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "objectstore/s3_client.h"
#include "objectstore/s3_credentials.h"

namespace walvault::s3 {
namespace {

TEST(S3Config, ParsesBucketAndPrefix) {
  auto c = parse_s3_url("s3://my-backups/authentik/prod/");
  EXPECT_EQ("my-backups", c.bucket);
  EXPECT_EQ("authentik/prod", c.prefix);
  EXPECT_EQ("", parse_s3_url("s3://my-backups").prefix);
  EXPECT_EQ("", parse_s3_url("s3://my-backups/").prefix);
}

TEST(S3Config, RefusesWhatS3WouldRefuse) {
  for (const char* bad : {"s3://", "s3://ab", "s3://Upper", "s3://-dash", "s3://b_x/p",
                          "s3://bucket/a//b", "s3://bucket/../x", "/local/path"}) {
    EXPECT_THROW(parse_s3_url(bad), Error) << bad;
  }
}

TEST(S3Config, PathStyleForSelfHostedEndpoints) {
  S3Config c = parse_s3_url("s3://bucket/pre fix");
  c.endpoint = "http://127.0.0.1:9000";
  auto t = request_target(c, "wal/00000001/x.lz4");
  EXPECT_EQ("127.0.0.1:9000", t.host);
  EXPECT_EQ("/bucket/pre fix/wal/00000001/x.lz4", t.path);
  EXPECT_EQ("http://127.0.0.1:9000/bucket/pre%20fix/wal/00000001/x.lz4", t.url);
  EXPECT_EQ("/bucket", request_target(c, "").path);
}

TEST(S3Config, HostStyleForAwsUnlessTheBucketHasDots) {
  S3Config c = parse_s3_url("s3://bucket/p");
  c.region = "eu-west-1";
  auto t = request_target(c, "k");
  EXPECT_EQ("bucket.s3.eu-west-1.amazonaws.com", t.host);
  EXPECT_EQ("/p/k", t.path);
  EXPECT_EQ("https://bucket.s3.eu-west-1.amazonaws.com/p/k", t.url);
  S3Config dotted = parse_s3_url("s3://my.bucket/p");
  EXPECT_EQ("/my.bucket/p/k", request_target(dotted, "k").path);
  c.uri_style = UriStyle::path;
  EXPECT_EQ("s3.eu-west-1.amazonaws.com", request_target(c, "k").host);
  EXPECT_THROW(parse_uri_style("virtual"), Error);
}

GetEnv env_of(std::map<std::string, std::string> m) {
  return [m](const char* n) -> std::optional<std::string> {
    auto it = m.find(n);
    if (it == m.end()) return std::nullopt;
    return it->second;
  };
}

TEST(S3Credentials, EnvironmentFirst) {
  auto c = load_credentials(env_of({{"AWS_ACCESS_KEY_ID", "id"},
                                    {"AWS_SECRET_ACCESS_KEY", "secret"},
                                    {"AWS_SESSION_TOKEN", "tok"}}));
  EXPECT_EQ("id", c.access_key_id);
  EXPECT_EQ("secret", c.secret_access_key);
  EXPECT_EQ("tok", c.session_token);
}

TEST(S3Credentials, HalfAPairIsAnErrorThatNamesNoSecret) {
  try {
    load_credentials(env_of({{"AWS_SECRET_ACCESS_KEY", "s3cr3t-value"}}));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string::npos, std::string(e.what()).find("only AWS_SECRET_ACCESS_KEY"));
    EXPECT_EQ(std::string::npos, std::string(e.what()).find("s3cr3t-value"));
  }
}

TEST(S3Credentials, ProfilesOfTheCredentialsFile) {
  const std::string text =
      "# comment\n[default]\naws_access_key_id = A1\naws_secret_access_key=S1\n\n"
      "[profile backup]\naws_access_key_id=A2\naws_secret_access_key = S2\naws_session_token=T2\n";
  auto d = credentials_from_file(text, "default", "creds");
  ASSERT_TRUE(d);
  EXPECT_EQ("A1", d->access_key_id);
  EXPECT_EQ("S1", d->secret_access_key);
  auto b = credentials_from_file(text, "backup", "creds");
  ASSERT_TRUE(b);
  EXPECT_EQ("T2", b->session_token);
  EXPECT_FALSE(credentials_from_file(text, "other", "creds"));
  try {
    credentials_from_file("[default]\naws_secret_access_key S3CRET\n", "default", "creds");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ("creds:2: a line without '='", e.what());
  }
}

TEST(S3Credentials, NothingAnywhereSaysWhereItLooked) {
  try {
    load_credentials(env_of({{"HOME", "/nonexistent-home"}}));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string::npos, std::string(e.what()).find("/nonexistent-home/.aws/credentials"));
  }
}

TEST(S3Errors, XmlErrorBodiesAndHttpDates) {
  EXPECT_EQ("NoSuchKey: The specified key does not exist.",
            s3_error_text("<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>The "
                          "specified key does not exist.</Message></Error>"));
  EXPECT_EQ("", s3_error_text("not xml"));
  EXPECT_EQ("", s3_error_text("<ListBucketResult/>"));
  EXPECT_EQ(1796373660, parse_http_date("Fri, 04 Dec 2026 08:41:00 GMT").value_or(0));
  EXPECT_FALSE(parse_http_date("yesterday"));
}

}  // namespace
}  // namespace walvault::s3
