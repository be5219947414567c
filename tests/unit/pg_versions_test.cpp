#include "core/pg_versions.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace walvault {
namespace {

TEST(PgVersions, SupportedRange) {
  for (int major = 14; major <= 18; ++major) {
    EXPECT_TRUE(is_supported_major(major)) << major;
    EXPECT_NO_THROW(require_supported_major(major, "the server"));
  }
  EXPECT_FALSE(is_supported_major(13));
  EXPECT_FALSE(is_supported_major(19));
  EXPECT_EQ(pg_major_of(140023), 14);
  EXPECT_EQ(pg_major_of(180004), 18);
  EXPECT_EQ(supported_majors_text(), "14, 15, 16, 17 and 18");
}

TEST(PgVersions, RefusalsSayWhatAndWhatToDo) {
  try {
    require_supported_major(13, "the server");
    FAIL() << "13 accepted";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "the server runs PostgreSQL 13, which this walvault does not support");
    EXPECT_NE(e.hint().find("14, 15, 16, 17 and 18"), std::string::npos) << e.hint();
    EXPECT_NE(e.hint().find("pg_upgrade"), std::string::npos) << e.hint();
  }
  try {
    require_supported_major(19, "the server");
    FAIL() << "19 accepted";
  } catch (const Error& e) {
    EXPECT_NE(e.hint().find("supports PostgreSQL 19"), std::string::npos) << e.hint();
  }
}

// The magics were read from the first page of a WAL segment written by each major's initdb.
TEST(PgVersions, WalPageMagicPerMajor) {
  EXPECT_EQ(wal_page_magic(14), 0xD10D);
  EXPECT_EQ(wal_page_magic(15), 0xD110);
  EXPECT_EQ(wal_page_magic(16), 0xD113);
  EXPECT_EQ(wal_page_magic(17), 0xD116);
  EXPECT_EQ(wal_page_magic(18), 0xD118);
  EXPECT_FALSE(wal_page_magic(13));
  for (int major = 14; major <= 18; ++major) {
    EXPECT_EQ(major_of_wal_page_magic(*wal_page_magic(major)), major);
  }
  EXPECT_FALSE(major_of_wal_page_magic(0xD10A));
}

}  // namespace
}  // namespace walvault
