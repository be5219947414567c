#include "pitr/catalog.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>

#include "core/backup_info.h"
#include "core/error.h"
#include "core/human_bytes.h"

namespace walvault {
namespace {

Json lsn_or_null(const std::optional<Lsn>& l) {
  return l ? Json(l->str()) : Json(nullptr);
}
Json time_or_null(const std::optional<Timestamp>& t) {
  return t ? Json(format_iso8601_utc(*t)) : Json(nullptr);
}

// A fixed-width table for the human output.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string str(const std::string& indent = "  ") const {
    std::vector<size_t> width;
    for (const auto& r : rows_) {
      for (size_t i = 0; i < r.size(); ++i) {
        if (width.size() <= i) width.push_back(0);
        width[i] = std::max(width[i], r[i].size());
      }
    }
    std::string out;
    for (const auto& r : rows_) {
      std::string line = indent;
      for (size_t i = 0; i < r.size(); ++i) {
        line += r[i];
        if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out += line + "\n";
    }
    return out;
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace

std::string pg_version_text(int n) {
  if (n <= 0) return "unknown";
  return std::to_string(n / 10000) + "." + std::to_string(n % 10000);
}

std::vector<WalGap> find_gaps(const WalRangesByTimeline& wal, const TimelineHistory& path,
                              uint64_t seg) {
  std::vector<WalGap> out;
  for (const auto& [tli, ranges] : wal) {
    for (size_t i = 1; i < ranges.size(); ++i) {
      out.push_back({tli, ranges[i - 1].end, ranges[i].start});
    }
  }
  // Along the history of `path`, from the first archived WAL on it.
  WalReach r = compute_reach(path, wal, seg, Lsn(0));
  if (r.end == Lsn(0) && r.resumes) {
    Lsn pos = *r.resumes;
    for (int guard = 0; guard < 100000; ++guard) {
      r = compute_reach(path, wal, seg, pos);
      if (r.limit != WalReach::Limit::missing || !r.resumes) break;
      out.push_back({r.timeline, r.end, *r.resumes});
      pos = *r.resumes;
    }
  }
  std::sort(out.begin(), out.end(), [](const WalGap& a, const WalGap& b) {
    return std::tie(a.timeline, a.start, a.end) < std::tie(b.timeline, b.start, b.end);
  });
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Catalog::Catalog(const Repository& repo) : repo_(repo) {
  state_.identity = repo.identity();
  wal_ = std::make_unique<RepoWal>(repo);
  state_.backups = load_backups(repo, &backup_problems_);
  problems_ = backup_problems_;

  std::set<TimelineId> known;
  for (const auto& [tli, tw] : wal_->inventory()) known.insert(tli);
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(repo.wal_root(), ec)) {
    if (auto tli = parse_history_file_name(e.path().filename().string())) known.insert(*tli);
  }
  for (const auto& b : state_.backups) {
    known.insert(b.timeline);
    known.insert(b.stop_timeline);
  }
  for (TimelineId tli : known) {
    if (tli.value == 0) continue;
    CatalogTimeline t;
    t.timeline = tli;
    try {
      LoadedHistory h = load_timeline_history(repo, tli);
      t.has_history_file = h.has_file;
      state_.histories.emplace(tli, h.history);
      if (h.history.spans().size() > 1) {
        t.parent = h.history.parent_of(tli);
        t.switch_lsn = h.history.spans().back().begin;
      } else if (tli.value > 1) {
        problems_.push_back("timeline " + std::to_string(tli.value) +
                            " has no history file in the repository: its ancestry is unknown");
      }
    } catch (const Error& e) {
      problems_.push_back(e.what());
      state_.histories.emplace(tli, TimelineHistory(tli));
    }
    if (auto it = wal_->inventory().find(tli); it != wal_->inventory().end()) {
      t.ranges = it->second.ranges;
      t.partial = it->second.partial;
      t.partial_bytes = it->second.partial_bytes;
    }
    timelines_.push_back(std::move(t));
  }
  gaps_ =
      find_gaps(wal_->ranges(), state_.history_of(state_.latest_timeline()), repo.segment_size());
}

const RecoverableWindow& Catalog::window() {
  if (!window_) {
    try {
      window_ = recoverable_window(state_, *wal_, state_.latest_timeline());
    } catch (const Error& e) {
      problems_.push_back(std::string("the restorable window could not be computed: ") + e.what());
      window_ = RecoverableWindow{};
      window_->timeline = state_.latest_timeline();
    }
  }
  return *window_;
}

Json Catalog::to_json() {
  const RepoIdentity& id = repo_.identity();
  Json j;
  j["system_identifier"] = id.system_identifier;
  j["pg_version"] = pg_version_text(id.pg_version_num);
  j["pg_version_num"] = id.pg_version_num;
  j["wal_segment_size"] = id.wal_segment_size;
  j["timelines"] = Json::array();
  for (const auto& t : timelines_) {
    Json jt;
    jt["timeline"] = t.timeline.value;
    jt["parent"] = t.parent ? Json(t.parent->value) : Json(nullptr);
    jt["switch_lsn"] = lsn_or_null(t.switch_lsn);
    jt["ranges"] = Json::array();
    for (const auto& r : t.ranges) {
      jt["ranges"].push_back({{"start_lsn", r.start.str()}, {"end_lsn", r.end.str()}});
    }
    jt["partial"] =
        t.partial ? Json{{"file", t.partial->path.filename().string()}, {"bytes", t.partial_bytes}}
                  : Json(nullptr);
    j["timelines"].push_back(std::move(jt));
  }
  j["gaps"] = Json::array();
  for (const auto& g : gaps_) {
    j["gaps"].push_back(
        {{"timeline", g.timeline.value}, {"start_lsn", g.start.str()}, {"end_lsn", g.end.str()}});
  }
  j["backups"] = Json::array();
  for (const auto& b : state_.backups) {
    // What a backup that did not complete never learnt is null, not a made-up zero.
    const bool complete = b.status == BackupStatus::complete;
    const bool started = b.start_lsn.valid();
    Json jb = {{"id", b.id},
               {"label", b.label},
               {"status", to_string(b.status)},
               {"timeline", started ? Json(b.timeline.value) : Json(nullptr)},
               {"start_lsn", started ? Json(b.start_lsn.str()) : Json(nullptr)},
               {"stop_lsn", complete ? Json(b.stop_lsn.str()) : Json(nullptr)},
               {"start_time", format_iso8601_utc(b.start_time)},
               {"stop_time", complete ? Json(format_iso8601_utc(b.stop_time)) : Json(nullptr)},
               {"bytes", b.bytes},
               {"stored_bytes", b.stored_bytes}};
    if (!b.error.empty()) jb["error"] = b.error;
    j["backups"].push_back(std::move(jb));
  }
  j["snapshots"] = Json::array();
  const RecoverableWindow& w = window();
  Json rec;
  rec["from_time"] = time_or_null(w.from_time);
  rec["to_time"] = time_or_null(w.to_time);
  rec["to_lsn"] = lsn_or_null(w.to_lsn);
  rec["timeline"] = w.timeline.value;
  rec["windows"] = Json::array();
  for (const auto& p : w.pieces) {
    rec["windows"].push_back({{"backup", p.backup_id},
                              {"from_time", format_iso8601_utc(p.from_time)},
                              {"to_time", time_or_null(p.to_time)},
                              {"to_lsn", p.to_lsn.str()}});
  }
  j["recoverable"] = std::move(rec);
  j["problems"] = problems_;
  return j;
}

std::string Catalog::to_text() {
  const RepoIdentity& id = repo_.identity();
  const RecoverableWindow& w = window();
  std::ostringstream out;
  out << "repository " << repo_.root().string() << "\n"
      << "  database system " << id.system_identifier << ", PostgreSQL "
      << pg_version_text(id.pg_version_num) << ", WAL segments of "
      << human_bytes(id.wal_segment_size) << "\n\n";

  out << "timelines\n";
  if (timelines_.empty()) {
    out << "  none\n";
  } else {
    Table t({"TLI", "PARENT", "SWITCH LSN", "ARCHIVED WAL"});
    for (const auto& tl : timelines_) {
      std::string ranges;
      for (const auto& r : tl.ranges) {
        if (!ranges.empty()) ranges += ", ";
        ranges += r.start.str() + " - " + r.end.str();
      }
      if (ranges.empty()) ranges = "none";
      if (tl.partial) ranges += " (" + tl.partial->path.filename().string() + " in progress)";
      t.add({std::to_string(tl.timeline.value), tl.parent ? std::to_string(tl.parent->value) : "-",
             tl.switch_lsn ? tl.switch_lsn->str() : "-", ranges});
    }
    out << t.str();
  }
  out << "\ngaps\n";
  if (gaps_.empty()) {
    out << "  none\n";
  } else {
    Table t({"TLI", "MISSING FROM", "TO"});
    for (const auto& g : gaps_)
      t.add({std::to_string(g.timeline.value), g.start.str(), g.end.str()});
    out << t.str();
  }
  out << "\nbackups\n";
  if (state_.backups.empty()) {
    out << "  none\n";
  } else {
    Table t(
        {"ID", "STATUS", "TLI", "START LSN", "STOP LSN", "STOP TIME", "SIZE", "STORED", "LABEL"});
    std::vector<const BackupInfo*> with_errors;
    for (const auto& b : state_.backups) {
      const bool complete = b.status == BackupStatus::complete;
      const bool started = b.start_lsn.valid();
      t.add({b.id, std::string(to_string(b.status)),
             started ? std::to_string(b.timeline.value) : "-", started ? b.start_lsn.str() : "-",
             complete ? b.stop_lsn.str() : "-", complete ? format_iso8601_utc(b.stop_time) : "-",
             human_bytes(b.bytes), human_bytes(b.stored_bytes), b.label});
      if (!b.error.empty()) with_errors.push_back(&b);
    }
    out << t.str();
    for (const BackupInfo* b : with_errors) out << "  " << b->id << ": " << b->error << "\n";
  }
  out << "\nrestorable (timeline " << w.timeline.value << ")\n";
  if (!w.from_time) {
    out << "  nothing yet: no complete backup whose WAL is archived\n";
  } else {
    out << "  from " << format_iso8601_utc(*w.from_time) << "\n"
        << "  to   "
        << (w.to_time ? format_iso8601_utc(*w.to_time) + " (the newest archived commit)"
                      : std::string("- (no commit archived after a backup yet)"))
        << "\n"
        << "  WAL continuous up to " << (w.to_lsn ? w.to_lsn->str() : "-") << "\n";
    if (w.pieces.size() > 1) {
      for (const auto& p : w.pieces) {
        out << "  backup " << p.backup_id << ": " << format_iso8601_utc(p.from_time) << " to "
            << (p.to_time ? format_iso8601_utc(*p.to_time) : std::string("-")) << "\n";
      }
    }
  }
  if (!problems_.empty()) {
    out << "\nproblems\n";
    for (const auto& p : problems_) out << "  " << p << "\n";
  }
  return out.str();
}

}  // namespace walvault
