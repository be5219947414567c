#include "service/service_config.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/repository.h"

namespace walvault {
namespace po = boost::program_options;
namespace {

// Where each value came from, for messages: "--backup-interval" or "FILE line 7".
struct Origins {
  std::set<std::string> flags;       // keys given on the command line
  std::map<std::string, int> lines;  // key -> line of the config file
  std::string file;

  std::string of(const std::string& key) const {
    if (flags.count(key) || !lines.count(key)) return "--" + key;
    return file + " line " + std::to_string(lines.at(key));
  }
};

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

const std::set<std::string> kRepeatable = {"dir", "exclude", "backup-time", "snapshot-time"};

// Boost names neither the line of an unknown key nor of a repeated one: find them here,
// before Boost reads the file.
void check_file_keys(const std::string& file, const std::string& text,
                     const po::options_description& desc, Origins& origins) {
  std::istringstream in(text);
  std::string line;
  int number = 0;
  const std::string hint = "docs/configuration.md lists the options (walvault service --help)";
  while (std::getline(in, line)) {
    ++number;
    const std::string t = trim(line.substr(0, line.find('#')));
    if (t.empty()) continue;
    const std::string where = file + " line " + std::to_string(number);
    if (t.front() == '[') {
      throw usage_error("sections are not supported (" + where + ": \"" + t + "\")",
                        "write every option as KEY = VALUE at the top level");
    }
    const auto eq = t.find('=');
    if (eq == std::string::npos) {
      throw usage_error("expected KEY = VALUE in " + where + ", found \"" + t + "\"",
                        "a switch is written as, e.g., create-slot = true");
    }
    const std::string key = trim(t.substr(0, eq));
    const po::option_description* option = desc.find_nothrow(key, false);
    if (!option || key == "config" || key == "help" || key == "check-config") {
      throw usage_error("unknown option \"" + key + "\" in " + where, hint);
    }
    const bool repeatable = kRepeatable.count(key) > 0;
    if (origins.lines.count(key) && !repeatable) {
      throw usage_error("option \"" + key + "\" is given twice in " + file + " (lines " +
                            std::to_string(origins.lines[key]) + " and " + std::to_string(number) +
                            ")",
                        "keep one of them");
    }
    if (!origins.lines.count(key)) origins.lines[key] = number;
  }
}

template <typename T>
std::optional<T> get(const po::variables_map& vm, const char* key) {
  if (!vm.count(key)) return std::nullopt;
  return vm[key].as<T>();
}

std::vector<std::string> strings(const po::variables_map& vm, const char* key) {
  return get<std::vector<std::string>>(vm, key).value_or(std::vector<std::string>{});
}

int int_in_range(const po::variables_map& vm, const Origins& origins, const char* key, int low,
                 int high) {
  const std::string text = vm[key].as<std::string>();
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty() || v < low || v > high) {
    throw usage_error(
        "invalid " + std::string(key) + " \"" + text + "\" (" + origins.of(key) + ")",
        "give a whole number from " + std::to_string(low) + " to " + std::to_string(high));
  }
  return int(v);
}

Schedule schedule_option(const po::variables_map& vm, const Origins& origins,
                         const std::string& prefix) {
  const std::string interval_key = prefix + "-interval";
  const std::string time_key = prefix + "-time";
  Schedule s;
  if (vm.count(interval_key) && vm.count(time_key)) {
    throw usage_error(interval_key + " (" + origins.of(interval_key) + ") and " + time_key + " (" +
                          origins.of(time_key) + ") do not mix",
                      "schedule " + prefix + "s either every INTERVAL or at times of day");
  }
  if (vm.count(interval_key)) {
    const std::string text = vm[interval_key].as<std::string>();
    s.interval = parse_duration(text);
    if (!s.interval) {
      throw usage_error(
          "invalid " + interval_key + " \"" + text + "\" (" + origins.of(interval_key) + ")",
          "give a duration such as 24h, 15min, 90s or 1h30m");
    }
  }
  for (const std::string& text : strings(vm, time_key.c_str())) {
    const auto minute = parse_time_of_day(text);
    if (!minute) {
      throw usage_error(
          "invalid " + time_key + " \"" + text + "\" (" + origins.of(time_key) + ")",
          "give a local time of day as HH:MM, e.g. 02:30; repeat the option for more");
    }
    s.minutes_of_day.push_back(*minute);
  }
  std::sort(s.minutes_of_day.begin(), s.minutes_of_day.end());
  s.minutes_of_day.erase(std::unique(s.minutes_of_day.begin(), s.minutes_of_day.end()),
                         s.minutes_of_day.end());
  return s;
}

std::optional<ListenAddress> parse_listen(const std::string& text) {
  ListenAddress a;
  std::string rest;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    a.host = text.substr(1, close - 1);
    rest = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) return std::nullopt;
    a.host = text.substr(0, colon);
    if (a.host.find(':') != std::string::npos) return std::nullopt;  // IPv6 needs brackets
    rest = text.substr(colon + 1);
  }
  if (a.host.empty() || rest.empty() || rest.size() > 5 ||
      !std::all_of(rest.begin(), rest.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  const int port = std::stoi(rest);
  if (port < 1 || port > 65535) return std::nullopt;
  a.port = rest;
  return a;
}

// 7 -> "7", 0.5 -> "0.5" (no trailing zeros).
std::string format_days(double d) {
  std::ostringstream out;
  out << d;
  return out.str();
}

}  // namespace

std::string ListenAddress::describe() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + port;
}

po::options_description service_options() {
  po::options_description desc("service options (also keys of the config file)");
  // Values are read as strings and checked below, so that a message can say where a bad one
  // came from (Boost's own conversion errors cannot).
  // clang-format off
  desc.add_options()
      ("help,h", "show this help")
      ("config", po::value<std::string>(), "INI file with the options below (flags win over it)")
      ("check-config", po::bool_switch(),
       "check the configuration, print it and exit (0: valid, 2: invalid)")
      ("repo", po::value<std::string>(), "repository directory (default: $WALVAULT_REPO)")
      ("dbname,d", po::value<std::string>(),
       "libpq connection string or URI (default: PG* environment variables)")
      ("slot", po::value<std::string>(), "physical replication slot to stream from")
      ("create-slot", po::bool_switch(), "create the slot (RESERVE_WAL) if it does not exist")
      ("allow-gap", po::bool_switch(),
       "when the server no longer has the WAL at the archive's end, record the gap and go on")
      ("synchronous", po::bool_switch(), "flush and report as soon as the stream is idle")
      ("compress", po::value<std::string>(), "lz4 (default) or none")
      ("io", po::value<std::string>(), "auto (default), uring or pwrite")
      ("application-name", po::value<std::string>(),
       "application_name of the replication connection (default: walvault)")
      ("status-interval-ms", po::value<std::string>(),
       "interval between status updates to the server (default: 10000)")
      ("backup-interval", po::value<std::string>(), "take a base backup every DURATION (24h)")
      ("backup-time", po::value<std::vector<std::string>>(),
       "take a base backup at HH:MM local time (repeatable)")
      ("checkpoint", po::value<std::string>(), "backup checkpoint: spread (default) or fast")
      ("wal-timeout-s", po::value<std::string>(),
       "seconds a backup waits for the archiver to archive its WAL (default: 120)")
      ("backup-max-rate", po::value<std::string>(),
       "the server sends a backup at most this fast, in kB/s (32 .. 1048576; default: no limit)")
      ("dir", po::value<std::vector<std::string>>(),
       "NAME=PATH: snapshot directory PATH under NAME with each backup (repeatable)")
      ("exclude", po::value<std::vector<std::string>>(),
       "GLOB: leave out entries of the dirs matching it (repeatable)")
      ("snapshot-interval", po::value<std::string>(),
       "also snapshot the dirs every DURATION (15min)")
      ("snapshot-time", po::value<std::vector<std::string>>(),
       "also snapshot the dirs at HH:MM local time (repeatable)")
      ("retain-full", po::value<std::string>(),
       "after each backup keep the N newest complete backups (walvault expire --retain-full)")
      ("retain-days", po::value<std::string>(),
       "after each backup keep the backups needed to restore the last D days")
      ("metrics-listen", po::value<std::string>(),
       "ADDR:PORT: serve Prometheus metrics at http://ADDR:PORT/metrics")
      ("metrics-textfile", po::value<std::string>(),
       "PATH: write Prometheus metrics to PATH (node_exporter textfile collector)")
      ("metrics-interval", po::value<std::string>(),
       "how often the textfile is rewritten (default: 15s)")
      ("log-level", po::value<std::string>(), "debug, info (default), warning or error");
  // clang-format on
  return desc;
}

std::optional<ServiceConfig> load_service_config(const std::vector<std::string>& args,
                                                 std::ostream& help_out) {
  const po::options_description desc = service_options();
  po::variables_map vm;
  Origins origins;
  ServiceConfig c;
  try {
    po::command_line_parser parser(args);
    parser.options(desc);
    const po::parsed_options parsed = parser.run();
    for (const auto& o : parsed.options) origins.flags.insert(o.string_key);
    po::store(parsed, vm);
    if (vm.count("help")) {
      help_out << "usage: walvault service [--config FILE] [OPTIONS]\n\n" << desc << "\n";
      return std::nullopt;
    }
    if (vm.count("config")) {
      c.config_file = fs::path(vm["config"].as<std::string>());
      origins.file = c.config_file->string();
      std::ifstream in(*c.config_file);
      if (!in) {
        throw usage_error("could not read the config file \"" + origins.file + "\"",
                          "check the path given to --config and its permissions");
      }
      std::stringstream text;
      text << in.rdbuf();
      check_file_keys(origins.file, text.str(), desc, origins);
      std::istringstream again(text.str());
      po::store(po::parse_config_file(again, desc), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    std::string where;
    // Boost's message names the option; add the line when it came from the file.
    for (const auto& [key, line] : origins.lines) {
      const std::string what = e.what();
      const bool named = what.find("'--" + key + "'") != std::string::npos ||
                         what.find("'" + key + "'") != std::string::npos;
      if (named && !origins.flags.count(key)) {
        where = " (" + origins.file + " line " + std::to_string(line) + ")";
      }
    }
    throw usage_error(e.what() + where, "see walvault service --help and docs/configuration.md");
  }

  if (auto repo = get<std::string>(vm, "repo")) {
    c.repo = *repo;
  } else if (const char* env = std::getenv("WALVAULT_REPO"); env && *env) {
    c.repo = env;
  } else {
    throw usage_error("no repository given",
                      "set repo = DIR in the config file, pass --repo DIR "
                      "or set WALVAULT_REPO");
  }
  c.check_only = vm["check-config"].as<bool>();
  c.conninfo = get<std::string>(vm, "dbname").value_or("");
  c.slot = get<std::string>(vm, "slot").value_or("");
  c.create_slot = vm["create-slot"].as<bool>();
  c.allow_gap = vm["allow-gap"].as<bool>();
  c.synchronous = vm["synchronous"].as<bool>();
  if (c.create_slot && c.slot.empty()) {
    throw usage_error("create-slot (" + origins.of("create-slot") + ") needs slot = NAME");
  }
  if (auto text = get<std::string>(vm, "compress")) {
    auto v = parse_compression(*text);
    if (!v) {
      throw usage_error("invalid compress \"" + *text + "\" (" + origins.of("compress") + ")",
                        "use lz4 or none");
    }
    c.compression = *v;
  }
  if (auto text = get<std::string>(vm, "io")) {
    auto v = parse_io_mode(*text);
    if (!v) {
      throw usage_error("invalid io \"" + *text + "\" (" + origins.of("io") + ")",
                        "use auto, uring or pwrite");
    }
    c.io = *v;
  }
  if (auto text = get<std::string>(vm, "application-name")) c.application_name = *text;
  if (vm.count("status-interval-ms")) {
    c.status_interval_ms = int_in_range(vm, origins, "status-interval-ms", 1, 3'600'000);
  }

  c.backup = schedule_option(vm, origins, "backup");
  c.snapshot = schedule_option(vm, origins, "snapshot");
  if (auto text = get<std::string>(vm, "checkpoint")) {
    if (*text == "fast") {
      c.checkpoint = CheckpointMode::fast;
    } else if (*text != "spread") {
      throw usage_error("invalid checkpoint \"" + *text + "\" (" + origins.of("checkpoint") + ")",
                        "use fast or spread");
    }
  }
  if (vm.count("wal-timeout-s")) {
    c.wal_timeout_s = int_in_range(vm, origins, "wal-timeout-s", 0, 86'400);
  }
  if (vm.count("backup-max-rate")) {
    c.backup_max_rate_kbps = uint32_t(int_in_range(vm, origins, "backup-max-rate", 32, 1'048'576));
  }
  c.dirs = strings(vm, "dir");
  c.excludes = strings(vm, "exclude");
  if (!c.excludes.empty() && c.dirs.empty()) {
    throw usage_error("exclude (" + origins.of("exclude") + ") goes with dir = NAME=PATH");
  }
  if (c.snapshot.enabled() && c.dirs.empty()) {
    throw usage_error("snapshots are scheduled (" +
                          origins.of(c.snapshot.interval ? "snapshot-interval" : "snapshot-time") +
                          ") but no directory is given",
                      "add dir = NAME=PATH (repeatable)");
  }
  if (vm.count("retain-full") && vm.count("retain-days")) {
    throw usage_error("retain-full (" + origins.of("retain-full") + ") and retain-days (" +
                          origins.of("retain-days") + ") do not mix",
                      "keep either the N newest backups or those of the last D days");
  }
  if (vm.count("retain-full")) c.retain_full = int_in_range(vm, origins, "retain-full", 1, 10'000);
  if (auto text = get<std::string>(vm, "retain-days")) {
    size_t used = 0;
    double d = 0;
    try {
      d = std::stod(*text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != text->size() || !(d > 0) || d > 36'500) {
      throw usage_error(
          "invalid retain-days \"" + *text + "\" (" + origins.of("retain-days") + ")",
          "give a number of days above 0, at most 36500 (fractions allowed, e.g. 0.5)");
    }
    c.retain_days = d;
  }
  if (c.retention_enabled() && !c.backup.enabled()) {
    log::warning(
        "retention is configured but no backups are scheduled: it runs after each "
        "backup, so it will not run");
  }

  if (auto text = get<std::string>(vm, "metrics-listen")) {
    c.metrics_listen = parse_listen(*text);
    if (!c.metrics_listen) {
      throw usage_error(
          "invalid metrics-listen \"" + *text + "\" (" + origins.of("metrics-listen") + ")",
          "give ADDR:PORT, e.g. 127.0.0.1:9187 or [::1]:9187");
    }
  }
  if (auto text = get<std::string>(vm, "metrics-textfile")) {
    if (text->empty() || text->back() == '/') {
      throw usage_error(
          "invalid metrics-textfile \"" + *text + "\" (" + origins.of("metrics-textfile") + ")",
          "give the path of a file");
    }
    c.metrics_textfile = fs::path(*text);
  }
  if (auto text = get<std::string>(vm, "metrics-interval")) {
    const auto d = parse_duration(*text);
    if (!d || *d > std::chrono::hours(1)) {
      throw usage_error(
          "invalid metrics-interval \"" + *text + "\" (" + origins.of("metrics-interval") + ")",
          "give a duration from 1s to 1h, e.g. 15s");
    }
    c.metrics_interval = *d;
  }
  if (auto text = get<std::string>(vm, "log-level")) {
    if (!log::parse_level(*text, c.log_level)) {
      throw usage_error("invalid log-level \"" + *text + "\" (" + origins.of("log-level") + ")",
                        "use debug, info, warning or error");
    }
  }
  return c;
}

bool archiver_settings_differ(const ServiceConfig& a, const ServiceConfig& b) {
  return a.repo != b.repo || a.conninfo != b.conninfo || a.slot != b.slot ||
         a.create_slot != b.create_slot || a.allow_gap != b.allow_gap ||
         a.synchronous != b.synchronous || a.compression != b.compression || a.io != b.io ||
         a.application_name != b.application_name || a.status_interval_ms != b.status_interval_ms;
}

std::string redact_conninfo(const std::string& conninfo) {
  // URI: postgresql://user:secret@host/db -> postgresql://user:***@host/db
  static const std::regex uri_password(R"(^(postgres(?:ql)?://[^:@/?]*:)[^@/?]*@)");
  // key=value (also a URI's ?password=...): password=secret, password = 'se cret'
  static const std::regex kv_password(R"((password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]*))",
                                      std::regex::icase);
  std::string out = std::regex_replace(conninfo, uri_password, "$1***@");
  return std::regex_replace(out, kv_password, "$1***");
}

std::vector<std::string> describe(const ServiceConfig& c) {
  std::vector<std::string> out;
  out.push_back("config file: " + (c.config_file ? c.config_file->string() : std::string("none")));
  out.push_back("repository: " + c.repo.string());
  out.push_back("server: " +
                (c.conninfo.empty() ? std::string("(PG* environment variables)")
                                    : redact_conninfo(c.conninfo)) +
                (c.slot.empty() ? std::string(", no replication slot")
                                : ", slot \"" + c.slot + "\"" +
                                      (c.create_slot ? " (created if absent)" : "")));
  std::string dirs;
  for (const auto& d : c.dirs) dirs += (dirs.empty() ? "" : ", ") + d;
  out.push_back("base backups: " + c.backup.describe() +
                (c.backup_max_rate_kbps
                     ? ", at most " + std::to_string(c.backup_max_rate_kbps) + " kB/s"
                     : std::string()) +
                (dirs.empty() ? std::string() : ", with snapshots of " + dirs));
  out.push_back("snapshots: " + c.snapshot.describe());
  out.push_back("retention: " +
                (c.retain_full ? "keep the " + std::to_string(*c.retain_full) + " newest backups"
                 : c.retain_days
                     ? "keep what restores the last " + format_days(*c.retain_days) + " days"
                     : std::string("none (the repository grows)")));
  std::string metrics;
  if (c.metrics_listen) metrics = "http://" + c.metrics_listen->describe() + "/metrics";
  if (c.metrics_textfile) {
    metrics += (metrics.empty() ? "" : " and ") + c.metrics_textfile->string() + " (every " +
               format_duration(c.metrics_interval) + ")";
  }
  out.push_back("metrics: " + (metrics.empty() ? std::string("none") : metrics));
  return out;
}

}  // namespace walvault
