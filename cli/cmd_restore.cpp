// walvault restore: build a restore target for a chosen point.

#include <unistd.h>

#include <algorithm>
#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/log.h"
#include "core/pg_versions.h"
#include "pitr/pg_bindir.h"
#include "pitr/restore.h"
#include "pitr/verifier.h"
#include "snapshot/snapshot_restore.h"

namespace walvault::cli {
namespace {

RecoveryTarget target_from(const po::variables_map& vm) {
  RecoveryTarget t;
  int given = 0;
  if (vm.count("target-time")) {
    ++given;
    t.kind = TargetKind::time;
    t.time = parse_target_time(vm["target-time"].as<std::string>());
  }
  if (vm.count("target-lsn")) {
    ++given;
    t.kind = TargetKind::lsn;
    const std::string text = vm["target-lsn"].as<std::string>();
    auto lsn = Lsn::parse(text);
    if (!lsn || !lsn->valid()) {
      throw usage_error("invalid --target-lsn \"" + text + "\"",
                        "write an LSN as PostgreSQL does, e.g. 0/5D000C90");
    }
    t.lsn = *lsn;
  }
  if (vm.count("target-xid")) {
    ++given;
    t.kind = TargetKind::xid;
    const std::string text = vm["target-xid"].as<std::string>();
    auto xid = text.starts_with("0x") ? std::nullopt : parse_u32(text);
    if (!xid || *xid < 3) {
      throw usage_error("invalid --target-xid \"" + text + "\"",
                        "give a transaction ID (a decimal number)");
    }
    t.xid = *xid;
  }
  if (vm.count("target-name")) {
    ++given;
    t.kind = TargetKind::name;
    t.name = vm["target-name"].as<std::string>();
    if (t.name.empty() || t.name.size() >= 64) {
      throw usage_error("invalid --target-name: a restore point name has 1 to 63 bytes");
    }
  }
  if (vm.count("target")) {
    ++given;
    const std::string text = vm["target"].as<std::string>();
    if (text == "immediate") {
      t.kind = TargetKind::immediate;
    } else if (text == "latest") {
      t.kind = TargetKind::latest;
    } else {
      throw usage_error("invalid --target \"" + text + "\"",
                        "use --target immediate or --target latest");
    }
  }
  if (given > 1) {
    throw usage_error(
        "more than one recovery target given",
        "choose one of --target-time, --target-lsn, --target-xid, --target-name, --target");
  }
  t.inclusive = !vm["target-exclusive"].as<bool>();
  if (!t.inclusive && t.kind != TargetKind::time && t.kind != TargetKind::lsn &&
      t.kind != TargetKind::xid) {
    throw usage_error(
        "--target-exclusive applies to --target-time, --target-lsn and --target-xid only");
  }
  const std::string action = vm["target-action"].as<std::string>();
  auto a = parse_target_action(action);
  if (!a)
    throw usage_error("invalid --target-action \"" + action + "\"",
                      "use promote, pause or shutdown");
  t.action = *a;
  const std::string tl = vm["target-timeline"].as<std::string>();
  auto choice = parse_timeline_choice(tl);
  if (!choice)
    throw usage_error("invalid --target-timeline \"" + tl + "\"",
                      "use latest, current or a timeline number");
  t.timeline = *choice;
  return t;
}

std::map<uint32_t, fs::path> tablespace_dirs_from(const po::variables_map& vm) {
  std::map<uint32_t, fs::path> out;
  if (!vm.count("tablespace-dir")) return out;
  for (const auto& item : vm["tablespace-dir"].as<std::vector<std::string>>()) {
    const size_t eq = item.find('=');
    auto oid = eq == std::string::npos ? std::nullopt : parse_u32(item.substr(0, eq));
    if (!oid || eq + 1 >= item.size()) {
      throw usage_error("invalid --tablespace-dir \"" + item + "\"", "write OID=PATH");
    }
    out[*oid] = fs::absolute(item.substr(eq + 1)).lexically_normal();
  }
  return out;
}

std::map<fs::path, fs::path> tablespace_paths_from(const po::variables_map& vm) {
  std::map<fs::path, fs::path> out;
  if (!vm.count("tablespace")) return out;
  for (const auto& item : vm["tablespace"].as<std::vector<std::string>>()) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 >= item.size()) {
      throw usage_error("invalid --tablespace \"" + item + "\"", "write OLDDIR=NEWDIR");
    }
    const fs::path old_path = fs::path(item.substr(0, eq)).lexically_normal();
    const fs::path new_path = fs::path(item.substr(eq + 1)).lexically_normal();
    if (!old_path.is_absolute() || !new_path.is_absolute()) {
      throw usage_error("invalid --tablespace \"" + item + "\": both paths must be absolute");
    }
    if (!out.emplace(old_path, new_path).second) {
      throw usage_error("--tablespace \"" + old_path.string() + "\" is given twice");
    }
  }
  return out;
}

// --verify and its companions; they are usage errors without it.
std::optional<VerifyOptions> verify_options_from(const po::variables_map& vm,
                                                 const RestoreRequest& request, bool dry_run) {
  if (!vm.count("verify")) {
    for (const char* o : {"verify-sql", "pg-bindir"}) {
      if (vm.count(o)) throw usage_error(std::string("--") + o + " needs --verify");
    }
    return std::nullopt;
  }
  if (dry_run) throw usage_error("--verify and --dry-run exclude each other");
  VerifyOptions v;
  v.data_dir = request.target_dir;
  if (vm.count("pg-bindir")) v.pg_bindir = fs::absolute(vm["pg-bindir"].as<std::string>());
  v.dbname = vm["verify-dbname"].as<std::string>();
  v.timeout = std::chrono::seconds(vm["verify-timeout"].as<unsigned>());
  if (vm.count("verify-sql")) {
    const fs::path file = vm["verify-sql"].as<std::string>();
    auto text = read_file_if_exists(file);
    if (!text) throw usage_error("cannot read --verify-sql file " + file.string());
    v.checks = split_verify_sql(*text);
    v.check_source = file.string();
    if (v.checks.empty())
      throw usage_error("--verify-sql file " + file.string() + " holds no query");
  }
  return v;
}

// --restore-dir: the time the restored database will be at, to choose snapshots by (the newest
// snapshot of each name taken at or before it); nullopt (the newest) for --target latest.
std::optional<Timestamp> snapshot_target_time(Catalog& catalog, const RecoveryPlan& plan) {
  switch (plan.target.kind) {
    case TargetKind::time:
      return plan.target.time;
    case TargetKind::xid:
    case TargetKind::name:
      if (plan.stop.record) return plan.stop.record->time;
      break;
    case TargetKind::lsn:
      if (auto e =
              catalog.wal().last_event(plan.history, plan.backup.start_lsn, plan.stop.replay_until,
                                       [](const WalEvent& ev) { return ev.is_xact(); })) {
        return std::max(e->time, plan.backup.stop_time);
      }
      break;
    case TargetKind::immediate:
      break;
    case TargetKind::latest:
      return std::nullopt;
  }
  return plan.backup.stop_time;
}

std::vector<DirRestoreRequest> restore_dirs_from(const po::variables_map& vm,
                                                 const RestoreRequest& request) {
  std::vector<DirRestoreRequest> out;
  if (!vm.count("restore-dir")) return out;
  for (const auto& item : vm["restore-dir"].as<std::vector<std::string>>()) {
    DirRestoreRequest d = parse_dir_option(item, "--restore-dir");
    std::vector<fs::path> others{request.target_dir};
    for (const auto& [oid, dir] : request.tablespace_dirs) others.push_back(dir);
    for (const auto& [old_dir, dir] : request.tablespace_paths) others.push_back(dir);
    for (const auto& o : others) {
      const std::string a = d.path.string() + "/", b = o.string() + "/";
      if (a.starts_with(b) || b.starts_with(a)) {
        throw usage_error("--restore-dir " + item + " overlaps \"" + o.string() + "\"",
                          "restore directories next to the data directory, not inside it");
      }
    }
    out.push_back(std::move(d));
  }
  return out;
}

// pg_ctl of the restored cluster's major, by its full path when one is installed.
std::string pg_ctl_advice(int major) {
  if (auto dir = find_pg_bindir(PgBindirSearch{major, std::nullopt});
      dir && ::access((*dir / "pg_ctl").c_str(), X_OK) == 0) {
    return shell_quote((*dir / "pg_ctl").string());
  }
  return "pg_ctl";
}

int verify_and_report(const RecoveryPlan& plan, const RestoreRequest& request,
                      const RestoreOwner& owner, const RestoreResult& result, VerifyOptions v,
                      bool json) {
  v.owner = owner;
  const VerifyReport report = verify_restore(plan, v);
  if (json) {
    Json j = plan_to_json(plan, request, owner);
    j["restored"] = {{"files", result.files}, {"bytes", result.bytes}};
    j["verify"] = verify_to_json(report);
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << "restored backup " << plan.backup.id << " into " << request.target_dir.string()
              << " (" << result.files << " files)\n"
              << plan_to_text(plan, request, owner) << verify_to_text(report);
  }
  if (!report.passed) {
    throw Error("verification failed: " + report.failure,
                "the restored directory is left as it is; the server log says more" +
                    (report.log_file.empty() ? std::string() : " (" + report.log_file + ")"));
  }
  return 0;
}

}  // namespace

int run_restore(const Args& args) {
  po::options_description desc("options");
  add_repo_option(desc);
  desc.add_options()("target-dir", po::value<std::string>()->required(),
                     "where to build the data directory (absent or empty)")(
      "target-time", po::value<std::string>(),
      "recover to this time (a zone is optional; without one, local time)")(
      "target-lsn", po::value<std::string>(), "recover to this LSN")(
      "target-xid", po::value<std::string>(), "recover to the end of this transaction")(
      "target-name", po::value<std::string>(), "recover to this restore point")(
      "target", po::value<std::string>(),
      "immediate (as soon as consistent) or latest (all WAL, the default)")(
      "target-exclusive", po::bool_switch()->default_value(false), "stop just before the target")(
      "target-timeline", po::value<std::string>()->default_value("latest"),
      "latest, current or a number")("target-action",
                                     po::value<std::string>()->default_value("promote"),
                                     "at the target: promote, pause or shutdown")(
      "owner", po::value<std::string>(),
      "OS user that will run PostgreSQL (default: you, or postgres for root)")(
      "tablespace-dir", po::value<std::vector<std::string>>(),
      "OID=PATH: restore a tablespace there")(
      "tablespace", po::value<std::vector<std::string>>(),
      "OLDDIR=NEWDIR: restore the tablespace that was at OLDDIR into NEWDIR (repeatable)")(
      "dry-run", "print the plan, write nothing")("json", "print the plan as JSON")(
      "verify", "start PostgreSQL on the result, check it, stop it (see docs/pitr.md)")(
      "verify-sql", po::value<std::string>(),
      "with --verify: a file of queries that must each return true")(
      "verify-dbname", po::value<std::string>()->default_value("postgres"),
      "with --verify: the database the --verify-sql queries run in")(
      "verify-timeout", po::value<unsigned>()->default_value(3600),
      "with --verify: seconds recovery may take to reach the target")(
      "pg-bindir", po::value<std::string>(),
      "with --verify: the bin directory of the cluster's PostgreSQL major (default: searched, "
      "see docs/pitr.md)")(
      "restore-dir", po::value<std::vector<std::string>>(),
      "NAME=PATH: restore the newest snapshot of NAME taken at or before the target into PATH "
      "(absent or empty; repeatable)");
  po::variables_map vm;
  if (!parse_options("restore",
                     "--repo DIR --target-dir DIR [--target-time TS | --target-lsn LSN | "
                     "--target-xid XID | --target-name NAME | --target immediate|latest] [...]",
                     desc, args, vm)) {
    return 0;
  }
  RestoreRequest request;
  request.target = target_from(vm);
  request.target_dir = fs::absolute(vm["target-dir"].as<std::string>()).lexically_normal();
  request.tablespace_dirs = tablespace_dirs_from(vm);
  request.tablespace_paths = tablespace_paths_from(vm);
  if (vm.count("owner")) request.owner = vm["owner"].as<std::string>();
  const bool dry_run = vm.count("dry-run") > 0;
  const bool json = vm.count("json") > 0;

  std::optional<VerifyOptions> verify = verify_options_from(vm, request, dry_run);
  const std::vector<DirRestoreRequest> dir_requests = restore_dirs_from(vm, request);
  check_restore_target(request.target_dir);
  const RestoreOwner owner = resolve_restore_owner(request.owner);
  const Repository repo = Repository::open(repo_option(vm));
  Catalog catalog(repo);
  const RecoveryPlan plan = plan_restore(catalog, request.target);
  tablespace_targets(plan.backup, request);  // a bad mapping is refused before any writing
  // The restored cluster starts only under a server of its own major: find it (or refuse)
  // before anything is written. The verifier checks PG_VERSION against it again.
  const int major = pg_major_of(repo.identity().pg_version_num);
  if (verify && !dry_run)
    verify->pg_bindir = require_pg_bindir(PgBindirSearch{major, verify->pg_bindir});
  if (auto w = access_warning(owner, repo.root(), self_executable(), request.target_dir);
      !w.empty()) {
    log::warning(w);
  }

  // Snapshots are chosen and their targets checked before anything is written.
  DirRestoreSet dirs(repo, dir_requests, snapshot_target_time(catalog, plan));
  dirs.check_targets();
  request.snapshots = dirs.to_json();
  request.snapshots_text = dirs.to_text("directory        ");

  if (dry_run) {
    if (json) {
      std::cout << plan_to_json(plan, request, owner).dump(2) << "\n";
    } else {
      std::cout << "restore plan (dry run: nothing written)\n"
                << plan_to_text(plan, request, owner);
    }
    return 0;
  }
  // Everything the database restore needs is read and checked before anything is written.
  check_plan_inputs(repo, plan);
  request.inputs_checked = true;
  // The directories first: their objects are all read and checked before anything is
  // written, and if the database restore fails they are removed again.
  DirRestoreOptions dir_options;
  dir_options.restore_owners = ::geteuid() == 0;
  dirs.restore(dir_options);
  RestoreResult result;
  try {
    result = execute_restore(repo, plan, request, owner);
  } catch (...) {
    dirs.undo();
    throw;
  }
  if (verify) return verify_and_report(plan, request, owner, result, *verify, json);
  if (json) {
    Json j = plan_to_json(plan, request, owner);
    j["restored"] = {{"files", result.files}, {"bytes", result.bytes}};
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << "restored backup " << plan.backup.id << " into " << request.target_dir.string()
            << " (" << result.files << " files)\n"
            << plan_to_text(plan, request, owner) << "\n"
            << "next: start PostgreSQL " << major << " on it as " << owner.name << ", e.g.\n"
            << "  " << pg_ctl_advice(major) << " -D " << shell_quote(request.target_dir.string())
            << " start\n"
            << "it replays WAL from the repository (walvault wal-get) and stops "
            << describe(plan.stop) << ";\n";
  switch (plan.target.kind == TargetKind::latest ? TargetAction::promote : plan.target.action) {
    case TargetAction::promote:
      std::cout << "then it promotes (a new timeline) and accepts writes.\n";
      break;
    case TargetAction::pause:
      std::cout << "then it pauses, read-only: check the data, then run SELECT pg_promote(); to "
                   "open it for writes.\n";
      break;
    case TargetAction::shutdown:
      std::cout << "then it shuts down.\n";
      break;
  }
  return 0;
}

}  // namespace walvault::cli
