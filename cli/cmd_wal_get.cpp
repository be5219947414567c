// walvault wal-get: PostgreSQL's restore_command.
//
// Exit status is the protocol with the recovering server:
//   0    the file was written to DESTPATH
//   1    the archive does not hold it (PostgreSQL probes for files that do not exist, such
//        as the next timeline's history file; that is normal and stays quiet)
//   128  anything else: a damaged or unreadable file, a missing repository, bad arguments.
//        PostgreSQL treats a status above 125 as fatal and stops recovery, instead of
//        taking "not found" for the end of the archive and ending recovery early.
//
// A segment the archiver is still writing (`.partial`) is served as its durable prefix
// padded with zeros, as pg_receivewal's partial files are used: PostgreSQL replays its whole
// records and sees the end of WAL after them.
//
// Prefetch (pitr/wal_spool.h): each request also makes sure that one detached background
// prefetcher runs, which fills a local spool with the next --prefetch segments along the
// timeline path (the history of --timeline, else of the requested file's timeline). A request
// is served from the spool when the segment is there (moved out: served once), else from the
// repository as without prefetch. The spool only ever holds complete segments that passed the
// same checks, so the exit statuses above do not change.

#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <thread>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/repository.h"
#include "core/timeline_history.h"
#include "pitr/wal_check.h"
#include "pitr/wal_files.h"
#include "pitr/wal_records.h"
#include "pitr/wal_spool.h"

namespace walvault::cli {
namespace {

constexpr int kNotFound = 1;
constexpr int kFatal = 128;

// Writes to a temporary name beside dest, then renames: PostgreSQL never sees half a file.
void write_dest(const fs::path& dest, std::span<const std::byte> data) {
  fs::path tmp = dest;
  tmp += ".walvault-" + std::to_string(::getpid());
  struct Remove {
    const fs::path& p;
    bool armed = true;
    ~Remove() {
      if (armed) ::unlink(p.c_str());
    }
  } remove{tmp};
  {
    UniqueFd fd = open_or_throw(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    write_all(fd.get(), data, tmp);
    if (::close(fd.release()) != 0)
      throw errno_error("could not write \"" + tmp.string() + "\"", errno);
  }
  if (::rename(tmp.c_str(), dest.c_str()) != 0) {
    throw errno_error("could not rename \"" + tmp.string() + "\" to \"" + dest.string() + "\"",
                      errno);
  }
  remove.armed = false;
}

// Record-level check of what is about to be replayed: PostgreSQL would take an invalid
// record for the end of WAL and end recovery there.
// The pages must also carry the repository's database system and the file's timeline (or an
// ancestor): a file of another cluster or timeline would be replayed as if it were ours.
void check_records(const Repository& repo, const WalFileEntry& file, SegmentNo segno,
                   std::span<const std::byte> bytes) {
  WalRecordScanner scanner(repo.segment_size(), repo.identity().pg_version_num / 10000, nullptr);
  WalPageExpectations expect;
  expect.system_identifier = wal_identity(repo.identity()).system_identifier;
  expect.timeline = file.timeline;
  try {
    const LoadedHistory loaded = load_timeline_history(repo, file.timeline);
    for (const auto& s : loaded.history.spans()) {
      if (s.timeline != file.timeline) expect.ancestors.push_back(s.timeline);
    }
  } catch (const Error&) {
    // A damaged history file: any earlier timeline is accepted (verify names the file).
  }
  scanner.expect(std::move(expect));
  scanner.feed(segment_start(segno, repo.segment_size()), bytes);
  const bool damaged = scanner.stop() == WalScanStop::invalid ||
                       (scanner.stop() == WalScanStop::end_of_wal && !file.partial);
  if (damaged) {
    throw Error("\"" + file.path.string() + "\" is damaged: " + scanner.problem(),
                "run walvault verify on the repository; recovery cannot go past this segment");
  }
}

int serve_segment(const Repository& repo, const WalFileName& name, const std::string& walfile,
                  const fs::path& dest) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto file = find_wal_file(repo, name.timeline, name.segno);
    if (!file) return kNotFound;
    WalFileContent content;
    try {
      content = read_wal_file(*file, repo.segment_size());
    } catch (const WalFileVanished&) {
      continue;  // a .partial completed meanwhile
    }
    check_records(repo, *file, name.segno, content.bytes);
    if (content.partial) {
      std::cerr << "walvault: notice: " << walfile << " is still being archived; serving its "
                << content.bytes.size() << " archived bytes\n";
      content.bytes.resize(repo.segment_size(), std::byte{0});
    }
    write_dest(dest, content.bytes);
    return 0;
  }
  throw Error("\"" + walfile + "\" kept changing while it was read");
}

// ---------------------------------------------------------------------------- prefetch

constexpr uint64_t kMaxSpoolBytes = uint64_t(1) << 30;
constexpr auto kPrefetcherIdle = std::chrono::seconds(30);

// The file PostgreSQL restores for segment segno along history (XLogFileReadAnyTLI: the
// newest timeline that begins at or before the segment and whose file the archive holds, not
// older than the timeline asked for last).
std::optional<WalFileEntry> next_file(const Repository& repo, const TimelineHistory& history,
                                      TimelineId not_before, SegmentNo segno) {
  const auto& spans = history.spans();
  for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
    if (it->timeline.value < not_before.value) break;
    if (it->begin.valid() && segno < segment_of(it->begin, repo.segment_size())) continue;
    if (auto f = find_wal_file(repo, it->timeline, segno)) return f;
  }
  return std::nullopt;
}

// The prefetcher's loop: keeps the segments after the one asked for last in the spool. Returns
// when the spool is gone, when the next segment is not (completely) in the archive or is
// damaged (the request for it then goes to the repository and reports as usual), or when
// nothing was asked for a while.
void prefetch_loop(const Repository& repo, WalSpool& spool, std::optional<TimelineId> timeline) {
  std::optional<TimelineHistory> history;
  std::string last_want;
  auto last_change = std::chrono::steady_clock::now();
  while (spool.exists()) {
    const auto want = spool.want();
    if (!want) return;
    const auto asked = parse_wal_file_name(*want, repo.segment_size());
    if (!asked) return;
    if (*want != last_want) {
      last_want = *want;
      last_change = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - last_change > kPrefetcherIdle) {
      return;
    }
    if (!history) history = load_timeline_history(repo, timeline.value_or(asked->timeline)).history;
    spool.drop_before(*asked);
    bool full = false;
    for (size_t k = 1; k <= spool.max_segments(); ++k) {
      const SegmentNo segno{asked->segno.value + k};
      auto file = next_file(repo, *history, asked->timeline, segno);
      if (!file || file->partial) return;  // the end of the archive (a .partial may still grow)
      const std::string name = wal_file_name(file->timeline, segno, repo.segment_size());
      if (spool.contains(name)) continue;
      if (!spool.has_room()) {
        full = true;
        break;
      }
      WalFileContent content;
      try {
        content = read_wal_file(*file, repo.segment_size());
        check_records(repo, *file, segno, content.bytes);
      } catch (const std::exception&) {
        return;  // wal-get reports it when PostgreSQL asks for this segment
      }
      if (content.partial || content.bytes.size() != repo.segment_size()) return;
      if (!spool.put(name, content.bytes)) {
        if (!spool.exists()) return;
        full = true;
        break;
      }
      spool.count_prefetched(spool.entries().size());
      if (spool.want() != want) break;  // PostgreSQL moved on: re-plan from there
    }
    (void)full;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

bool prefetcher_running(const WalSpool& spool) {
  const int fd = ::open(spool.lock_path().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, kFileMode);
  if (fd < 0) return false;
  const bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0;
  ::close(fd);
  return held;
}

// Double fork: the prefetcher gets its own session, is no child of PostgreSQL's shell and
// survives this wal-get; the lock file makes sure only one runs per spool.
void start_prefetcher(const Repository& repo, WalSpool& spool, std::optional<TimelineId> timeline) {
  if (prefetcher_running(spool)) return;
  std::cout.flush();
  std::cerr.flush();
  const pid_t child = ::fork();
  if (child < 0) return;  // no prefetch, recovery still works
  if (child > 0) {
    int status;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    return;
  }
  ::setsid();
  if (::fork() != 0) ::_exit(0);
  const int null = ::open("/dev/null", O_RDWR);
  if (null >= 0) {
    ::dup2(null, 0);
    ::dup2(null, 1);
    ::dup2(null, 2);
    if (null > 2) ::close(null);
  }
  if (::chdir("/") != 0) ::_exit(0);
  const int lock = ::open(spool.lock_path().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, kFileMode);
  if (lock < 0 || ::flock(lock, LOCK_EX | LOCK_NB) != 0) ::_exit(0);
  try {
    prefetch_loop(repo, spool, timeline);
  } catch (...) {
  }
  ::_exit(0);
}

// Serves a segment from the spool when it is there (waiting briefly while the prefetcher is
// writing exactly that one).
bool serve_from_spool(WalSpool& spool, const std::string& walfile, const fs::path& dest) {
  if (spool.take(walfile, dest)) return true;
  for (int i = 0; i < 1000 && spool.writing(walfile); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (spool.take(walfile, dest)) return true;
  }
  return spool.take(walfile, dest);
}

// Recovery ended (PostgreSQL probes for a history file past the planned timeline when it
// promotes): remove the spool and say how it went.
void finish_spool(const WalSpool& spool) {
  if (!spool.exists()) return;
  const auto s = spool.stats();
  spool.remove();
  std::cerr << "walvault: prefetch: " << s.served_from_spool << " of " << s.requests
            << " segments were served from the spool (at most " << s.max_spooled
            << " spooled at once); spool removed\n";
}

int wal_get(const Args& args) {
  po::options_description desc("options");
  add_repo_option(desc);
  desc.add_options()("walfile", po::value<std::string>()->required(), "WAL file name (%f)")(
      "destpath", po::value<std::string>()->required(), "where to write it (%p)")(
      "prefetch", po::value<int>()->default_value(8),
      "segments to fetch ahead into the spool (0: none)")(
      "spool", po::value<std::string>(),
      "the prefetch spool (default: walvault-prefetch beside DESTPATH, when that is in pg_wal)")(
      "timeline", po::value<uint32_t>(), "the timeline recovery goes to (restore writes it)");
  po::positional_options_description pos;
  pos.add("walfile", 1).add("destpath", 1);
  po::variables_map vm;
  if (!parse_options("wal-get", "--repo DIR WALFILE DESTPATH", desc, args, vm, &pos)) return 0;
  const Repository repo = Repository::open(repo_option(vm));
  const std::string walfile = vm["walfile"].as<std::string>();
  const fs::path dest = vm["destpath"].as<std::string>();
  const int prefetch = vm["prefetch"].as<int>();
  if (prefetch < 0) throw Error("--prefetch must be 0 or more");
  std::optional<TimelineId> timeline;
  if (vm.count("timeline")) timeline = TimelineId(vm["timeline"].as<uint32_t>());
  std::optional<WalSpool> spool;
  if (prefetch > 0) {
    fs::path dir;
    if (vm.count("spool")) {
      dir = fs::absolute(vm["spool"].as<std::string>());
    } else {
      const fs::path parent = fs::absolute(dest).parent_path();
      if (parent.filename() == "pg_wal") dir = parent / "walvault-prefetch";
    }
    if (!dir.empty()) {
      spool.emplace(dir, repo.segment_size(), size_t(prefetch),
                    std::min<uint64_t>(uint64_t(prefetch) * repo.segment_size(),
                                       std::max<uint64_t>(kMaxSpoolBytes, repo.segment_size())));
    }
  }

  if (auto tli = parse_history_file_name(walfile)) {
    if (spool && timeline && tli->value > timeline->value) finish_spool(*spool);
    auto text = read_file_if_exists(repo.history_path(*tli));
    if (!text) return kNotFound;
    // PostgreSQL would stop on a malformed history file too, but later and less clearly.
    const std::string where = "\"" + repo.history_path(*tli).string() + "\"";
    if (tli->value > 1) check_timeline_history_file(*text, *tli, where);
    write_dest(dest, as_bytes(*text));
    return 0;
  }
  if (auto name = parse_wal_file_name(walfile, repo.segment_size())) {
    if (spool) {
      spool->create();
      spool->drop_before(*name);
      spool->set_want(walfile);
      const bool from_spool = serve_from_spool(*spool, walfile, dest);
      if (!from_spool) start_prefetcher(repo, *spool, timeline);
      const int rc = from_spool ? 0 : serve_segment(repo, *name, walfile, dest);
      if (rc == 0) spool->count_request(from_spool);
      if (from_spool) start_prefetcher(repo, *spool, timeline);
      return rc;
    }
    return serve_segment(repo, *name, walfile, dest);
  }
  return kNotFound;  // .partial, .backup and other names the archive never serves
}

}  // namespace

int run_wal_get(const Args& args) {
  try {
    return wal_get(args);
  } catch (const Error& e) {
    std::cerr << "walvault: error: wal-get: " << e.what() << "\n";
    if (!e.hint().empty()) std::cerr << "HINT: " << e.hint() << "\n";
    return kFatal;
  } catch (const std::exception& e) {
    std::cerr << "walvault: error: wal-get: " << e.what() << "\n";
    return kFatal;
  }
}

}  // namespace walvault::cli
