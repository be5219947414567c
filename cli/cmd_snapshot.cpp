// walvault snapshot: take snapshots of directories (--dir), list them (--list), or restore
// directories alone, without a database (--restore). The work is in snapshot/.

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/log.h"
#include "pitr/recovery_target.h"
#include "snapshot/snapshot_listing.h"
#include "snapshot/snapshot_restore.h"
#include "snapshot/snapshot_writer.h"

namespace walvault::cli {
namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) {
  g_stop = true;
}

// SIGINT/SIGTERM end a snapshot cleanly: its directory and temporary files are removed.
void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

std::vector<std::string> strings(const po::variables_map& vm, const char* key) {
  return vm.count(key) ? vm[key].as<std::vector<std::string>>() : std::vector<std::string>{};
}

Json summary_json(const SnapshotInfo& s) {
  Json j = to_json(s);
  j.erase("entries");
  return j;
}

int take(const Repository& repo, const po::variables_map& vm) {
  const std::vector<SnapshotRequest> requests =
      snapshot_requests(strings(vm, "dir"), strings(vm, "exclude"));
  Json out = Json::array();
  uint64_t inconsistent = 0;
  for (const auto& r : requests) {
    SnapshotOptions options;
    options.stop_requested = [] { return g_stop.load(); };
    const SnapshotInfo info = take_snapshot(repo, r, options);
    inconsistent += info.inconsistent.size();
    if (vm.count("json")) {
      out.push_back(summary_json(info));
    } else {
      std::cout << describe(info) << "\n";
    }
  }
  if (vm.count("json")) std::cout << out.dump(2) << "\n";
  if (inconsistent) {
    log::warning(std::to_string(inconsistent) +
                 " file(s) kept changing while read and are recorded as inconsistent");
  }
  return 0;
}

int list(const Repository& repo, const po::variables_map& vm) {
  std::vector<std::string> problems;
  const std::vector<SnapshotInfo> all = load_snapshots(repo, &problems);
  for (const auto& p : problems) log::warning(p);
  if (vm.count("json")) {
    std::cout << snapshots_to_json(all).dump(2) << "\n";
  } else {
    std::cout << "snapshots\n" << snapshots_to_text(all);
  }
  return 0;
}

int restore(const Repository& repo, const po::variables_map& vm) {
  std::vector<DirRestoreRequest> requests;
  for (const auto& item : strings(vm, "restore")) {
    requests.push_back(parse_dir_option(item, "--restore"));
  }
  std::optional<Timestamp> target;
  if (vm.count("target-time")) target = parse_target_time(vm["target-time"].as<std::string>());
  std::optional<DirRestoreSet> set;
  if (vm.count("snapshot-id")) {
    const std::string id = vm["snapshot-id"].as<std::string>();
    if (target) throw usage_error("give --snapshot-id or --target-time, not both");
    if (requests.size() != 1) throw usage_error("--snapshot-id goes with exactly one --restore");
    std::vector<SnapshotInfo> all = load_snapshots(repo);
    std::erase_if(all, [&](const SnapshotInfo& s) { return s.id != id; });
    if (all.empty()) {
      throw unreachable_error("the repository has no snapshot " + id,
                              "walvault snapshot --list shows the snapshots");
    }
    if (all.front().name != requests.front().name) {
      throw usage_error("snapshot " + id + " is a snapshot of \"" + all.front().name +
                        "\", not of \"" + requests.front().name + "\"");
    }
    set.emplace(repo, plan_dir_restores(all, requests, std::nullopt));
  } else {
    set.emplace(repo, requests, target);
  }
  DirRestoreOptions options;
  options.restore_owners = ::geteuid() == 0;
  const std::vector<DirRestoreResult> results = set->restore(options);
  for (size_t i = 0; i < results.size(); ++i) {
    const PlannedDirRestore& p = set->plans()[i];
    const DirRestoreResult& r = results[i];
    std::cout << "restored " << p.snapshot.name << " into " << p.path.string() << " from "
              << describe(p) << ": " << r.files << " files, " << r.dirs << " dirs, " << r.symlinks
              << " symlinks, " << r.bytes << " bytes\n";
  }
  if (!options.restore_owners) {
    log::info("not running as root: restored files belong to you, not to their recorded owners");
  }
  return 0;
}

}  // namespace

int run_snapshot(const Args& args) {
  po::options_description desc("options");
  add_repo_option(desc);
  desc.add_options()("dir", po::value<std::vector<std::string>>(),
                     "NAME=PATH: take a snapshot of directory PATH under NAME (repeatable)")(
      "exclude", po::value<std::vector<std::string>>(),
      "GLOB: leave out entries matching it (a name, or a path with '/'; repeatable)")(
      "list", "list the snapshots in the repository")(
      "restore", po::value<std::vector<std::string>>(),
      "NAME=PATH: restore the newest snapshot of NAME into PATH (absent or empty; repeatable)")(
      "target-time", po::value<std::string>(),
      "with --restore: the newest snapshot taken at or before this time")(
      "snapshot-id", po::value<std::string>(), "with --restore: this snapshot")("json",
                                                                                "print JSON");
  po::variables_map vm;
  if (!parse_options("snapshot",
                     "--repo DIR --dir NAME=PATH [--dir NAME=PATH ...] [--exclude GLOB ...]\n"
                     "       walvault snapshot --repo DIR --list [--json]\n"
                     "       walvault snapshot --repo DIR --restore NAME=PATH [...] "
                     "[--target-time TS | --snapshot-id ID]",
                     desc, args, vm)) {
    return 0;
  }
  const int modes =
      int(vm.count("dir") > 0) + int(vm.count("list") > 0) + int(vm.count("restore") > 0);
  if (modes != 1) {
    throw usage_error(modes == 0 ? "nothing to do" : "--dir, --list and --restore do not mix",
                      "take snapshots with --dir NAME=PATH, list them with --list, restore "
                      "with --restore NAME=PATH");
  }
  if (!vm.count("dir") && vm.count("exclude")) throw usage_error("--exclude goes with --dir");
  if (!vm.count("restore") && (vm.count("target-time") || vm.count("snapshot-id"))) {
    throw usage_error("--target-time and --snapshot-id go with --restore");
  }
  const fs::path repo_path = repo_option(vm);
  if (vm.count("dir")) ::umask(077);
  const Repository repo = Repository::open(repo_path);
  if (vm.count("dir")) {
    install_stop_handlers();
    return take(repo, vm);
  }
  if (vm.count("list")) return list(repo, vm);
  return restore(repo, vm);
}

}  // namespace walvault::cli
