#include "pitr/repo_verify.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "basebackup/backup_check.h"
#include "basebackup/backup_runner.h"
#include "core/backup_info.h"
#include "core/error.h"
#include "core/human_bytes.h"
#include "core/lz4_frame.h"
#include "core/timeline_history.h"
#include "pitr/catalog.h"
#include "pitr/wal_check.h"

namespace walvault {
namespace {

// Problems quote bytes of damaged files (a JSON parser's "last read: ..."): control characters
// and bytes that are not UTF-8 are written as \xNN, so that the text output stays one line
// per file and --json stays valid JSON.
std::string printable(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  const auto hex = [&](unsigned char c) {
    static constexpr char kDigits[] = "0123456789abcdef";
    out += "\\x";
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  };
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f) {
        hex(c);
      } else {
        out += char(c);
      }
      ++i;
      continue;
    }
    const size_t n = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    bool ok = n != 0 && i + n <= text.size() && !(c == 0xc0 || c == 0xc1 || c > 0xf4);
    for (size_t k = 1; ok && k < n; ++k) {
      ok = (static_cast<unsigned char>(text[i + k]) & 0xc0) == 0x80;
    }
    if (ok) {
      out.append(text, i, n);
      i += n;
    } else {
      hex(c);
      ++i;
    }
  }
  return out;
}

constexpr size_t kSegmentsPerJob = 32;
constexpr size_t kMissingFilesNamed = 20;  // per hole; the rest is summed up in one line

std::string plural(uint64_t n, const std::string& one, const std::string& many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string json_reason(std::string why) {
  // nlohmann prefixes "[json.exception.parse_error.101] "; the reader needs the rest.
  if (auto pos = why.find("] "); why.starts_with("[json.") && pos != std::string::npos) {
    why = why.substr(pos + 2);
  }
  return why;
}

// Runs every job on `threads` threads (this one included), each job once.
void run_parallel(const std::vector<std::function<void()>>& jobs, unsigned threads) {
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < jobs.size();) jobs[i]();
  };
  std::vector<std::jthread> pool;
  for (unsigned k = 1; k < threads && k < jobs.size(); ++k) pool.emplace_back(worker);
  worker();
}

// The long page header at the start of a WAL file: the identity of the cluster that wrote it
// (for a repository whose walvault.json is unusable).
struct WalHeaderIdentity {
  uint64_t system_identifier = 0;
  uint32_t segment_size = 0;
  uint16_t magic = 0;
};

std::optional<WalHeaderIdentity> read_wal_header(const fs::path& path, bool lz4) {
  constexpr size_t kLongHeaderBytes = 40;
  std::string head;
  struct Enough {};
  try {
    if (lz4) {
      Lz4FrameDecoder decoder(path.string(), [&](std::span<const std::byte> d) {
        head.append(reinterpret_cast<const char*>(d.data()), d.size());
        if (head.size() >= kLongHeaderBytes) throw Enough{};
      });
      UniqueFd fd = open_or_throw(path, O_RDONLY);
      std::vector<std::byte> buf(64 * 1024);
      for (;;) {
        const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
        if (n <= 0) break;
        decoder.feed({buf.data(), size_t(n)});
      }
    } else {
      UniqueFd fd = open_or_throw(path, O_RDONLY);
      head.resize(kLongHeaderBytes);
      if (::read(fd.get(), head.data(), head.size()) != ssize_t(head.size())) return std::nullopt;
    }
  } catch (const Enough&) {
  } catch (const Error&) {
    return std::nullopt;
  }
  if (head.size() < kLongHeaderBytes) return std::nullopt;
  WalHeaderIdentity id;
  std::memcpy(&id.magic, head.data(), 2);
  uint16_t info;
  std::memcpy(&info, head.data() + 2, 2);
  std::memcpy(&id.system_identifier, head.data() + 24, 8);
  std::memcpy(&id.segment_size, head.data() + 32, 4);
  if (!(info & 0x0002) || !is_valid_segment_size(id.segment_size)) return std::nullopt;
  return id;
}

struct WalFileJob {
  WalFileEntry entry;
  WalFileVerdict verdict;
};

struct BackupCheckJob {
  fs::path dir;
  BackupInfo info;
  std::vector<BackupFileCheck> checks;  // one per info.files
};

class Verifier {
 public:
  Verifier(fs::path root, unsigned jobs) : root_(std::move(root)), jobs_(jobs) {
    report_.root = root_.string();
  }

  RepoVerifyReport run() {
    open_repository();
    check_locks();
    if (repo_) {
      check_histories();
      list_wal();
    }
    list_backups();
    std::vector<std::function<void()>> jobs;
    add_backup_jobs(jobs);
    add_wal_jobs(jobs);
    if (repo_) {
      jobs.push_back([this] { check_snapshots(); });
    }
    run_parallel(jobs, jobs_);
    judge_system_identifier();
    judge_wal_files();
    judge_gaps();
    judge_backups();
    finish();
    return std::move(report_);
  }

 private:
  void damaged(const std::string& path, const std::string& problem, std::string text = {}) {
    std::lock_guard lock(mu_);
    report_.findings.push_back(
        {VerifyFinding::Severity::damaged, printable(path), printable(problem), printable(text)});
  }
  void warning(const std::string& path, const std::string& problem) {
    std::lock_guard lock(mu_);
    report_.findings.push_back(
        {VerifyFinding::Severity::warning, printable(path), printable(problem), {}});
  }

  // ------------------------------------------------------------------ walvault.json
  void open_repository() {
    struct stat st;
    if (::stat(root_.c_str(), &st) != 0) {
      throw errno_error("repository \"" + root_.string() + "\" cannot be opened", errno,
                        "check --repo");
    }
    if (!S_ISDIR(st.st_mode)) {
      throw Error("repository \"" + root_.string() + "\" is not a directory", "check --repo");
    }
    const fs::path file = root_ / "walvault.json";
    try {
      repo_.emplace(Repository::open(root_));
      report_.identity = repo_->identity();
      return;
    } catch (const Error& e) {
      std::error_code ec;
      if (!fs::exists(file, ec)) {
        damaged(file.string(), "missing: the repository's identity is unknown");
      } else {
        std::string why = e.what();
        const std::string prefix = "\"" + file.string() + "\" is damaged: ";
        if (why.starts_with(prefix)) why = "damaged: " + json_reason(why.substr(prefix.size()));
        damaged(file.string(), why);
      }
    }
    // Go on with the identity the WAL carries, so that the rest is still checked.
    if (auto id = identity_from_wal()) {
      repo_.emplace(Repository::with_identity(root_, *id));
      report_.identity = *id;
      report_.identity_from_wal = true;
    } else {
      warning((root_ / "wal").string(),
              "not checked: without walvault.json the WAL segment size is unknown");
    }
  }

  std::optional<RepoIdentity> identity_from_wal() const {
    std::error_code ec;
    for (const auto& d : fs::directory_iterator(root_ / "wal", ec)) {
      if (!d.is_directory()) continue;
      std::vector<fs::path> files;
      for (const auto& f : fs::directory_iterator(d.path(), ec)) files.push_back(f.path());
      std::sort(files.begin(), files.end());
      for (const auto& f : files) {
        const std::string name = f.filename().string();
        if (name.ends_with(".partial") || name.size() < 24) continue;
        auto h = read_wal_header(f, name.ends_with(".lz4"));
        if (!h) continue;
        RepoIdentity id;
        id.system_identifier = std::to_string(h->system_identifier);
        id.wal_segment_size = h->segment_size;
        id.pg_version_num = 150000;
        for (const auto& b : load_backups(Repository::with_identity(root_, id))) {
          if (b.pg_version_num > 0) id.pg_version_num = b.pg_version_num;
        }
        return id;
      }
    }
    return std::nullopt;
  }

  // ------------------------------------------------------------------ locks
  void check_locks() {
    std::error_code ec;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(root_ / "lock", ec)) {
      if (e.path().extension() == ".lock") files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      LockFileState s{f.string(), std::nullopt};
      if (repo_) {
        try {
          s.holder = lock_holder(*repo_, f.stem().string());
        } catch (const Error&) {
        }
      }
      report_.locks.push_back(std::move(s));
    }
  }

  // ------------------------------------------------------------------ timeline histories
  void check_histories() {
    std::error_code ec;
    std::set<TimelineId> with_file;
    std::map<TimelineId, std::vector<TimelineSwitch>> parsed;
    for (const auto& e : fs::directory_iterator(repo_->wal_root(), ec)) {
      const std::string name = e.path().filename().string();
      auto tli = parse_history_file_name(name);
      if (!tli) continue;
      with_file.insert(*tli);
      ++report_.history_files;
      try {
        auto switches =
            check_timeline_history_file(read_file(e.path()), *tli, "\"" + e.path().string() + "\"");
        parsed[*tli] = switches;
        histories_.emplace(*tli, TimelineHistory(*tli, switches));
      } catch (const Error& e2) {
        std::string why = e2.what();
        const std::string prefix = "\"" + e.path().string() + "\" ";
        if (why.starts_with(prefix)) why = why.substr(prefix.size());
        damaged(e.path().string(), why);
      }
    }
    timelines_ = repo_->wal_timelines();
    report_.timelines = timelines_.size();
    for (TimelineId tli : timelines_) {
      if (tli.value > 1 && !with_file.contains(tli)) {
        damaged(repo_->history_path(tli).string(),
                "missing: timeline " + std::to_string(tli.value) +
                    " has WAL but no history file (its ancestry is unknown)");
      }
    }
    // A child's history repeats its parent's, line for line, then adds the switch from it.
    for (const auto& [tli, switches] : parsed) {
      const TimelineId parent = switches.back().parent;
      auto p = parsed.find(parent);
      if (p == parsed.end()) continue;
      const auto& ps = p->second;
      bool same = ps.size() + 1 == switches.size();
      for (size_t i = 0; same && i < ps.size(); ++i) {
        same = ps[i].parent == switches[i].parent && ps[i].switch_lsn == switches[i].switch_lsn;
      }
      if (!same) {
        damaged(repo_->history_path(tli).string(), "disagrees with " + history_file_name(parent) +
                                                       " about the ancestry of timeline " +
                                                       std::to_string(parent.value));
      }
    }
  }

  TimelineHistory history_of(TimelineId tli) const {
    auto it = histories_.find(tli);
    return it != histories_.end() ? it->second : TimelineHistory(tli);
  }

  // ------------------------------------------------------------------ WAL
  void list_wal() {
    const uint64_t seg = repo_->segment_size();
    for (TimelineId tli : timelines_) {
      std::error_code ec;
      std::set<std::string> wal_names;
      for (const auto& e : repo_->list_wal(tli)) {
        wal_names.insert(e.path.filename().string());
        wal_files_.push_back({e, {}});
      }
      std::vector<fs::path> others;
      for (const auto& e : fs::directory_iterator(repo_->wal_dir(tli), ec)) {
        const std::string name = e.path().filename().string();
        if (wal_names.contains(name)) continue;
        if (name == "gaps.json") {
          read_known_gaps(tli, e.path());
        } else {
          others.push_back(e.path());
        }
      }
      std::sort(others.begin(), others.end());
      for (const auto& p : others) {
        warning(p.string(), p.filename().string().ends_with(".tmp")
                                ? "a temporary file left by an interrupted write; ignored"
                                : "not a WAL file name of timeline " + std::to_string(tli.value) +
                                      " (with " + std::to_string(seg) + "-byte segments); ignored");
      }
    }
  }

  void read_known_gaps(TimelineId tli, const fs::path& path) {
    try {
      const Json doc = Json::parse(read_file(path));
      for (const auto& g : doc.at("gaps")) {
        auto start = Lsn::parse(g.at("start_lsn").get<std::string>());
        auto end = Lsn::parse(g.at("end_lsn").get<std::string>());
        if (!start || !end) throw Error("an LSN is invalid");
        known_gaps_.push_back({TimelineId(g.value("timeline", tli.value)), *start, *end});
      }
    } catch (const std::exception& e) {
      damaged(path.string(), "damaged: " + json_reason(e.what()));
    }
  }

  void add_wal_jobs(std::vector<std::function<void()>>& jobs) {
    if (!repo_) return;
    const WalIdentity identity = [&] {
      WalIdentity w = wal_identity(repo_->identity());
      w.system_identifier = 0;  // compared afterwards, to tell a damaged walvault.json
      return w;
    }();
    // Runs of complete segments, in pieces of kSegmentsPerJob; each .partial on its own.
    size_t i = 0;
    while (i < wal_files_.size()) {
      const WalFileEntry& first = wal_files_[i].entry;
      if (first.partial) {
        jobs.push_back([this, i, identity] {
          WalFileJob& job = wal_files_[i];
          WalFileChecker checker(identity, job.entry.timeline, ancestors(job.entry.timeline));
          job.verdict = checked(checker, job.entry);
          if (job.verdict.kind == WalFileVerdict::Kind::vanished) {
            // Completed while we looked: check what it became.
            if (auto done = repo_->find_complete_segment(job.entry.timeline, job.entry.segno)) {
              job.entry = *done;
              WalFileChecker again(identity, job.entry.timeline, ancestors(job.entry.timeline));
              job.verdict = checked(again, job.entry);
            }
          }
        });
        ++i;
        continue;
      }
      size_t j = i + 1;
      while (j < wal_files_.size() && j - i < kSegmentsPerJob && !wal_files_[j].entry.partial &&
             wal_files_[j].entry.timeline == first.timeline &&
             wal_files_[j].entry.segno == wal_files_[j - 1].entry.segno.next()) {
        ++j;
      }
      const bool prime = i > 0 && !wal_files_[i - 1].entry.partial &&
                         wal_files_[i - 1].entry.timeline == first.timeline &&
                         wal_files_[i - 1].entry.segno.next() == first.segno;
      jobs.push_back([this, i, j, prime, identity] {
        WalFileChecker checker(identity, wal_files_[i].entry.timeline,
                               ancestors(wal_files_[i].entry.timeline));
        if (prime) checker.prime(wal_files_[i - 1].entry);
        for (size_t k = i; k < j; ++k)
          wal_files_[k].verdict = checked(checker, wal_files_[k].entry);
      });
      i = j;
    }
  }

  static WalFileVerdict checked(WalFileChecker& checker, const WalFileEntry& entry) {
    try {
      return checker.check(entry);
    } catch (const std::exception& e) {
      WalFileVerdict v;
      v.kind = WalFileVerdict::Kind::damaged;
      v.problem = e.what();
      return v;
    }
  }

  std::vector<TimelineId> ancestors(TimelineId tli) const {
    std::vector<TimelineId> out;
    auto it = histories_.find(tli);
    if (it == histories_.end()) return out;  // unknown: any earlier timeline is accepted
    for (const auto& s : it->second.spans()) {
      if (s.timeline != tli) out.push_back(s.timeline);
    }
    return out;
  }

  // The repository's system identifier, unless every WAL file that says one says another:
  // then walvault.json is what is wrong.
  void judge_system_identifier() {
    if (!repo_) return;
    expected_sysid_ = wal_identity(repo_->identity()).system_identifier;
    std::set<uint64_t> seen;
    for (const auto& f : wal_files_) {
      if (f.verdict.system_identifier != 0) seen.insert(f.verdict.system_identifier);
    }
    if (seen.size() == 1 && *seen.begin() != expected_sysid_) {
      const uint64_t wal_sysid = *seen.begin();
      if (!report_.identity_from_wal) {
        damaged((root_ / "walvault.json").string(),
                "its system identifier " + repo_->identity().system_identifier +
                    " disagrees with every WAL segment (database system " +
                    std::to_string(wal_sysid) + ")");
      }
      expected_sysid_ = wal_sysid;
    }
  }

  void judge_wal_files() {
    for (auto& f : wal_files_) {
      const std::string path = f.entry.path.string();
      WalFileVerdict& v = f.verdict;
      if (v.kind == WalFileVerdict::Kind::vanished) continue;
      (f.entry.partial ? report_.partial_files : report_.wal_segments) += 1;
      report_.wal_bytes += v.content_bytes;
      report_.wal_stored_bytes += v.stored_bytes;
      if (v.kind == WalFileVerdict::Kind::ok && v.system_identifier != 0 &&
          v.system_identifier != expected_sysid_) {
        v.kind = WalFileVerdict::Kind::damaged;
        v.problem = "belongs to database system " + std::to_string(v.system_identifier) +
                    ", the repository to " + std::to_string(expected_sysid_);
      }
      if (v.kind == WalFileVerdict::Kind::damaged) {
        damaged(path, v.problem);
      } else if (v.kind == WalFileVerdict::Kind::torn_tail) {
        warning(path, v.problem);
      }
    }
  }

  // What each timeline holds, as the readers see it: complete files whole, a .partial up to
  // its verified prefix.
  WalRangesByTimeline archived_ranges() const {
    const uint64_t seg = repo_->segment_size();
    std::map<TimelineId, std::vector<WalRange>> raw;
    for (const auto& f : wal_files_) {
      const Lsn start = segment_start(f.entry.segno, seg);
      const uint64_t bytes = f.entry.partial ? f.verdict.content_bytes : seg;
      if (f.verdict.kind != WalFileVerdict::Kind::vanished) {
        raw[f.entry.timeline].push_back({start, start + bytes});
      }
    }
    WalRangesByTimeline out;
    for (auto& [tli, ranges] : raw) out[tli] = merge_ranges(std::move(ranges));
    return out;
  }

  const WalFileJob* file_of(TimelineId tli, SegmentNo segno) const {
    const WalFileJob* best = nullptr;
    for (const auto& f : wal_files_) {
      if (f.entry.timeline != tli || f.entry.segno != segno) continue;
      if (!best || (best->entry.partial && !f.entry.partial)) best = &f;
    }
    return best;
  }

  fs::path missing_path(TimelineId tli, SegmentNo segno) const {
    Compression c = Compression::lz4;
    for (const auto& f : wal_files_) {
      if (f.entry.timeline == tli) {
        c = f.entry.compression;
        break;
      }
    }
    return repo_->segment_path(tli, segno, c, false);
  }

  bool known_gap(const WalGap& g) const {
    return std::any_of(known_gaps_.begin(), known_gaps_.end(), [&](const WalGap& k) {
      return k.timeline == g.timeline && k.start <= g.end && g.start <= k.end;
    });
  }

  void judge_gaps() {
    if (!repo_ || wal_files_.empty()) return;
    const uint64_t seg = repo_->segment_size();
    const WalRangesByTimeline ranges = archived_ranges();
    TimelineId latest = timelines_.empty() ? TimelineId(1) : timelines_.back();
    for (const auto& [tli, h] : histories_) latest = std::max(latest, tli);
    for (const WalGap& g : find_gaps(ranges, history_of(latest), seg)) {
      const std::string what = "WAL from " + g.start.str() + " to " + g.end.str() +
                               " of timeline " + std::to_string(g.timeline.value);
      if (known_gap(g)) {
        warning(repo_->wal_dir(g.timeline).string(),
                what +
                    " was lost on the server (recorded in gaps.json); targets after it are "
                    "reachable only from a later backup");
        continue;
      }
      const uint64_t first = segment_of(g.start, seg).value;
      const uint64_t last = segment_of(Lsn(g.end.value - 1), seg).value;
      uint64_t named = 0;
      for (uint64_t s = first; s <= last; ++s) {
        if (named == kMissingFilesNamed) {
          damaged(repo_->wal_dir(g.timeline).string(),
                  std::to_string(last - s + 1) + " more segment files of the hole are missing (" +
                      what + ")");
          break;
        }
        ++named;
        if (const WalFileJob* f = file_of(g.timeline, SegmentNo(s))) {
          damaged(f->entry.path.string(), "holds WAL only up to " + g.start.str() +
                                              ", the rest of its segment is missing (" + what +
                                              " is not in the repository)");
        } else {
          damaged(missing_path(g.timeline, SegmentNo(s)).string(),
                  "missing (" + what + " is not in the repository)");
        }
      }
    }
  }

  // ------------------------------------------------------------------ backups
  void list_backups() {
    std::error_code ec;
    std::vector<fs::path> dirs;
    for (const auto& e : fs::directory_iterator(root_ / "backups", ec)) {
      if (e.is_directory()) dirs.push_back(e.path());
    }
    std::sort(dirs.begin(), dirs.end());
    for (const auto& dir : dirs) list_backup(dir);
  }

  void list_backup(const fs::path& dir) {
    const std::string id = dir.filename().string();
    const fs::path file = dir / "backup.json";
    ++report_.backups;
    const bool in_progress = repo_ && backup_in_progress(*repo_, id);
    std::optional<std::string> text;
    try {
      text = read_file_if_exists(file);
    } catch (const Error& e) {
      damaged(file.string(), std::string("cannot be read: ") + e.what());
      return;
    }
    if (!text) {
      std::error_code ec;
      if (in_progress) return;
      if (fs::directory_iterator(dir, ec) == fs::directory_iterator()) {
        warning(dir.string(), "an empty backup directory (a backup that never started); ignored");
      } else {
        damaged(file.string(), "missing: backup " + id + " cannot be restored");
      }
      return;
    }
    BackupInfo b;
    try {
      b = backup_info_from_json(Json::parse(*text));
      if (b.id != id) throw Error("its id \"" + b.id + "\" is not its directory's name");
    } catch (const std::exception& e) {
      damaged(file.string(), "damaged: " + json_reason(e.what()));
      return;
    }
    if (b.status == BackupStatus::running) {
      if (!in_progress) {
        warning(dir.string(), "backup " + id +
                                  " never completed (its process died); it is never offered for "
                                  "restore");
      }
      return;
    }
    if (b.status == BackupStatus::failed) {
      warning(dir.string(), "backup " + id + " failed" +
                                (b.error.empty() ? "" : " (" + b.error + ")") +
                                "; it is never offered for restore");
      return;
    }
    std::set<std::string> listed;
    bool has_base = false;
    for (const auto& f : b.files) {
      if (f.name.empty() || f.name.find('/') != std::string::npos || f.name == "." ||
          f.name == "..") {
        damaged(file.string(), "damaged: it lists an invalid file name \"" + f.name + "\"");
        return;
      }
      listed.insert(f.name);
      has_base = has_base || f.name == "base.tar.lz4";
    }
    if (!has_base) damaged(file.string(), "damaged: it lists no base.tar.lz4");
    for (const auto& t : b.tablespaces) {
      if (!listed.contains(t.file)) {
        damaged(file.string(), "damaged: the archive of tablespace " + std::to_string(t.oid) +
                                   " (\"" + t.file + "\") is not among its files");
      }
    }
    std::error_code ec;
    std::vector<fs::path> extra;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      if (name != "backup.json" && !listed.contains(name)) extra.push_back(e.path());
    }
    std::sort(extra.begin(), extra.end());
    for (const auto& p : extra) {
      warning(p.string(), "not listed in backup.json; ignored");
    }
    backups_.push_back({dir, std::move(b), {}});
  }

  void add_backup_jobs(std::vector<std::function<void()>>& jobs) {
    // Largest first: one big archive should not be the last thing left for one thread.
    std::vector<std::pair<uint64_t, std::pair<size_t, size_t>>> order;
    for (size_t i = 0; i < backups_.size(); ++i) {
      backups_[i].checks.resize(backups_[i].info.files.size());
      for (size_t k = 0; k < backups_[i].info.files.size(); ++k) {
        order.push_back({backups_[i].info.files[k].stored_bytes, {i, k}});
      }
    }
    std::stable_sort(order.begin(), order.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    for (const auto& [bytes, ik] : order) {
      // Not a structured binding: clang 14 (the fuzz build) cannot capture those.
      const size_t i = ik.first;
      const size_t k = ik.second;
      jobs.push_back([this, i, k] {
        BackupCheckJob& b = backups_[i];
        const BackupFile& f = b.info.files[k];
        try {
          b.checks[k] = check_backup_file(b.dir / f.name, f);
        } catch (const std::exception& e) {
          b.checks[k].problem = e.what();
        }
      });
    }
  }

  void judge_backups() {
    for (const auto& b : backups_) {
      const fs::path json_path = b.dir / "backup.json";
      for (size_t k = 0; k < b.info.files.size(); ++k) {
        const BackupFileCheck& c = b.checks[k];
        ++report_.backup_files;
        report_.backup_stored_bytes += c.stored_bytes;
        const fs::path path = b.dir / b.info.files[k].name;
        if (!c.ok()) {
          damaged(path.string(),
                  c.missing ? "missing: backup " + b.info.id + " cannot be restored" : c.problem);
        }
        if (c.manifest) judge_manifest(b, path, *c.manifest);
      }
      if (repo_ && expected_sysid_ != 0 && !b.info.system_identifier.empty() &&
          b.info.system_identifier != std::to_string(expected_sysid_)) {
        damaged(json_path.string(), "backup " + b.info.id + " belongs to database system " +
                                        b.info.system_identifier + ", the repository to " +
                                        std::to_string(expected_sysid_));
      }
      if (repo_ && b.info.pg_version_num / 10000 != repo_->identity().pg_version_num / 10000 &&
          b.info.pg_version_num != 0 && !report_.identity_from_wal) {
        damaged(json_path.string(), "backup " + b.info.id + " was taken from PostgreSQL " +
                                        std::to_string(b.info.pg_version_num / 10000) +
                                        ", the repository holds PostgreSQL " +
                                        std::to_string(repo_->identity().pg_version_num / 10000));
      }
      judge_backup_wal(b);
    }
  }

  void judge_manifest(const BackupCheckJob& b, const fs::path& path, const BackupManifest& m) {
    if (m.wal_ranges.empty()) {
      damaged(path.string(), "the manifest lists no WAL range");
      return;
    }
    if (m.wal_ranges.front().start != b.info.start_lsn ||
        m.wal_ranges.back().end != b.info.stop_lsn) {
      damaged(path.string(), "its WAL range " + m.wal_ranges.front().start.str() + " to " +
                                 m.wal_ranges.back().end.str() + " is not the backup's (" +
                                 b.info.start_lsn.str() + " to " + b.info.stop_lsn.str() +
                                 " in backup.json)");
    }
  }

  // The WAL from the backup's start to its stop LSN: without it the backup cannot be made
  // consistent, whatever the target.
  void judge_backup_wal(const BackupCheckJob& b) {
    if (!repo_ || b.info.stop_lsn <= b.info.start_lsn) return;
    const uint64_t seg = repo_->segment_size();
    const TimelineHistory path = history_of(b.info.stop_timeline);
    const uint64_t first = segment_of(b.info.start_lsn, seg).value;
    const uint64_t last = segment_of(Lsn(b.info.stop_lsn.value - 1), seg).value;
    const std::string what = "backup " + b.info.id + " cannot be restored: the WAL from " +
                             b.info.start_lsn.str() + " to " + b.info.stop_lsn.str() + " it needs ";
    for (uint64_t s = first; s <= last; ++s) {
      const TimelineId tli = path.timeline_of_segment(SegmentNo(s), seg);
      const WalFileJob* f = file_of(tli, SegmentNo(s));
      if (!f || f->verdict.kind == WalFileVerdict::Kind::vanished) {
        damaged(b.dir.string(), what + "is missing: " + missing_path(tli, SegmentNo(s)).string());
        return;
      }
      if (f->verdict.kind == WalFileVerdict::Kind::damaged) {
        damaged(b.dir.string(), what + "is damaged: " + f->entry.path.string());
        return;
      }
      if (f->entry.partial && segment_start(SegmentNo(s), seg) + f->verdict.content_bytes <
                                  std::min(b.info.stop_lsn, segment_start(SegmentNo(s + 1), seg))) {
        damaged(b.dir.string(), what + "ends early: " + f->entry.path.string() + " holds only " +
                                    std::to_string(f->verdict.content_bytes) + " bytes");
        return;
      }
    }
  }

  // ------------------------------------------------------------------ snapshots
  void check_snapshots() {
    std::vector<std::string> problems;
    std::vector<SnapshotInfo> snapshots;
    try {
      snapshots = load_snapshots(*repo_, &problems);
    } catch (const std::exception& e) {
      problems.push_back(e.what());
    }
    SnapshotVerifyReport r = verify_snapshots(*repo_, snapshots);
    std::error_code ec;
    std::set<std::string> committed;
    for (const auto& s : snapshots) committed.insert(s.id);
    for (const auto& p : problems) {
      // load_snapshots names the file: "snapshot file \"<path>\" is damaged (...)".
      std::string path = repo_->snapshots_dir().string();
      if (auto a = p.find('"'), z = p.find('"', a + 1);
          a != std::string::npos && z != std::string::npos) {
        path = p.substr(a + 1, z - a - 1);
        committed.insert(fs::path(path).parent_path().filename().string());
      }
      damaged(path, p, p);
    }
    for (const auto& p : r.problems) {
      const std::string path =
          !p.object.empty() ? p.object : (repo_->snapshots_dir() / p.snapshot_id).string();
      damaged(path, p.problem, p.describe());
    }
    for (const auto& d : fs::directory_iterator(repo_->snapshots_dir(), ec)) {
      if (!d.is_directory() || committed.contains(d.path().filename().string())) continue;
      warning(d.path().string(),
              "a snapshot that never completed (no snapshot.json); ignored by every reader");
    }
    std::lock_guard lock(mu_);
    report_.snapshots = std::move(r);
  }

  // ------------------------------------------------------------------ report
  void finish() {
    auto& f = report_.findings;
    std::stable_sort(f.begin(), f.end(), [](const VerifyFinding& a, const VerifyFinding& b) {
      if (a.severity != b.severity) return a.severity == VerifyFinding::Severity::damaged;
      return a.path < b.path;
    });
  }

  fs::path root_;
  unsigned jobs_;
  std::optional<Repository> repo_;
  RepoVerifyReport report_;
  std::mutex mu_;
  std::map<TimelineId, TimelineHistory> histories_;
  std::vector<TimelineId> timelines_;
  std::vector<WalFileJob> wal_files_;
  std::vector<WalGap> known_gaps_;
  std::vector<BackupCheckJob> backups_;
  uint64_t expected_sysid_ = 0;
};

}  // namespace

size_t RepoVerifyReport::damaged() const {
  return size_t(std::count_if(findings.begin(), findings.end(), [](const VerifyFinding& f) {
    return f.severity == VerifyFinding::Severity::damaged;
  }));
}

size_t RepoVerifyReport::warnings() const {
  return findings.size() - damaged();
}

Json RepoVerifyReport::to_json() const {
  Json j;
  j["ok"] = ok();
  j["repository"] = root;
  if (identity) {
    j["identity"] = {{"system_identifier", identity->system_identifier},
                     {"pg_version_num", identity->pg_version_num},
                     {"wal_segment_size", identity->wal_segment_size},
                     {"from_wal", identity_from_wal}};
  } else {
    j["identity"] = nullptr;
  }
  j["checked"] = {{"timelines", timelines},
                  {"history_files", history_files},
                  {"wal_segments", wal_segments},
                  {"partial_files", partial_files},
                  {"wal_bytes", wal_bytes},
                  {"wal_stored_bytes", wal_stored_bytes},
                  {"backups", backups},
                  {"backup_files", backup_files},
                  {"backup_stored_bytes", backup_stored_bytes}};
  j["damaged"] = Json::array();
  j["warnings"] = Json::array();
  for (const auto& f : findings) {
    Json item{{"path", f.path}, {"problem", f.problem}};
    (f.severity == VerifyFinding::Severity::damaged ? j["damaged"] : j["warnings"])
        .push_back(std::move(item));
  }
  j["locks"] = Json::array();
  for (const auto& l : locks) {
    j["locks"].push_back({{"path", l.path},
                          {"held", l.holder.has_value()},
                          {"holder", l.holder ? Json(l.holder->describe()) : Json(nullptr)}});
  }
  j["snapshots"] = snapshots.to_json();
  return j;
}

std::string RepoVerifyReport::to_text() const {
  std::string out = "repository " + root + "\n";
  if (identity) {
    out += "  walvault.json: database system " + identity->system_identifier + ", PostgreSQL " +
           pg_version_text(identity->pg_version_num) + ", WAL segments of " +
           human_bytes(identity->wal_segment_size) +
           (identity_from_wal ? " (read from the WAL: walvault.json is unusable)" : "") + "\n";
  }
  out += "  WAL: " + plural(timelines, "timeline", "timelines") + ", " +
         plural(history_files, "history file", "history files") + ", " +
         plural(wal_segments, "segment", "segments") + " and " +
         plural(partial_files, ".partial", ".partial files") + " read back (" +
         human_bytes(wal_bytes) + " of WAL, " + human_bytes(wal_stored_bytes) + " stored)\n";
  out += "  backups: " + std::to_string(backups) + ", " + plural(backup_files, "file", "files") +
         " read back (" + human_bytes(backup_stored_bytes) + ")\n";
  out += "  snapshots: " + std::to_string(snapshots.snapshots) + " checked, " +
         std::to_string(snapshots.objects) + " objects (" + std::to_string(snapshots.bytes) +
         " bytes, " + std::to_string(snapshots.stored_bytes) + " stored) read back\n";
  for (const auto& l : locks) {
    out += "  lock " + l.path + ": " +
           (l.holder ? "held by " + l.holder->describe() : std::string("not held (no damage)")) +
           "\n";
  }
  for (const auto& f : findings) {
    out += std::string("  ") +
           (f.severity == VerifyFinding::Severity::damaged ? "DAMAGED " : "WARNING ") + f.line() +
           "\n";
  }
  return out;
}

RepoVerifyReport verify_repository(const fs::path& root, const RepoVerifyOptions& options) {
  unsigned jobs = options.jobs;
  if (jobs == 0) jobs = std::clamp(std::thread::hardware_concurrency(), 1u, 2u);
  return Verifier(root, jobs).run();
}

}  // namespace walvault
