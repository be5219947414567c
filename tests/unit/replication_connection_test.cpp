#include "walarchiver/replication_connection.h"

#include <gtest/gtest.h>

#include <vector>

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

std::vector<char> be64(uint64_t v) {
  std::vector<char> out(8);
  for (int i = 7; i >= 0; --i, v >>= 8) out[size_t(i)] = char(v & 0xff);
  return out;
}

TEST(ParseStreamMessage, XLogData) {
  std::vector<char> m{'w'};
  for (uint64_t v : {0x100000028ull, 0x1000000ffull, 12345ull}) {
    const auto b = be64(v);
    m.insert(m.end(), b.begin(), b.end());
  }
  m.insert(m.end(), {'a', 'b', 'c'});
  const StreamMessage s = parse_stream_message(m);
  EXPECT_EQ(s.kind, StreamMessage::Kind::xlog_data);
  EXPECT_EQ(s.data_start, Lsn(0x100000028ull));
  EXPECT_EQ(s.wal_end, Lsn(0x1000000ffull));
  EXPECT_EQ(s.server_time_us, 12345);
  ASSERT_EQ(s.data.size(), 3u);
  EXPECT_EQ(s.data.data(), reinterpret_cast<const std::byte*>(m.data() + 25));
}

TEST(ParseStreamMessage, Keepalive) {
  std::vector<char> m{'k'};
  for (uint64_t v : {0x2000ull, 7ull}) {
    const auto b = be64(v);
    m.insert(m.end(), b.begin(), b.end());
  }
  m.push_back(1);
  const StreamMessage s = parse_stream_message(m);
  EXPECT_EQ(s.kind, StreamMessage::Kind::keepalive);
  EXPECT_EQ(s.wal_end, Lsn(0x2000));
  EXPECT_EQ(s.server_time_us, 7);
  EXPECT_TRUE(s.reply_requested);
}

TEST(ParseStreamMessage, TruncatedOrUnknownIsAnError) {
  EXPECT_THROW(parse_stream_message(std::vector<char>{'w', 0, 0}), Error);
  EXPECT_THROW(parse_stream_message(std::vector<char>{'k', 0}), Error);
  EXPECT_THROW(parse_stream_message(std::vector<char>{'x', 0, 0, 0}), Error);
  EXPECT_THROW(parse_stream_message(std::vector<char>{}), Error);
}

}  // namespace
}  // namespace walvault
