// Where restore puts each tablespace: --tablespace-dir by oid, --tablespace by original path,
// else the original path; every mapping that names nothing in the backup is a usage error.
#include <gtest/gtest.h>

#include "core/error.h"
#include "pitr/restore.h"

namespace walvault {
namespace {

BackupInfo backup_with_two_tablespaces() {
  BackupInfo b;
  b.id = "20261203T140500Z";
  b.tablespaces = {{16385, "/srv/ts_a", "16385.tar.lz4"}, {16390, "/srv/ts_b/", "16390.tar.lz4"}};
  return b;
}

ExitCode code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  return ExitCode::ok;
}

TEST(TablespaceTargets, DefaultIsTheOriginalLocation) {
  const auto out = tablespace_targets(backup_with_two_tablespaces(), RestoreRequest{});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out.at(16385), fs::path("/srv/ts_a"));
  EXPECT_EQ(out.at(16390), fs::path("/srv/ts_b/"));
}

TEST(TablespaceTargets, ByOidAndByPath) {
  RestoreRequest r;
  r.tablespace_dirs[16385] = "/restore/a";
  r.tablespace_paths[fs::path("/srv/ts_b")] = "/restore/b";  // matches "/srv/ts_b/" normalised
  const auto out = tablespace_targets(backup_with_two_tablespaces(), r);
  EXPECT_EQ(out.at(16385), fs::path("/restore/a"));
  EXPECT_EQ(out.at(16390), fs::path("/restore/b"));
}

TEST(TablespaceTargets, AnUnknownPathIsAUsageErrorListingTheKnownOnes) {
  RestoreRequest r;
  r.tablespace_paths[fs::path("/srv/elsewhere")] = "/restore/x";
  try {
    tablespace_targets(backup_with_two_tablespaces(), r);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::usage);
    EXPECT_EQ(std::string(e.what()),
              "backup 20261203T140500Z has no tablespace at \"/srv/elsewhere\"");
    EXPECT_EQ(e.hint(), "its tablespaces are at: /srv/ts_a, /srv/ts_b/");
  }
}

TEST(TablespaceTargets, AnUnknownOidAndADoubleMappingAreUsageErrors) {
  RestoreRequest unknown;
  unknown.tablespace_dirs[99] = "/restore/x";
  EXPECT_EQ(code_of([&] { tablespace_targets(backup_with_two_tablespaces(), unknown); }),
            ExitCode::usage);
  RestoreRequest both;
  both.tablespace_dirs[16385] = "/restore/a";
  both.tablespace_paths[fs::path("/srv/ts_a")] = "/restore/a2";
  EXPECT_EQ(code_of([&] { tablespace_targets(backup_with_two_tablespaces(), both); }),
            ExitCode::usage);
}

}  // namespace
}  // namespace walvault
