#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan, build-fuzz/) and runs each for a
# bounded time from its committed seed corpus (tests/fuzz/corpus/<target>/).
#
#   scripts/fuzz.sh                      every target, 90 s in total (CI)
#   WALVAULT_FUZZ_SECONDS=3600 scripts/fuzz.sh        a longer run (docs/fuzzing.md)
#   scripts/fuzz.sh wal_records lz4_frame             some targets only
#
# New inputs libFuzzer finds go to build-fuzz/corpus/<target>/ (not the committed corpus).
# A crash, a sanitizer report, a timeout (-timeout) or an allocation beyond -rss_limit_mb /
# -malloc_limit_mb stops the run: the input is saved as build-fuzz/artifacts/<target>/*, the
# script exits 1, and the input belongs in tests/fuzz/regressions/<target>/ with its fix.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

build_dir=${WALVAULT_FUZZ_BUILD_DIR:-build-fuzz}
total_s=${WALVAULT_FUZZ_SECONDS:-90}
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(replication_message base_backup_stream tar_archive timeline_history backup_manifest
    json_metadata target_spec wal_file_name lz4_frame wal_records service_config)
fi

start=$SECONDS
CC=clang-14 CXX=clang++-14 cmake -S . -B "$build_dir" -DWALVAULT_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build_dir" -j"${WALVAULT_FUZZ_JOBS:-2}"
echo "== fuzz targets built in $((SECONDS - start)) s"

per_target_s=$((total_s / ${#targets[@]}))
((per_target_s >= 1)) || per_target_s=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=()
for t in "${targets[@]}"; do
  bin=$build_dir/tests/fuzz/fuzz_$t
  [[ -x $bin ]] || { echo "fuzz.sh: no target $t" >&2; exit 2; }
  work=$build_dir/corpus/$t
  artifacts=$build_dir/artifacts/$t
  mkdir -p "$work" "$artifacts"
  max_len=4096
  [[ $t == wal_records || $t == lz4_frame || $t == tar_archive || $t == base_backup_stream ]] && max_len=65536
  echo "== fuzz_$t: ${per_target_s} s"
  if ! "$bin" -max_total_time="$per_target_s" -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=512 \
    -max_len="$max_len" -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$work" "tests/fuzz/corpus/$t" >"$build_dir/fuzz-$t.log" 2>&1; then
    tail -n 40 "$build_dir/fuzz-$t.log" >&2
    failed+=("$t")
    continue
  fi
  grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$build_dir/fuzz-$t.log" | tail -n 2
done
echo "== fuzzing done in $((SECONDS - start)) s"
if ((${#failed[@]} > 0)); then
  echo "walvault: error: fuzzing found problems in: ${failed[*]} (inputs in $build_dir/artifacts/)" >&2
  echo "HINT: reproduce with $build_dir/tests/fuzz/fuzz_<target> <input>; add the input to tests/fuzz/regressions/<target>/ with the fix" >&2
  exit 1
fi
