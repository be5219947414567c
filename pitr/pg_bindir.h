#pragma once
// Finds the PostgreSQL server binaries of one major, to start a restored data directory
// with (restore --verify) or to name in the "start it with ..." advice. A data directory
// only starts under a postgres of its own major, so every candidate's `postgres --version`
// is checked; the first match wins, in this order:
//   1. --pg-bindir DIR (explicit: a mismatch is an error, not a reason to look further);
//   2. $WALVAULT_PG_BINDIR_<major> (e.g. WALVAULT_PG_BINDIR_17);
//   3. /usr/lib/postgresql/<major>/bin (Debian, Ubuntu), /usr/pgsql-<major>/bin (RHEL);
//   4. the cache of scripts/fetch-pg-versions.sh: $WALVAULT_PG_CACHE/<major>/bin,
//      /var/cache/walvault/pg/<major>/bin, ~/.cache/walvault/pg/<major>/bin;
//   5. every directory of PATH that holds a postgres of that major.

#include <optional>
#include <string>
#include <vector>

#include "core/fs.h"

namespace walvault {

struct PgBindirSearch {
  int major = 0;
  std::optional<fs::path> explicit_dir;  // --pg-bindir
};

// The directory, or nullopt when none holds a postgres of that major.
std::optional<fs::path> find_pg_bindir(const PgBindirSearch& search);

// As find_pg_bindir, but throws Error naming where it looked and what to install when none
// is found, and when --pg-bindir holds no postgres or one of another major.
fs::path require_pg_bindir(const PgBindirSearch& search);

// The major of `<dir>/postgres --version` ("postgres (PostgreSQL) 17.10" -> 17), or nullopt
// when it cannot be run or says something else.
std::optional<int> postgres_major_in(const fs::path& bindir);

// The major recorded in a data directory's PG_VERSION file, or nullopt.
std::optional<int> data_dir_major(const fs::path& data_dir);

// The places searched (after --pg-bindir), in order, for messages and docs.
std::vector<fs::path> pg_bindir_candidates(int major);

}  // namespace walvault
