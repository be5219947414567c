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

#include <fcntl.h>
#include <unistd.h>

#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/repository.h"
#include "pitr/wal_files.h"
#include "pitr/wal_records.h"

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
void check_records(const Repository& repo, const WalFileEntry& file, SegmentNo segno,
                   std::span<const std::byte> bytes) {
  WalRecordScanner scanner(repo.segment_size(), repo.identity().pg_version_num / 10000, nullptr);
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

int wal_get(const Args& args) {
  po::options_description desc("options");
  add_repo_option(desc);
  desc.add_options()("walfile", po::value<std::string>()->required(), "WAL file name (%f)")(
      "destpath", po::value<std::string>()->required(), "where to write it (%p)");
  po::positional_options_description pos;
  pos.add("walfile", 1).add("destpath", 1);
  po::variables_map vm;
  if (!parse_options("wal-get", "--repo DIR WALFILE DESTPATH", desc, args, vm, &pos)) return 0;
  const Repository repo = Repository::open(repo_option(vm));
  const std::string walfile = vm["walfile"].as<std::string>();
  const fs::path dest = vm["destpath"].as<std::string>();

  if (auto tli = parse_history_file_name(walfile)) {
    auto text = read_file_if_exists(repo.history_path(*tli));
    if (!text) return kNotFound;
    write_dest(dest, as_bytes(*text));
    return 0;
  }
  if (auto name = parse_wal_file_name(walfile, repo.segment_size())) {
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
