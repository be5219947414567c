// redact_secrets: every way libpq accepts a password is masked, nothing else changes.

#include "core/secrets.h"

#include <gtest/gtest.h>

#include <string>

namespace walvault {
namespace {

TEST(Secrets, KeywordValueStrings) {
  EXPECT_EQ(redact_secrets("host=db password=s3cret user=wv"), "host=db password=******** user=wv");
  EXPECT_EQ(redact_secrets("password = 's3 cr\\'et' port=5432"), "password = '********' port=5432");
  EXPECT_EQ(redact_secrets("PASSWORD=x"), "PASSWORD=********");
  EXPECT_EQ(redact_secrets("sslpassword=keypw sslmode=verify-full"),
            "sslpassword=******** sslmode=verify-full");
  EXPECT_EQ(redact_secrets("password=a&b#c host=x"), "password=******** host=x");
  EXPECT_EQ(redact_secrets("password='unterminated"), "password='********");
}

TEST(Secrets, Uris) {
  EXPECT_EQ(redact_secrets("postgresql://wv:s3cret@db:5432/postgres"),
            "postgresql://wv:********@db:5432/postgres");
  EXPECT_EQ(redact_secrets("postgres://wv:p@ss@db/x?sslmode=require"),
            "postgres://wv:********@db/x?sslmode=require");
  EXPECT_EQ(redact_secrets("postgresql://db/x?user=wv&password=s3cret&sslmode=require"),
            "postgresql://db/x?user=wv&password=********&sslmode=require");
  EXPECT_EQ(redact_secrets("postgresql://wv@db/x"), "postgresql://wv@db/x");
}

TEST(Secrets, OtherTextIsKept) {
  for (const std::string text :
       {"", "host=db passfile=/etc/wv/pgpass", "password authentication failed for user \"wv\"",
        "my_password=1", "the password is wrong", "check --dbname"}) {
    EXPECT_EQ(redact_secrets(text), text);
    EXPECT_FALSE(has_secrets(text));
  }
  EXPECT_TRUE(has_secrets("dbname='host=x password=y'"));
}

TEST(Secrets, InPlaceKeepsTheLength) {
  std::string arg = "host=db password=ab user=wv";
  redact_secrets_in_place(arg.data());
  EXPECT_EQ(std::string(arg.c_str()), "host=db password=******** u");
  EXPECT_EQ(arg.find("ab"), std::string::npos);
  std::string plain = "--repo";
  redact_secrets_in_place(plain.data());
  EXPECT_EQ(plain, "--repo");
}

}  // namespace
}  // namespace walvault
