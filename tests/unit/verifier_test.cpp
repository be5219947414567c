#include "pitr/verifier.h"

#include <gtest/gtest.h>

namespace walvault {
namespace {

TEST(VerifySql, SplitsAtSemicolonsAtLineEndsAndSkipsComments) {
  const auto q = split_verify_sql(
      "-- a comment\n"
      "select count(*) = 3 from t;\n"
      "\n"
      "select max(id) = 3\n"
      "  from t;\n"
      "  -- indented comment\n"
      "select 'a;b' = 'a;b'\n");
  ASSERT_EQ(q.size(), 3u);
  EXPECT_EQ(q[0], "select count(*) = 3 from t");
  EXPECT_EQ(q[1], "select max(id) = 3\n  from t");
  EXPECT_EQ(q[2], "select 'a;b' = 'a;b'");
  EXPECT_TRUE(split_verify_sql("-- nothing\n\n").empty());
}

WalEvent commit(uint32_t xid) {
  WalEvent e;
  e.kind = WalEventKind::commit;
  e.xid = xid;
  return e;
}

TEST(VerifyStop, MatchesTheServersStopLineToThePlan) {
  RecoveryStop before{RecoveryStop::Where::before_record, commit(745), Lsn(1)};
  EXPECT_TRUE(stop_message_matches(
      before, "recovery stopping before commit of transaction 745, time 2026-12-03 14:05:00+00"));
  EXPECT_FALSE(stop_message_matches(
      before, "recovery stopping before commit of transaction 7450, time 2026-12-03 14:05:00+00"));
  EXPECT_FALSE(stop_message_matches(
      before, "recovery stopping after commit of transaction 745, time 2026-12-03 14:05:00+00"));
  EXPECT_FALSE(stop_message_matches(before, ""));

  WalEvent rp;
  rp.kind = WalEventKind::restore_point;
  rp.name = "before upgrade";
  RecoveryStop name{RecoveryStop::Where::after_record, rp, Lsn(1)};
  EXPECT_TRUE(stop_message_matches(
      name, "recovery stopping at restore point \"before upgrade\", time 2026-12-03 14:05:00+00"));
  EXPECT_FALSE(stop_message_matches(
      name, "recovery stopping at restore point \"before\", time 2026-12-03 14:05:00+00"));

  RecoveryStop at_lsn{RecoveryStop::Where::at_lsn, std::nullopt, Lsn(1)};
  EXPECT_TRUE(
      stop_message_matches(at_lsn, "recovery stopping after WAL location (LSN) \"0/B7C658\""));
  RecoveryStop immediate{RecoveryStop::Where::at_consistency, std::nullopt, Lsn(1)};
  EXPECT_TRUE(stop_message_matches(immediate, "recovery stopping after reaching consistency"));
  RecoveryStop latest{RecoveryStop::Where::end_of_wal, std::nullopt, Lsn(1)};
  EXPECT_TRUE(stop_message_matches(latest, ""));
  EXPECT_FALSE(stop_message_matches(latest, "recovery stopping after reaching consistency"));
}

}  // namespace
}  // namespace walvault
