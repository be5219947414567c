// walvault service's configuration: the file and the flags, and the one-line errors that
// name the key and its line.

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "core/error.h"
#include "service/metrics_server.h"
#include "service/service_config.h"
#include "service/service_metrics.h"

namespace walvault {
namespace {

class ServiceConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("walvault-config-test-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    unsetenv("WALVAULT_REPO");
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& text) {
    const fs::path p = dir_ / "walvault.conf";
    std::ofstream(p) << text;
    return p.string();
  }

  ServiceConfig load(const std::vector<std::string>& args) {
    std::ostringstream help;
    auto c = load_service_config(args, help);
    EXPECT_TRUE(c);
    return c ? *c : ServiceConfig{};
  }

  // The usage error's message for these args (exit code 2 checked too).
  std::string error_of(const std::vector<std::string>& args) {
    std::ostringstream help;
    try {
      load_service_config(args, help);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::usage) << e.what();
      return e.what();
    }
    ADD_FAILURE() << "no error";
    return {};
  }

  fs::path dir_;
};

TEST_F(ServiceConfigTest, ReadsEveryKindOfOption) {
  const std::string file = write(
      "# walvault service\n"
      "repo = /srv/walvault\n"
      "dbname = host=/run/postgresql user=walvault\n"
      "slot = walvault\n"
      "create-slot = true\n"
      "compress = none\n"
      "io = pwrite\n"
      "\n"
      "backup-interval = 24h\n"
      "checkpoint = fast\n"
      "dir = data=/srv/authentik/data\n"
      "dir = certs=/srv/authentik/certs   # inline comment\n"
      "exclude = *.tmp\n"
      "snapshot-interval = 15min\n"
      "metrics-listen = 127.0.0.1:9187\n"
      "metrics-textfile = /var/lib/node_exporter/walvault.prom\n"
      "metrics-interval = 30s\n"
      "log-level = warning\n");
  const ServiceConfig c = load({"--config", file});
  EXPECT_EQ(c.config_file, fs::path(file));
  EXPECT_EQ(c.repo, "/srv/walvault");
  EXPECT_EQ(c.conninfo, "host=/run/postgresql user=walvault");
  EXPECT_EQ(c.slot, "walvault");
  EXPECT_TRUE(c.create_slot);
  EXPECT_FALSE(c.synchronous);
  EXPECT_EQ(c.compression, Compression::none);
  EXPECT_EQ(c.io, IoMode::pwrite);
  EXPECT_EQ(c.backup.interval, std::chrono::hours(24));
  EXPECT_EQ(c.checkpoint, CheckpointMode::fast);
  EXPECT_EQ(c.dirs,
            (std::vector<std::string>{"data=/srv/authentik/data", "certs=/srv/authentik/certs"}));
  EXPECT_EQ(c.excludes, std::vector<std::string>{"*.tmp"});
  EXPECT_EQ(c.snapshot.interval, std::chrono::minutes(15));
  ASSERT_TRUE(c.metrics_listen);
  EXPECT_EQ(c.metrics_listen->host, "127.0.0.1");
  EXPECT_EQ(c.metrics_listen->port, "9187");
  EXPECT_EQ(c.metrics_textfile, fs::path("/var/lib/node_exporter/walvault.prom"));
  EXPECT_EQ(c.metrics_interval, std::chrono::seconds(30));
  EXPECT_EQ(c.log_level, log::Level::warning);
}

TEST_F(ServiceConfigTest, FlagsWinOverTheFile) {
  const std::string file = write("repo = /a\nbackup-time = 02:30\nbackup-time = 14:30\n");
  const ServiceConfig c = load({"--config", file, "--repo", "/b", "--synchronous"});
  EXPECT_EQ(c.repo, "/b");
  EXPECT_TRUE(c.synchronous);
  EXPECT_EQ(c.backup.minutes_of_day, (std::vector<int>{150, 870}));
  // Without a file at all.
  const ServiceConfig d = load({"--repo", "/c", "--backup-interval", "1h"});
  EXPECT_EQ(d.repo, "/c");
  EXPECT_EQ(d.backup.interval, std::chrono::hours(1));
  EXPECT_FALSE(d.snapshot.enabled());
}

TEST_F(ServiceConfigTest, CheckConfigIsAFlag) {
  EXPECT_FALSE(load({"--repo", "/r"}).check_only);
  EXPECT_TRUE(load({"--repo", "/r", "--check-config"}).check_only);
  // Checked like a real start: an error is still an error.
  EXPECT_EQ(error_of({"--check-config", "--repo", "/r", "--retain-days", "0"}).substr(0, 20),
            "invalid retain-days ");
}

TEST_F(ServiceConfigTest, FlagsOverrideEveryKindOfValue) {
  const std::string file = write(
      "repo = /a\nslot = from-file\ncompress = none\nbackup-interval = 24h\n"
      "dir = a=/x\nsnapshot-interval = 15min\nlog-level = error\n");
  const ServiceConfig c =
      load({"--config", file, "--slot", "from-flag", "--compress", "lz4", "--backup-interval", "2h",
            "--dir", "b=/y", "--log-level", "debug"});
  EXPECT_EQ(c.slot, "from-flag");
  EXPECT_EQ(c.compression, Compression::lz4);
  EXPECT_EQ(c.backup.interval, std::chrono::hours(2));
  EXPECT_EQ(c.log_level, log::Level::debug);
  EXPECT_EQ(c.snapshot.interval, std::chrono::minutes(15));  // not overridden: from the file
  // A repeatable option given as a flag replaces the file's values (Boost keeps the first
  // source that sets an option).
  EXPECT_EQ(c.dirs, std::vector<std::string>{"b=/y"});
}

TEST_F(ServiceConfigTest, Retention) {
  ServiceConfig c = load({"--repo", "/r", "--backup-interval", "1d", "--retain-full", "7"});
  EXPECT_EQ(c.retain_full, 7);
  EXPECT_FALSE(c.retain_days);
  EXPECT_TRUE(c.retention_enabled());
  c = load({"--config", write("repo = /r\nbackup-time = 02:30\nretain-days = 0.5\n")});
  EXPECT_EQ(c.retain_days, 0.5);
  EXPECT_FALSE(c.retain_full);
  EXPECT_FALSE(load({"--repo", "/r"}).retention_enabled());
  const std::string file = write("repo = /r\nretain-full = 2\nretain-days = 7\n");
  EXPECT_EQ(error_of({"--config", file}),
            "retain-full (" + file + " line 2) and retain-days (" + file + " line 3) do not mix");
  for (const char* bad : {"0", "-1", "1.5", "x", "10001"}) {
    EXPECT_EQ(error_of({"--repo", "/r", "--retain-full", bad}),
              std::string("invalid retain-full \"") + bad + "\" (--retain-full)");
  }
  for (const char* bad : {"0", "-1", "7d", "nan", "36501", ""}) {
    EXPECT_EQ(error_of({"--repo", "/r", "--retain-days", bad}),
              std::string("invalid retain-days \"") + bad + "\" (--retain-days)");
  }
}

TEST_F(ServiceConfigTest, RepoFromTheEnvironment) {
  setenv("WALVAULT_REPO", "/from/env", 1);
  EXPECT_EQ(load({}).repo, "/from/env");
  unsetenv("WALVAULT_REPO");
  EXPECT_EQ(error_of({}), "no repository given");
}

TEST_F(ServiceConfigTest, UnknownKeyNamesKeyAndLine) {
  const std::string file = write("repo = /r\n\n# comment\nbackup-intervall = 24h\n");
  EXPECT_EQ(error_of({"--config", file}),
            "unknown option \"backup-intervall\" in " + file + " line 4");
  // config and help are flags only.
  EXPECT_EQ(error_of({"--config", write("config = /x\n")}),
            "unknown option \"config\" in " + file + " line 1");
  EXPECT_EQ(error_of({"--config", write("repo = /r\ncheck-config = true\n")}),
            "unknown option \"check-config\" in " + file + " line 2");
  // A known key after an unknown one does not hide it; the first unknown key is named.
  EXPECT_EQ(error_of({"--config", write("repo = /r\nsnapshot-intervall = 1h\nslot = s\n")}),
            "unknown option \"snapshot-intervall\" in " + file + " line 2");
}

TEST_F(ServiceConfigTest, MalformedFilesNameTheLine) {
  std::string file = write("repo = /r\n[main]\n");
  EXPECT_EQ(error_of({"--config", file}),
            "sections are not supported (" + file + " line 2: \"[main]\")");
  file = write("repo = /r\ncreate-slot\n");
  EXPECT_EQ(error_of({"--config", file}),
            "expected KEY = VALUE in " + file + " line 2, found \"create-slot\"");
  file = write("repo = /r\nslot = a\nslot = b\n");
  EXPECT_EQ(error_of({"--config", file}),
            "option \"slot\" is given twice in " + file + " (lines 2 and 3)");
  EXPECT_EQ(error_of({"--config", (dir_ / "absent.conf").string()}),
            "could not read the config file \"" + (dir_ / "absent.conf").string() + "\"");
}

TEST_F(ServiceConfigTest, BadValuesNameTheKeyAndWhereItCameFrom) {
  std::string file = write("repo = /r\nbackup-interval = 1 day\n");
  EXPECT_EQ(error_of({"--config", file}),
            "invalid backup-interval \"1 day\" (" + file + " line 2)");
  EXPECT_EQ(error_of({"--config", file, "--backup-interval", "soon"}),
            "invalid backup-interval \"soon\" (--backup-interval)");
  file = write("repo = /r\n\nsnapshot-time = 25:00\n");
  EXPECT_EQ(error_of({"--config", file}), "invalid snapshot-time \"25:00\" (" + file + " line 3)");
  file = write("repo = /r\ncompress = zstd\n");
  EXPECT_EQ(error_of({"--config", file}), "invalid compress \"zstd\" (" + file + " line 2)");
  file = write("repo = /r\nwal-timeout-s = 12x\n");
  EXPECT_EQ(error_of({"--config", file}), "invalid wal-timeout-s \"12x\" (" + file + " line 2)");
  file = write("repo = /r\nmetrics-listen = 9187\n");
  EXPECT_EQ(error_of({"--config", file}), "invalid metrics-listen \"9187\" (" + file + " line 2)");
  file = write("repo = /r\ncreate-slot = maybe\n");
  EXPECT_NE(error_of({"--config", file}).find("(" + file + " line 2)"), std::string::npos);
  file = write("repo = /r\nlog-level = loud\n");
  EXPECT_EQ(error_of({"--config", file}), "invalid log-level \"loud\" (" + file + " line 2)");
}

TEST_F(ServiceConfigTest, CombinationsThatMakeNoSense) {
  std::string file = write("repo = /r\nbackup-interval = 1h\nbackup-time = 02:00\n");
  EXPECT_EQ(
      error_of({"--config", file}),
      "backup-interval (" + file + " line 2) and backup-time (" + file + " line 3) do not mix");
  file = write("repo = /r\nsnapshot-interval = 15min\n");
  EXPECT_EQ(error_of({"--config", file}),
            "snapshots are scheduled (" + file + " line 2) but no directory is given");
  file = write("repo = /r\ncreate-slot = yes\n");
  EXPECT_EQ(error_of({"--config", file}), "create-slot (" + file + " line 2) needs slot = NAME");
  EXPECT_EQ(error_of({"--repo", "/r", "--exclude", "*.tmp"}),
            "exclude (--exclude) goes with dir = NAME=PATH");
}

TEST_F(ServiceConfigTest, ListenAddresses) {
  auto c = load({"--repo", "/r", "--metrics-listen", "[::1]:9187"});
  ASSERT_TRUE(c.metrics_listen);
  EXPECT_EQ(c.metrics_listen->host, "::1");
  EXPECT_EQ(c.metrics_listen->describe(), "[::1]:9187");
  c = load({"--repo", "/r", "--metrics-listen", "localhost:1"});
  EXPECT_EQ(c.metrics_listen->describe(), "localhost:1");
  for (const char* bad : {"::1:9187", "127.0.0.1:", ":9187", "127.0.0.1:65536", "127.0.0.1:0",
                          "[::1]9187", "127.0.0.1:http"}) {
    EXPECT_EQ(error_of({"--repo", "/r", "--metrics-listen", bad}),
              std::string("invalid metrics-listen \"") + bad + "\" (--metrics-listen)");
  }
}

TEST_F(ServiceConfigTest, ArchiverSettingsDiffer) {
  const ServiceConfig a = load({"--repo", "/r", "--backup-interval", "1h"});
  ServiceConfig b = load({"--repo", "/r", "--backup-interval", "2h", "--log-level", "debug"});
  EXPECT_FALSE(archiver_settings_differ(a, b));
  b = load({"--repo", "/r", "--slot", "s"});
  EXPECT_TRUE(archiver_settings_differ(a, b));
}

TEST(ServiceRedact, PasswordsNeverShow) {
  EXPECT_EQ(redact_conninfo("host=db user=wv password=s3cret dbname=x"),
            "host=db user=wv password=*** dbname=x");
  EXPECT_EQ(redact_conninfo("host=db password = 'se cr\\'et' user=wv"),
            "host=db password = *** user=wv");
  EXPECT_EQ(redact_conninfo("postgresql://wv:s3cret@db:5432/x"), "postgresql://wv:***@db:5432/x");
  EXPECT_EQ(redact_conninfo("postgres://db/x?user=wv&password=s3cret&sslmode=require"),
            "postgres://db/x?user=wv&password=***&sslmode=require");
  EXPECT_EQ(redact_conninfo("postgresql://wv@db/x"), "postgresql://wv@db/x");
  EXPECT_EQ(redact_conninfo("host=db user=wv"), "host=db user=wv");
}

TEST(ServiceHttp, AnswersOnlyGetMetrics) {
  const auto render = [] { return std::string("walvault_up 1\n"); };
  std::string r = http_response("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", render);
  EXPECT_EQ(r.substr(0, r.find("\r\n")), "HTTP/1.1 200 OK");
  EXPECT_NE(r.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            std::string::npos);
  EXPECT_NE(r.find("Content-Length: 14\r\n"), std::string::npos);
  EXPECT_EQ(r.substr(r.size() - 14), "walvault_up 1\n");
  r = http_response("GET /metrics?name[]=x HTTP/1.0\r\n\r\n", render);
  EXPECT_EQ(r.substr(0, r.find("\r\n")), "HTTP/1.1 200 OK");
  r = http_response("HEAD /metrics HTTP/1.1\r\n\r\n", render);
  EXPECT_EQ(r.substr(0, r.find("\r\n")), "HTTP/1.1 200 OK");
  EXPECT_EQ(r.substr(r.size() - 4), "\r\n\r\n");  // no body
  r = http_response("GET / HTTP/1.1\r\n\r\n", render);
  EXPECT_EQ(r.substr(0, r.find("\r\n")), "HTTP/1.1 404 Not Found");
  r = http_response("POST /metrics HTTP/1.1\r\n\r\n", render);
  EXPECT_EQ(r.substr(0, r.find("\r\n")), "HTTP/1.1 405 Method Not Allowed");
  r = http_response("hello\r\n\r\n", render);
  EXPECT_EQ(r.substr(0, r.find("\r\n")), "HTTP/1.1 400 Bad Request");
}

TEST(ServiceMetricsText, EveryMetricHasHelpAndType) {
  ServiceMetrics m;
  m.archiver().flushed_lsn = 0x5D000C90;
  m.archiver().server_wal_end = 0x5D001000;
  m.archiver().streaming = true;
  m.update([](JobStats& j) {
    j.backup_errors = 2;
    j.last_backup_time = Timestamp{1'764'770'700'000'000};
  });
  const std::string text = m.render();
  std::istringstream in(text);
  std::string line, help, type;
  int samples = 0;
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0) {
      help = line.substr(7, line.find(' ', 7) - 7);
    } else if (line.rfind("# TYPE ", 0) == 0) {
      type = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_EQ(type, help);
    } else {
      const std::string name = line.substr(0, line.find(' '));
      EXPECT_EQ(name, type) << line;
      EXPECT_EQ(name.rfind("walvault_", 0), 0u) << line;
      ++samples;
    }
  }
  EXPECT_GE(samples, 20);
  EXPECT_NE(text.find("\nwalvault_wal_flushed_lsn 1560284304\n"), std::string::npos);
  EXPECT_NE(text.find("\nwalvault_wal_lag_bytes 880\n"), std::string::npos);
  EXPECT_NE(text.find("\nwalvault_archiver_up 1\n"), std::string::npos);
  EXPECT_NE(text.find("\nwalvault_backup_errors_total 2\n"), std::string::npos);
  EXPECT_NE(text.find("\nwalvault_last_backup_time_seconds 1764770700\n"), std::string::npos);
}

}  // namespace
}  // namespace walvault
