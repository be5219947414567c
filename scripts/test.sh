#!/usr/bin/env bash
# Builds walvault and runs every test (unit and integration) through ctest.
#   scripts/test.sh                 normal build in build/
#   WALVAULT_SANITIZE=1 scripts/test.sh   ASan+UBSan build in build-sanitize/
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Real servers of the other supported majors for the version matrix (cached between runs).
# Without them the run cannot pass, so a failed fetch ends it here, before the build.
if ! scripts/fetch-pg-versions.sh; then
  echo "walvault: error: could not fetch the PostgreSQL server binaries the version tests need" >&2
  echo "HINT: see the error above; scripts/fetch-pg-versions.sh fetches them again (cached afterwards)" >&2
  exit 1
fi

build_dir=build
cmake_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [[ ${WALVAULT_SANITIZE:-0} == 1 ]]; then
  build_dir=build-sanitize
  cmake_args+=(-DWALVAULT_SANITIZE=ON -DWALVAULT_BUILD_BENCH=OFF)
fi
cmake -S . -B "$build_dir" "${cmake_args[@]}" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
cd "$build_dir"
ctest --output-on-failure -j"${WALVAULT_TEST_JOBS:-2}" ${WALVAULT_CTEST_ARGS:-}
