// The receive loop over a scripted ReplicationSource: no server, exact expectations on what
// is written, what is reported as flushed, and when.

#include "walarchiver/wal_receiver.h"

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <map>

#include "archiver_test_util.h"
#include "core/error.h"
#include "core/io.h"
#include "core/wal_inventory.h"
#include "walarchiver/start_position.h"

namespace walvault {
namespace {

using testing::kTestSegmentSize;
using testing::TempDir;

struct Status {
  Lsn write, flush;
  bool reply_requested;
  size_t after_messages;  // how many scripted messages had been handed out
};

// A server in a script: each step is handed out by next_message in order.
class ScriptedSource final : public ReplicationSource {
 public:
  struct Step {
    StreamMessage::Kind kind;
    Lsn start;           // xlog_data: where the data starts
    size_t bytes = 0;    // xlog_data: how many bytes (taken from wal_ at start)
    Lsn wal_end;         // keepalive
    bool reply = false;  // keepalive
  };

  explicit ScriptedSource(std::vector<std::byte> wal, Lsn wal_base)
      : wal_(std::move(wal)), wal_base_(wal_base) {}

  // Data [from, to) in messages of chunk bytes.
  void add_data(Lsn from, Lsn to, size_t chunk = 60'000) {
    for (Lsn at = from; at < to;) {
      const size_t n = size_t(std::min<uint64_t>(chunk, to - at));
      script.push_back({StreamMessage::Kind::xlog_data, at, n, {}, false});
      at = at + n;
    }
  }
  void add_keepalive(Lsn wal_end, bool reply) {
    script.push_back({StreamMessage::Kind::keepalive, {}, 0, wal_end, reply});
  }
  void add_idle() { script.push_back({StreamMessage::Kind::timeout, {}, 0, {}, false}); }
  void add_copy_done() { script.push_back({StreamMessage::Kind::copy_done, {}, 0, {}, false}); }

  SystemInfo identify_system() override { return server; }
  std::string timeline_history(TimelineId tli) override {
    auto it = histories.find(tli.value);
    if (it == histories.end()) throw Error("no history for timeline " + std::to_string(tli.value));
    return it->second;
  }
  std::optional<ReplicationSlotInfo> read_replication_slot(const std::string&) override {
    return slot;
  }
  void create_physical_slot(const std::string&) override {}

  void start_streaming(const std::string& slot_name, Lsn start, TimelineId tli) override {
    starts.push_back({start, tli});
    (void)slot_name;
    ended_by_client = false;
  }
  StreamMessage next_message(int) override {
    StreamMessage m;
    if (ended_by_client) {
      // After our CopyDone the server finishes with its own.
      m.kind = StreamMessage::Kind::copy_done;
      return m;
    }
    if (script.empty()) throw ConnectionLost("the script ended");
    const Step step = script.front();
    script.pop_front();
    ++handed_out;
    m.kind = step.kind;
    if (step.kind == StreamMessage::Kind::xlog_data) {
      m.data_start = step.start;
      m.wal_end = step.start + step.bytes;
      m.data = std::span(wal_).subspan(step.start - wal_base_, step.bytes);
    } else if (step.kind == StreamMessage::Kind::keepalive) {
      m.wal_end = step.wal_end;
      m.reply_requested = step.reply;
    }
    return m;
  }
  void send_status(Lsn write, Lsn flush, Lsn, bool reply) override {
    statuses.push_back({write, flush, reply, handed_out});
    if (on_status) on_status(flush);
  }
  void end_copy() override { ended_by_client = true; }
  StreamEnd finish_streaming() override {
    StreamEnd end;
    if (!ended_by_client && !timeline_ends.empty()) {
      end = timeline_ends.front();
      timeline_ends.pop_front();
    }
    ++finished;
    return end;
  }

  SystemInfo server{"7300000000000000001", TimelineId(1), Lsn()};
  std::map<uint32_t, std::string> histories;
  std::optional<ReplicationSlotInfo> slot;
  std::deque<Step> script;
  std::deque<StreamEnd> timeline_ends;  // answers to finish_streaming after a server CopyDone
  std::vector<std::pair<Lsn, TimelineId>> starts;
  std::vector<Status> statuses;
  std::function<void(Lsn)> on_status;
  size_t handed_out = 0;
  bool ended_by_client = false;
  int finished = 0;

 private:
  std::vector<std::byte> wal_;
  Lsn wal_base_;
};

std::string content_of(const fs::path& path) {
  std::string out;
  decode_lz4_file(path, [&](std::span<const std::byte> part) {
    out.append(reinterpret_cast<const char*>(part.data()), part.size());
  });
  return out;
}

std::string slice(const std::vector<std::byte>& wal, uint64_t from, uint64_t n) {
  return std::string(reinterpret_cast<const char*>(wal.data() + from), n);
}

class WalReceiverTest : public ::testing::Test {
 protected:
  TempDir tmp_;
  Repository repo_ = testing::make_test_repo(tmp_.path());
  PwriteWriter writer_;
  const Lsn base_ = segment_start(SegmentNo(4), kTestSegmentSize);
  const std::vector<std::byte> wal_ = testing::wal_like_bytes(4 * kTestSegmentSize, 21);
};

TEST_F(WalReceiverTest, StopsAtEndposWithEverythingDurableAndReported) {
  ScriptedSource source(wal_, base_);
  const Lsn endpos = base_ + 2 * kTestSegmentSize + 123'456;
  source.add_data(base_, base_ + 3 * kTestSegmentSize);  // the server has more than endpos
  SegmentSink sink(repo_, Compression::lz4, writer_);
  StreamOptions options;
  options.endpos = endpos;
  WalReceiver receiver(source, repo_, sink, options);

  const StreamResult result = receiver.stream(TimelineId(1), base_);

  EXPECT_EQ(result.reason, StreamStop::endpos_reached);
  EXPECT_GE(result.durable, endpos);
  EXPECT_LT(result.durable, endpos + 60'000);  // at most the message that crossed endpos
  ASSERT_EQ(source.starts.size(), 1u);
  EXPECT_EQ(source.starts[0].first, base_);
  EXPECT_TRUE(source.ended_by_client);
  EXPECT_EQ(source.finished, 1);
  // The last status reports the durable end as flushed, and it was sent before CopyDone.
  ASSERT_FALSE(source.statuses.empty());
  EXPECT_EQ(source.statuses.back().flush, result.durable);
  EXPECT_EQ(source.statuses.back().write, result.durable);
  // Every status ever sent claimed only what was durable at the time: never more than what
  // the completed segments or flushes covered (checked here: flush <= write, and flush is a
  // segment boundary until the final flush).
  for (size_t i = 0; i + 1 < source.statuses.size(); ++i) {
    EXPECT_LE(source.statuses[i].flush, source.statuses[i].write);
    EXPECT_EQ(segment_offset(source.statuses[i].flush, kTestSegmentSize), 0u);
  }
  // Two complete segments, the third stays .partial with exactly the durable bytes.
  for (uint64_t i = 0; i < 2; ++i) {
    EXPECT_EQ(
        content_of(repo_.segment_path(TimelineId(1), SegmentNo(4 + i), Compression::lz4, false)),
        slice(wal_, i * kTestSegmentSize, kTestSegmentSize));
  }
  const fs::path partial = repo_.segment_path(TimelineId(1), SegmentNo(6), Compression::lz4, true);
  EXPECT_EQ(content_of(partial),
            slice(wal_, 2 * kTestSegmentSize, result.durable - base_ - 2 * kTestSegmentSize));
}

TEST_F(WalReceiverTest, AnswersAKeepaliveAskingForAReplyAfterMakingWhatArrivedDurable) {
  ScriptedSource source(wal_, base_);
  const Lsn mid = base_ + 300'000;
  source.add_data(base_, mid);
  source.add_keepalive(mid, /*reply=*/false);
  source.add_keepalive(mid, /*reply=*/true);
  source.add_data(mid, base_ + kTestSegmentSize + 10);
  source.add_keepalive(base_ + kTestSegmentSize + 10, /*reply=*/true);
  SegmentSink sink(repo_, Compression::lz4, writer_);
  StreamOptions options;
  options.endpos = base_ + kTestSegmentSize + 20;  // not reached: the script ends first
  options.status_interval_ms = 3'600'000;          // no timer-driven status in this test
  WalReceiver receiver(source, repo_, sink, options);
  EXPECT_THROW(receiver.stream(TimelineId(1), base_), ConnectionLost);

  // Initial status, no answer to the keepalive that does not ask, then an answer to each
  // one that asks: it comes at once and reports what arrived as flushed, because it was
  // made durable first (a server shutting down waits for exactly that).
  ASSERT_EQ(source.statuses.size(), 3u);
  EXPECT_EQ(source.statuses[0].after_messages, 0u);
  EXPECT_EQ(source.statuses[0].flush, base_);
  const size_t data_messages = (300'000 + 59'999) / 60'000;
  EXPECT_EQ(source.statuses[1].after_messages, data_messages + 2);
  EXPECT_EQ(source.statuses[1].write, mid);
  EXPECT_EQ(source.statuses[1].flush, mid);
  EXPECT_EQ(source.statuses[2].write, base_ + kTestSegmentSize + 10);
  EXPECT_EQ(source.statuses[2].flush, base_ + kTestSegmentSize + 10);
}

TEST_F(WalReceiverTest, StatusUpdatesOnlyEverReportWhatIsDurable) {
  // With a short status interval and a stream of messages, every flush position reported
  // must have been durable when it was sent: the fake checks it against the repository.
  ScriptedSource source(wal_, base_);
  source.add_data(base_, base_ + 2 * kTestSegmentSize + 5000, 20'000);
  SegmentSink sink(repo_, Compression::lz4, writer_);
  StreamOptions options;
  options.status_interval_ms = 1;
  options.endpos = base_ + 2 * kTestSegmentSize + 5000;
  source.on_status = [&](Lsn flush) {
    const TimelineWal inv = scan_timeline_wal(repo_, TimelineId(1));
    const Lsn archived = inv.ranges.empty() ? base_ : inv.ranges.back().end;
    EXPECT_LE(flush, archived) << "reported " << flush.str() << " with only " << archived.str()
                               << " on disk";
  };
  WalReceiver receiver(source, repo_, sink, options);
  receiver.stream(TimelineId(1), base_);
  EXPECT_GT(source.statuses.size(), 3u);
}

TEST_F(WalReceiverTest, SynchronousModeFlushesWhenIdleAndBeforeAReply) {
  ScriptedSource source(wal_, base_);
  const Lsn a = base_ + 100'000, b = base_ + 250'000;
  source.add_data(base_, a);
  source.add_idle();  // the server has nothing more for now
  source.add_data(a, b);
  source.add_keepalive(b, /*reply=*/true);
  source.add_data(b, b + 1);
  SegmentSink sink(repo_, Compression::lz4, writer_);
  StreamOptions options;
  options.endpos = b + 1;
  options.synchronous = true;
  options.status_interval_ms = 3'600'000;
  WalReceiver receiver(source, repo_, sink, options);
  receiver.stream(TimelineId(1), base_);

  // initial, idle flush (a), reply (b), final (b + 1): each flush equals write.
  ASSERT_EQ(source.statuses.size(), 4u);
  EXPECT_EQ(source.statuses[1].flush, a);
  EXPECT_EQ(source.statuses[1].write, a);
  EXPECT_EQ(source.statuses[2].flush, b);
  EXPECT_EQ(source.statuses[3].flush, b + 1);
}

TEST_F(WalReceiverTest, FollowsATimelineSwitchAndArchivesTheHistoryFile) {
  // Timeline 1 ends inside segment 5; timeline 2 starts streaming at that segment's start
  // (its first segment holds timeline 1's bytes before the switch, then its own).
  const Lsn switch_lsn = base_ + kTestSegmentSize + 400'000;
  ScriptedSource source(wal_, base_);
  source.add_data(base_, switch_lsn);
  source.add_copy_done();
  source.timeline_ends.push_back({TimelineId(2), switch_lsn});
  source.histories[2] = "1\t" + switch_lsn.str() + "\tno recovery target specified\n";
  const Lsn seg5 = base_ + kTestSegmentSize;
  const Lsn endpos = base_ + 3 * kTestSegmentSize;
  source.add_data(seg5, endpos);
  SegmentSink sink(repo_, Compression::lz4, writer_);
  StreamOptions options;
  options.endpos = endpos;
  WalReceiver receiver(source, repo_, sink, options);
  const StreamResult result = receiver.stream(TimelineId(1), base_);

  EXPECT_EQ(result.timeline, TimelineId(2));
  EXPECT_EQ(result.durable, endpos);
  ASSERT_EQ(source.starts.size(), 2u);
  EXPECT_EQ(source.starts[1], (std::pair{seg5, TimelineId(2)}));
  EXPECT_EQ(read_file(repo_.history_path(TimelineId(2))), source.histories[2]);
  // Timeline 1: segment 4 complete, segment 5 .partial up to the switch point.
  EXPECT_TRUE(fs::exists(repo_.segment_path(TimelineId(1), SegmentNo(4), Compression::lz4, false)));
  EXPECT_EQ(content_of(repo_.segment_path(TimelineId(1), SegmentNo(5), Compression::lz4, true)),
            slice(wal_, kTestSegmentSize, 400'000));
  EXPECT_FALSE(
      fs::exists(repo_.segment_path(TimelineId(1), SegmentNo(5), Compression::lz4, false)));
  // Timeline 2: segments 5 and 6 complete.
  EXPECT_EQ(content_of(repo_.segment_path(TimelineId(2), SegmentNo(5), Compression::lz4, false)),
            slice(wal_, kTestSegmentSize, kTestSegmentSize));
  EXPECT_TRUE(fs::exists(repo_.segment_path(TimelineId(2), SegmentNo(6), Compression::lz4, false)));
  // Resuming now starts from the archive's end on timeline 2.
  source.server.timeline = TimelineId(2);
  source.server.xlogpos = endpos + 5000;
  const StartPoint start = find_start_point(repo_, source, source.server, "");
  EXPECT_EQ(start.timeline, TimelineId(2));
  EXPECT_EQ(start.lsn, endpos);
}

TEST_F(WalReceiverTest, ALostConnectionKeepsWhatArrivedDurably) {
  ScriptedSource source(wal_, base_);
  source.add_data(base_, base_ + 500'000);  // then the script ends: connection lost
  SegmentSink sink(repo_, Compression::lz4, writer_);
  WalReceiver receiver(source, repo_, sink, StreamOptions{});
  EXPECT_THROW(receiver.stream(TimelineId(1), base_), ConnectionLost);
  EXPECT_EQ(sink.durable_lsn(), base_ + 500'000);
  const TimelineWal inv = scan_timeline_wal(repo_, TimelineId(1));
  ASSERT_EQ(inv.ranges.size(), 1u);
  EXPECT_EQ(inv.ranges[0].end, base_ + 500'000);
}

TEST_F(WalReceiverTest, DataThatDoesNotContinueTheArchiveIsAnError) {
  ScriptedSource source(wal_, base_);
  source.add_data(base_, base_ + 1000);
  source.add_data(base_ + 2000, base_ + 3000);  // a gap
  SegmentSink sink(repo_, Compression::lz4, writer_);
  WalReceiver receiver(source, repo_, sink, StreamOptions{});
  try {
    receiver.stream(TimelineId(1), base_);
    FAIL() << "a gap was accepted";
  } catch (const ConnectionLost&) {
    FAIL() << "a gap must not be retried as a lost connection";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("received WAL at 0/4007D0, but the archive continues at "
                                         "0/4003E8"),
              std::string::npos)
        << e.what();
  }
}

// ---------------------------------------------------------------- start position

TEST_F(WalReceiverTest, StartPointComesFromTheArchiveThenTheSlotThenTheServer) {
  ScriptedSource source(wal_, base_);
  source.server.xlogpos = base_ + 3 * kTestSegmentSize + 777;
  // Empty archive, no slot: the server's position rounded down to its segment.
  StartPoint p = find_start_point(repo_, source, source.server, "");
  EXPECT_EQ(p.lsn, base_ + 3 * kTestSegmentSize);
  // A slot with a restart_lsn: that segment's start.
  source.slot = ReplicationSlotInfo{"physical", base_ + kTestSegmentSize + 99, TimelineId(1)};
  p = find_start_point(repo_, source, source.server, "s");
  EXPECT_EQ(p.lsn, base_ + kTestSegmentSize);
  // Something archived: exactly its end, slot or not.
  source.add_data(base_, base_ + 200'000);
  SegmentSink sink(repo_, Compression::lz4, writer_);
  WalReceiver receiver(source, repo_, sink, StreamOptions{});
  EXPECT_THROW(receiver.stream(TimelineId(1), base_), ConnectionLost);
  p = find_start_point(repo_, source, source.server, "s");
  EXPECT_EQ(p.lsn, base_ + 200'000);
  EXPECT_EQ(p.timeline, TimelineId(1));
}

// PostgreSQL 14 reports no restart_tli (no READ_REPLICATION_SLOT): the server's history says
// which timeline wrote the WAL at restart_lsn.
TEST_F(WalReceiverTest, SlotWithoutRestartTimelineTakesItFromTheHistory) {
  ScriptedSource source(wal_, base_);
  source.server.timeline = TimelineId(3);
  source.server.xlogpos = base_ + 3 * kTestSegmentSize;
  source.histories[3] =
      "1\t" + (base_ + 500'000).str() + "\tx\n2\t" + (base_ + 2 * kTestSegmentSize).str() + "\ty\n";
  source.slot = ReplicationSlotInfo{"physical", base_ + kTestSegmentSize + 99, TimelineId(0)};
  StartPoint p = find_start_point(repo_, source, source.server, "s");
  EXPECT_EQ(p.timeline, TimelineId(2));
  EXPECT_EQ(p.lsn, base_ + kTestSegmentSize);
  source.slot = ReplicationSlotInfo{"physical", base_ + 1000, TimelineId(0)};
  p = find_start_point(repo_, source, source.server, "s");
  EXPECT_EQ(p.timeline, TimelineId(1));
  source.slot = ReplicationSlotInfo{"physical", base_ + 2 * kTestSegmentSize + 5, TimelineId(0)};
  p = find_start_point(repo_, source, source.server, "s");
  EXPECT_EQ(p.timeline, TimelineId(3));
}

TEST_F(WalReceiverTest, StartPointOnAnAncestorTimeline) {
  ScriptedSource source(wal_, base_);
  source.add_data(base_, base_ + 300'000);
  {
    SegmentSink sink(repo_, Compression::lz4, writer_);
    WalReceiver receiver(source, repo_, sink, StreamOptions{});
    EXPECT_THROW(receiver.stream(TimelineId(1), base_), ConnectionLost);
  }
  source.server.timeline = TimelineId(3);
  // Timeline 1 ended after what the archive holds: finish timeline 1 first.
  source.histories[3] =
      "1\t" + (base_ + 500'000).str() + "\tx\n2\t" + (base_ + 2 * kTestSegmentSize).str() + "\ty\n";
  StartPoint p = find_start_point(repo_, source, source.server, "");
  EXPECT_EQ(p.timeline, TimelineId(1));
  EXPECT_EQ(p.lsn, base_ + 300'000);
  // Timeline 1 ended exactly where the archive ends: timeline 2 from that segment's start.
  source.histories[3] =
      "1\t" + (base_ + 300'000).str() + "\tx\n2\t" + (base_ + 2 * kTestSegmentSize).str() + "\ty\n";
  p = find_start_point(repo_, source, source.server, "");
  EXPECT_EQ(p.timeline, TimelineId(2));
  EXPECT_EQ(p.lsn, base_);
}

TEST_F(WalReceiverTest, ExplicitStartContinuesAfterWhatTheArchiveHolds) {
  ScriptedSource source(wal_, base_);
  source.add_data(base_, base_ + 300'000);
  {
    SegmentSink sink(repo_, Compression::lz4, writer_);
    WalReceiver receiver(source, repo_, sink, StreamOptions{});
    EXPECT_THROW(receiver.stream(TimelineId(1), base_), ConnectionLost);
  }
  EXPECT_EQ(start_point_from(repo_, TimelineId(1), base_ + 1000).lsn, base_ + 300'000);
  EXPECT_EQ(start_point_from(repo_, TimelineId(1), base_ + 2 * kTestSegmentSize + 5).lsn,
            base_ + 2 * kTestSegmentSize);
}

}  // namespace
}  // namespace walvault
