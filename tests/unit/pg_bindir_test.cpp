#include "pitr/pg_bindir.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "core/error.h"

namespace walvault {
namespace {

// A bin directory whose `postgres --version` says what the test wants.
class FakeBindir {
 public:
  explicit FakeBindir(const std::string& version_line) {
    std::string tmpl = (fs::temp_directory_path() / "walvault-bindir-XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
    const fs::path postgres = dir_ / "postgres";
    write_file_durable(postgres, "#!/bin/sh\necho '" + version_line + "'\n");
    ::chmod(postgres.c_str(), 0755);
  }
  ~FakeBindir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  const fs::path& dir() const { return dir_; }

 private:
  fs::path dir_;
};

// Sets an environment variable for the lifetime of the object.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const std::string& value) : name_(std::move(name)) {
    ::setenv(name_.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() { ::unsetenv(name_.c_str()); }

 private:
  std::string name_;
};

TEST(PgBindir, ReadsTheMajorFromPostgresVersion) {
  FakeBindir b17("postgres (PostgreSQL) 17.10");
  EXPECT_EQ(postgres_major_in(b17.dir()), 17);
  FakeBindir b18("postgres (PostgreSQL) 18beta1");
  EXPECT_EQ(postgres_major_in(b18.dir()), 18);
  FakeBindir other("something else");
  EXPECT_EQ(postgres_major_in(other.dir()), std::nullopt);
  EXPECT_EQ(postgres_major_in("/nonexistent"), std::nullopt);
}

TEST(PgBindir, EnvironmentVariableOfTheMajor) {
  FakeBindir b77("postgres (PostgreSQL) 77.1");
  EXPECT_EQ(find_pg_bindir({77, std::nullopt}), std::nullopt);
  ScopedEnv env("WALVAULT_PG_BINDIR_77", b77.dir().string());
  EXPECT_EQ(find_pg_bindir({77, std::nullopt}), b77.dir());
  EXPECT_EQ(require_pg_bindir({77, std::nullopt}), b77.dir());
  // The variable of one major never serves another.
  EXPECT_EQ(find_pg_bindir({78, std::nullopt}), std::nullopt);
}

TEST(PgBindir, ExplicitDirMustHoldTheSameMajor) {
  FakeBindir b16("postgres (PostgreSQL) 16.14");
  EXPECT_EQ(require_pg_bindir({16, b16.dir()}), b16.dir());
  try {
    require_pg_bindir({17, b16.dir()});
    FAIL() << "a PostgreSQL 16 bindir accepted for a 17 cluster";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::usage);
    EXPECT_NE(std::string(e.what()).find("holds PostgreSQL 16, but the restored cluster is "
                                         "PostgreSQL 17"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(require_pg_bindir({16, fs::path("/nonexistent")}), Error);
}

TEST(PgBindir, NoneFoundSaysWhereItLookedAndWhatToInstall) {
  try {
    require_pg_bindir({99, std::nullopt});
    FAIL() << "found a PostgreSQL 99";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("no PostgreSQL 99 server binaries found"), std::string::npos) << what;
    EXPECT_NE(what.find("/usr/lib/postgresql/99/bin"), std::string::npos) << what;
    EXPECT_NE(e.hint().find("postgresql-99"), std::string::npos) << e.hint();
    EXPECT_NE(e.hint().find("--pg-bindir"), std::string::npos) << e.hint();
  }
}

TEST(PgBindir, DataDirMajorFromPgVersion) {
  FakeBindir d("unused");
  EXPECT_EQ(data_dir_major(d.dir()), std::nullopt);
  write_file_durable(d.dir() / "PG_VERSION", "14\n");
  EXPECT_EQ(data_dir_major(d.dir()), 14);
}

}  // namespace
}  // namespace walvault
