#include "walarchiver/replication_connection.h"

#include <gtest/gtest.h>

namespace walvault {
namespace {

TEST(ParsePgSize, ParsesGucUnits) {
  EXPECT_EQ(parse_pg_size("1MB"), 1u << 20);
  EXPECT_EQ(parse_pg_size("16MB"), 16u << 20);
  EXPECT_EQ(parse_pg_size("1GB"), 1u << 30);
  EXPECT_EQ(parse_pg_size("512kB"), 512u << 10);
  EXPECT_EQ(parse_pg_size("8192"), 8192u);
  EXPECT_EQ(parse_pg_size("MB"), 0u);
  EXPECT_EQ(parse_pg_size("16XB"), 0u);
}

TEST(ReplicationConnection, UnreachableServerIsAConnectionError) {
  try {
    ReplicationConnection::connect("host=/nonexistent-walvault-socket-dir port=1");
    FAIL() << "connect succeeded";
  } catch (const ConnectionLost& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("could not connect to the server: ", 0), 0u) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    EXPECT_FALSE(e.hint().empty());
  }
}

}  // namespace
}  // namespace walvault
