// The record scanner against real PostgreSQL 15 WAL (tests/fixtures/wal, made by
// make_wal_fixture.sh) and what pg_waldump said about the same bytes.

#include "pitr/wal_records.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "core/error.h"
#include "core/lz4_frame.h"

namespace walvault {
namespace {

const fs::path kFixtureDir = fs::path(WALVAULT_SOURCE_DIR) / "tests/fixtures/wal";

struct Fixture {
  std::map<std::string, std::string> facts;
  uint64_t segment_size = 0;
  int pg_major = 0;
  Lsn start;
  std::vector<std::byte> wal;  // the segments, decoded, back to back
  std::vector<WalEvent> expected;
  Lsn switch_lsn;
};

uint64_t page_size() {
  return 8192;
}

// Where a record that begins at `at` and is `len` bytes long ends, skipping page headers.
Lsn record_end(Lsn at, uint64_t len, uint64_t seg) {
  uint64_t pos = at.value;
  while (len > 0) {
    if (pos % page_size() == 0) pos += pos % seg == 0 ? 40 : 24;
    const uint64_t n = std::min(len, page_size() - pos % page_size());
    pos += n;
    len -= n;
  }
  return Lsn(pos);
}

const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture f;
    std::ifstream facts(kFixtureDir / "fixture.txt");
    std::string key, value;
    while (facts >> key >> value) f.facts[key] = value;
    f.segment_size = std::stoull(f.facts.at("segment_size"));
    f.pg_major = std::stoi(f.facts.at("pg_version_num")) / 10000;
    f.start = *Lsn::parse(f.facts.at("start_lsn"));
    auto first = parse_wal_file_name(f.facts.at("first_segment"), f.segment_size);
    auto last = parse_wal_file_name(f.facts.at("last_segment"), f.segment_size);
    for (uint64_t s = first->segno.value; s <= last->segno.value; ++s) {
      const std::string name = wal_file_name(TimelineId(1), SegmentNo(s), f.segment_size);
      decode_lz4_file(kFixtureDir / (name + ".lz4"), [&](std::span<const std::byte> d) {
        f.wal.insert(f.wal.end(), d.begin(), d.end());
      });
    }
    // rmgr: Transaction len (rec/tot):     34/    34, tx:        727, lsn: 0/00731E38, prev
    // 0/00731DF8, desc: ABORT 2026-12-03 16:57:13.678517 UTC
    std::ifstream dump(kFixtureDir / "waldump.txt");
    std::string line;
    while (std::getline(dump, line)) {
      // Plain string parsing: std::regex recurses per character and overflows the stack on
      // long lines under AddressSanitizer.
      auto field = [&](std::string_view key, char end) -> std::string {
        auto at = line.find(key);
        if (at == std::string::npos) return {};
        at += key.size();
        while (at < line.size() && line[at] == ' ') ++at;
        auto stop = line.find(end, at);
        return line.substr(at, stop == std::string::npos ? std::string::npos : stop - at);
      };
      const std::string lens = field("len (rec/tot):", ',');
      const std::string xid_text = field("tx:", ',');
      const std::string lsn_text = field("lsn:", ',');
      const auto desc_at = line.find(", desc: ");
      if (!line.starts_with("rmgr: ") || lens.find('/') == std::string::npos || xid_text.empty() ||
          desc_at == std::string::npos || !Lsn::parse(lsn_text)) {
        ADD_FAILURE() << "unparsed pg_waldump line: " << line;
        continue;
      }
      const std::string desc = line.substr(desc_at + 8);
      const auto space = desc.find(' ');
      const std::string m5 = desc.substr(0, space);
      const std::string m6 = space == std::string::npos ? "" : desc.substr(space + 1);
      std::string tot = lens.substr(lens.find('/') + 1);
      tot.erase(0, tot.find_first_not_of(' '));
      const std::string m[7] = {"", "", tot, xid_text, lsn_text, m5, m6};
      const std::string what = m[5];
      const Lsn lsn = *Lsn::parse(m[4]);
      if (what == "SWITCH") {
        f.switch_lsn = lsn;
        continue;
      }
      WalEvent e;
      e.lsn = lsn;
      e.end_lsn = record_end(lsn, std::stoull(m[2]), f.segment_size);
      std::string rest = m[6];
      if (what == "RESTORE_POINT") {
        e.kind = WalEventKind::restore_point;
        e.name = rest;
        f.expected.push_back(e);
        continue;
      }
      e.xid = uint32_t(std::stoul(m[3]));
      if (what == "COMMIT")
        e.kind = WalEventKind::commit;
      else if (what == "ABORT")
        e.kind = WalEventKind::abort;
      else if (what == "COMMIT_PREPARED")
        e.kind = WalEventKind::commit_prepared;
      else if (what == "ABORT_PREPARED")
        e.kind = WalEventKind::abort_prepared;
      else
        ADD_FAILURE() << "unexpected record " << what;
      // "<xid>: <time>" for the prepared variants.
      if (auto colon = rest.find(": "); colon != std::string::npos && colon > 0 &&
                                        rest.find_first_not_of("0123456789") == colon) {
        e.xid = uint32_t(std::stoul(rest.substr(0, colon)));
        rest = rest.substr(colon + 2);
      }
      // "2026-12-03 16:57:13.678517 UTC[; subxacts: ...]"
      auto t = parse_timestamp(rest.substr(0, rest.find(';')));
      EXPECT_TRUE(t && t->had_zone) << rest;
      if (t) e.time = t->time;
      f.expected.push_back(e);
    }
    return f;
  }();
  return f;
}

struct ScanResult {
  std::vector<WalEvent> events;
  WalScanStop stop = WalScanStop::none;
  std::string problem;
  uint64_t records = 0;
  Lsn last_record;
  Lsn end;
};

ScanResult scan_in_chunks(const Fixture& f, size_t chunk) {
  ScanResult r;
  WalRecordScanner s(f.segment_size, f.pg_major, [&](const WalEvent& e) { r.events.push_back(e); });
  for (size_t off = 0; off < f.wal.size(); off += chunk) {
    const size_t n = std::min(chunk, f.wal.size() - off);
    s.feed(f.start + off, {f.wal.data() + off, n});
  }
  r.stop = s.stop();
  r.problem = s.problem();
  r.records = s.records();
  r.last_record = s.last_record_lsn();
  r.end = s.end_of_records();
  return r;
}

// Restore points carry no time in pg_waldump's output: check it against its neighbours.
void expect_same_events(const std::vector<WalEvent>& expected, const std::vector<WalEvent>& got) {
  ASSERT_EQ(expected.size(), got.size());
  for (size_t i = 0; i < got.size(); ++i) {
    WalEvent want = expected[i];
    if (want.kind == WalEventKind::restore_point) {
      ASSERT_GT(i, 0u);
      ASSERT_LT(i + 1, got.size());
      EXPECT_GE(got[i].time, got[i - 1].time);
      EXPECT_LE(got[i].time, got[i + 1].time);
      want.time = got[i].time;
    }
    EXPECT_EQ(want, got[i]) << "event " << i << " at " << want.lsn.str() << ": got "
                            << to_string(got[i].kind) << " at " << got[i].lsn.str() << " xid "
                            << got[i].xid << " end " << got[i].end_lsn.str();
  }
}

TEST(WalRecords, FixtureIsWhatTheTestsExpect) {
  const Fixture& f = fixture();
  EXPECT_EQ(f.segment_size, 1u << 20);
  EXPECT_EQ(f.wal.size() % f.segment_size, 0u);
  EXPECT_GE(f.expected.size(), 10u);
  bool kinds[5] = {};
  bool crosses_segment = false;
  for (const auto& e : f.expected) {
    kinds[int(e.kind)] = true;
    crosses_segment |= segment_of(e.lsn, f.segment_size) != segment_of(e.end_lsn, f.segment_size);
  }
  for (bool k : kinds) EXPECT_TRUE(k) << "the fixture should hold every kind of event";
  EXPECT_TRUE(crosses_segment) << "the fixture should hold a commit that crosses segments";
}

TEST(WalRecords, MatchesPgWaldump) {
  const Fixture& f = fixture();
  auto r = scan_in_chunks(f, f.wal.size());
  expect_same_events(f.expected, r.events);
  EXPECT_EQ(r.stop, WalScanStop::none) << r.problem;
  EXPECT_EQ(r.records, std::stoull(f.facts.at("records")));
  EXPECT_EQ(r.last_record, *Lsn::parse(f.facts.at("last_record_lsn")));
  EXPECT_EQ(r.last_record, f.switch_lsn);
  // After the switch the rest of the segment is padding: the WAL is whole to its end.
  EXPECT_EQ(r.end, f.start + f.wal.size());
}

TEST(WalRecords, ChunkBoundariesDoNotMatter) {
  const Fixture& f = fixture();
  for (size_t chunk : {size_t(1) << 18, size_t(8192), size_t(4093), size_t(37), size_t(1)}) {
    if (chunk == 1) {
      // Byte by byte over the first segment only (the test would be slow otherwise).
      Fixture first = f;
      first.wal.resize(f.segment_size);
      std::vector<WalEvent> want;
      for (const auto& e : f.expected) {
        if (e.end_lsn <= f.start + f.segment_size) want.push_back(e);
      }
      expect_same_events(want, scan_in_chunks(first, chunk).events);
      continue;
    }
    SCOPED_TRACE(chunk);
    expect_same_events(f.expected, scan_in_chunks(f, chunk).events);
  }
}

TEST(WalRecords, PrefixOfASegmentYieldsTheRecordsThatEndInIt) {
  const Fixture& f = fixture();
  for (uint64_t cut :
       {uint64_t(0x31FF0), uint64_t(0x32160), uint64_t(0xFF548 + 100), f.segment_size + 0x10}) {
    std::vector<WalEvent> got;
    WalRecordScanner s(f.segment_size, f.pg_major, [&](const WalEvent& e) { got.push_back(e); });
    s.feed(f.start, {f.wal.data(), size_t(cut)});
    std::vector<WalEvent> want;
    for (const auto& e : f.expected) {
      if (e.end_lsn <= f.start + cut) want.push_back(e);
    }
    expect_same_events(want, got);
    EXPECT_EQ(s.stop(), WalScanStop::none);
    EXPECT_LE(s.end_of_records(), f.start + cut);
    EXPECT_GT(s.end_of_records(), f.start);
  }
}

TEST(WalRecords, SegmentAloneSkipsTheRecordContinuedFromBefore) {
  const Fixture& f = fixture();
  std::vector<WalEvent> got;
  WalRecordScanner s(f.segment_size, f.pg_major, [&](const WalEvent& e) { got.push_back(e); });
  const Lsn second = f.start + f.segment_size;
  s.feed(second, {f.wal.data() + f.segment_size, f.wal.size() - f.segment_size});
  std::vector<WalEvent> want;
  for (const auto& e : f.expected) {
    if (e.lsn >= second) want.push_back(e);
  }
  expect_same_events(want, got);
  EXPECT_EQ(s.stop(), WalScanStop::none) << s.problem();
  // The big commit that began in the first segment is not reported from the second alone.
  EXPECT_LT(want.size(), f.expected.size());
}

TEST(WalRecords, DamagedRecordStopsTheScan) {
  const Fixture& f = fixture();
  // Flip one byte inside the main data of the COMMIT PREPARED record.
  const WalEvent* target = nullptr;
  for (const auto& e : f.expected) {
    if (e.kind == WalEventKind::commit_prepared) target = &e;
  }
  ASSERT_NE(target, nullptr);
  std::vector<std::byte> wal = f.wal;
  wal[target->lsn - f.start + 30] ^= std::byte{0x40};
  std::vector<WalEvent> got;
  WalRecordScanner s(f.segment_size, f.pg_major, [&](const WalEvent& e) { got.push_back(e); });
  s.feed(f.start, wal);
  EXPECT_EQ(s.stop(), WalScanStop::invalid);
  EXPECT_NE(s.problem().find(target->lsn.str()), std::string::npos) << s.problem();
  EXPECT_NE(s.problem().find("checksum"), std::string::npos) << s.problem();
  ASSERT_FALSE(got.empty());
  EXPECT_LT(got.back().lsn, target->lsn);
  EXPECT_LE(s.end_of_records(), target->lsn);
}

TEST(WalRecords, ZerosEndTheWal) {
  const Fixture& f = fixture();
  // Keep the first segment up to just after the restore point, zero the rest of it.
  const WalEvent* rp = nullptr;
  for (const auto& e : f.expected) {
    if (e.kind == WalEventKind::restore_point) rp = &e;
  }
  ASSERT_NE(rp, nullptr);
  std::vector<std::byte> wal(f.wal.begin(), f.wal.begin() + long(f.segment_size));
  const uint64_t keep = ((rp->end_lsn - f.start) + 7) / 8 * 8;
  std::fill(wal.begin() + long(keep), wal.end(), std::byte{0});
  std::vector<WalEvent> got;
  WalRecordScanner s(f.segment_size, f.pg_major, [&](const WalEvent& e) { got.push_back(e); });
  s.feed(f.start, wal);
  EXPECT_EQ(s.stop(), WalScanStop::end_of_wal);
  EXPECT_EQ(s.end_of_records(), rp->end_lsn);
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.back().kind, WalEventKind::restore_point);
  EXPECT_EQ(got.back().lsn, rp->lsn);
  EXPECT_EQ(got.back().name, rp->name);
}

TEST(WalRecords, RestartsAtASegmentStartAndRefusesOtherJumps) {
  const Fixture& f = fixture();
  WalRecordScanner s(f.segment_size, f.pg_major, nullptr);
  s.feed(f.start, {f.wal.data(), 1000});
  EXPECT_THROW(s.feed(f.start + 5000, {f.wal.data() + 5000, 10}), Error);
  s.feed(f.start + f.segment_size, {f.wal.data() + f.segment_size, 8192});
  EXPECT_EQ(s.position(), f.start + f.segment_size + 8192);
}

// WAL of another major is not read with this major's record layouts: the page magic says
// who wrote it (the fixture is PostgreSQL 15's).
TEST(WalRecords, RefusesWalOfAnotherMajor) {
  const Fixture& f = fixture();
  ASSERT_EQ(f.pg_major, 15);
  std::vector<WalEvent> got;
  WalRecordScanner s(f.segment_size, 17, [&](const WalEvent& e) { got.push_back(e); });
  s.feed(f.start, {f.wal.data(), 8192});
  EXPECT_EQ(s.stop(), WalScanStop::invalid);
  EXPECT_NE(s.problem().find("holds WAL of PostgreSQL 15, not of PostgreSQL 17"), std::string::npos)
      << s.problem();
  EXPECT_TRUE(got.empty());
}

}  // namespace
}  // namespace walvault
