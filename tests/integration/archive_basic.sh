#!/usr/bin/env bash
# walvault archive against a real PostgreSQL 15 cluster with 1 MB WAL segments:
#  - --endpos/--no-loop exits 0 with everything up to endpos durable;
#  - every complete segment passes `lz4 -t`, and decompressed segments are byte-identical
#    to the server's pg_wal files of the same name (for those the server still has);
#  - pg_waldump reads the decompressed range;
#  - a restart resumes exactly at the archive's end, also after kill -9 mid-stream: the
#    whole range stays contiguous and identical to the server's WAL;
#  - a second archiver on the same repository is refused, naming the first;
#  - repository files are 0600, directories 0700.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
wv_test_begin archive_basic
wv_init_tmp
wv_require_walvault

SEG=$((1024 * 1024))
PG=$WV_TMP/pg
REPO=$WV_TMP/repo
OUT=$WV_TMP/out
mkdir -p "$OUT"
wv_pg_init "$PG" --wal-segsize=1
wv_pg_start "$PG"
CONN=$(wv_connstr "$PG")

# Runs walvault archive to ENDPOS (foreground, as postgres), output in $OUT/NAME.{out,err}.
archive_to() {
  local name=$1 endpos=$2
  shift 2
  wv_capture "$OUT/$name" wv_as_pg timeout 120 "$WALVAULT" archive --repo "$REPO" \
    --dbname "$CONN" --slot arch --endpos "$endpos" --no-loop "$@"
  if [[ $WV_RC -ne 0 ]]; then
    wv_log "---- walvault archive ($name) stderr ----"
    cat "$OUT/$name.err" >&2
  fi
}

# The LSN in "the archive is durable up to X" of a run's log.
durable_end() { sed -n 's/.*the archive is durable up to \([0-9A-F]*\/[0-9A-F]*\) on.*/\1/p' "$1" | tail -n 1; }
# The LSN in "starting at X on timeline 1 (WHY)" of a run's log.
start_of() { sed -n 's/.*starting at \([0-9A-F]*\/[0-9A-F]*\) on timeline.*/\1/p' "$1" | head -n 1; }

generate_wal() { # ROWS
  wv_psql "$PG" "insert into filler select g, repeat(md5(g::text), 10) from generate_series(1, $1) g" >/dev/null
}

# check_archive FIRST_SEG_NUM END_LSN LABEL — the archive on timeline 1 from segment
# FIRST_SEG_NUM up to END_LSN: contiguous complete segments, a .partial for the last one,
# lz4 -t on all complete ones, byte-identical to pg_wal, pg_waldump reads it.
check_archive() {
  local first=$1 end=$2 label=$3 end_num last_full n name f dir missing=0 bad=0 compared=0 differ=0
  end_num=$(wv_lsn_to_num "$end")
  last_full=$((end_num / SEG - 1)) # the last segment that must be complete
  dir=$WV_TMP/decoded-$label
  rm -rf "$dir"
  mkdir -p "$dir"
  for ((n = first; n <= last_full; n++)); do
    name=$(printf '%08X%08X%08X' 1 $((n / 4096)) $((n % 4096)))
    f=$REPO/wal/00000001/$name.lz4
    if [[ ! -f $f ]]; then
      missing=$((missing + 1))
      wv_log "missing: $f"
      continue
    fi
    lz4 -t -q "$f" || { bad=$((bad + 1)); wv_log "lz4 -t fails: $f"; }
    lz4 -d -q -f "$f" "$dir/$name"
    if [[ -f $PG/pg_wal/$name ]]; then
      compared=$((compared + 1))
      cmp -s "$dir/$name" "$PG/pg_wal/$name" || { differ=$((differ + 1)); wv_log "differs from pg_wal: $name"; }
    fi
  done
  wv_assert_eq 0 "$missing" "$label: every segment from $(printf '%X' "$first") to the one before $end is complete"
  wv_assert_eq 0 "$bad" "$label: every complete segment passes lz4 -t"
  wv_assert_ne 0 "$compared" "$label: some archived segments are still in pg_wal to compare ($compared)"
  wv_assert_eq 0 "$differ" "$label: decompressed segments are byte-identical to pg_wal ($compared compared)"
  # The segment holding END is .partial (a whole lz4 frame at every durable point) and holds
  # at least the bytes before END, identical to the server's.
  name=$(printf '%08X%08X%08X' 1 $((end_num / SEG / 4096)) $((end_num / SEG % 4096)))
  if ((end_num % SEG != 0)); then
    f=$REPO/wal/00000001/$name.lz4.partial
    wv_assert "$label: $name.lz4.partial exists and passes lz4 -t" lz4 -t -q "$f"
    lz4 -d -q -f "$f" "$dir/$name.content"
    local have=$(stat -c %s "$dir/$name.content") want=$((end_num % SEG))
    wv_assert "$label: the partial holds the bytes up to $end ($have >= $want)" test "$have" -ge "$want"
    wv_assert "$label: the partial's bytes are the server's" \
      cmp -s "$dir/$name.content" <(head -c "$have" "$PG/pg_wal/$name")
    cp "$dir/$name.content" "$dir/$name"
    truncate -s "$SEG" "$dir/$name"
    rm -f "$dir/$name.content"
  fi
  local unexpected
  unexpected=$(find "$REPO/wal/00000001" -type f -newer "$REPO/walvault.json" \
    ! -name '*.lz4' ! -name "$name.lz4.partial" -printf '%f ' 2>/dev/null || true)
  wv_assert_eq "" "$unexpected" "$label: no stray files (old .partial, temp files) in wal/00000001"
  chown -R postgres: "$dir"
  local start_lsn
  start_lsn=$(printf '%X/%X' $(((first * SEG) >> 32)) $(((first * SEG) & 0xFFFFFFFF)))
  wv_capture "$OUT/waldump-$label" wv_as_pg "$PGBIN/pg_waldump" -p "$dir" -t 1 -s "$start_lsn" -e "$end"
  [[ $WV_RC -eq 0 ]] || tail -n 3 "$OUT/waldump-$label.err" >&2
  wv_assert_eq 0 "$WV_RC" "$label: pg_waldump reads the archived WAL from $start_lsn to $end"
  wv_assert "$label: pg_waldump sees the inserts (Heap records)" grep -q 'rmgr: Heap' "$OUT/waldump-$label.out"
}

# ---------------------------------------------------------------- first run: --endpos
wv_step "first run: creates the repository and the slot, stops at --endpos"
wv_psql "$PG" "create table filler (id int, v text)" >/dev/null
START0=$(wv_psql "$PG" "select pg_current_wal_lsn()")
FIRST_SEG=$(($(wv_lsn_to_num "$START0") / SEG))
generate_wal 2000
END0=$(wv_psql "$PG" "select pg_current_wal_lsn()")
archive_to run0 "$END0" --create-slot
wv_assert_eq 0 "$WV_RC" "archive --endpos $END0 --no-loop exits 0"
wv_assert_match "using io_uring|using pwrite" "$(cat "$OUT/run0.err")" "the writer backend is logged"
DUR0=$(durable_end "$OUT/run0.err")
wv_assert "run0 is durable up to at least $END0 (says ${DUR0:-nothing})" wv_lsn_ge "${DUR0:-0/0}" "$END0"
SLOT_LSN=$(wv_psql "$PG" "select restart_lsn from pg_replication_slots where slot_name = 'arch'")
wv_assert "the slot's restart_lsn ($SLOT_LSN) is the flushed position ($DUR0)" test "$SLOT_LSN" == "$DUR0"
wv_assert_eq 0 "$(find "$REPO" -type f ! -perm 600 | wc -l)" "repository files are 0600"
wv_assert_eq 0 "$(find "$REPO" -type d ! -perm 700 | wc -l)" "repository directories are 0700"
# The archive started at the segment holding the position the server had at the start.
FIRST_ARCHIVED=$(find "$REPO/wal/00000001" -name '*.lz4*' -printf '%f\n' | sort | head -n 1)
wv_assert_eq "$(wv_segment_name "$START0" 1 $SEG)" "${FIRST_ARCHIVED:0:24}" \
  "the first archived segment holds the server's position at the start"
FIRST_SEG=$((16#${FIRST_ARCHIVED:16:8} + 16#${FIRST_ARCHIVED:8:8} * 4096))

# ---------------------------------------------------------------- resume from a clean stop
wv_step "second run: resumes exactly at the archive's end"
generate_wal 20000
END1=$(wv_psql "$PG" "select pg_current_wal_lsn()")
archive_to run1 "$END1"
wv_assert_eq 0 "$WV_RC" "archive --endpos $END1 --no-loop exits 0"
wv_assert_eq "$DUR0" "$(start_of "$OUT/run1.err")" "run1 starts exactly where run0 ended"
wv_assert_match "\(the archive's end\)" "$(cat "$OUT/run1.err")" "run1 says it resumes from the archive's end"
DUR1=$(durable_end "$OUT/run1.err")
wv_assert "run1 is durable up to at least $END1" wv_lsn_ge "${DUR1:-0/0}" "$END1"
check_archive "$FIRST_SEG" "$END1" run1

# ---------------------------------------------------------------- one archiver per repo
wv_step "a second archiver on the same repository is refused"
wv_start_bg "$OUT/bg.log" "$WALVAULT" archive --repo "$REPO" --dbname "$CONN" --slot arch \
  --status-interval-ms 200
BG=$WV_LAST_BG_PID
wv_wait_for -m "the background archiver did not start streaming" grep -q "streaming WAL from" "$OUT/bg.log"
HOLDER_PID=$(sed -n 's/^pid=\([0-9]*\) .*/\1/p' "$REPO/lock/archiver.lock")
wv_assert_match "walvault.archive" "$(tr '\0' ' ' <"/proc/${HOLDER_PID:-0}/cmdline" 2>/dev/null || true)" \
  "the lock file names the running archiver's pid ($HOLDER_PID)"
wv_capture "$OUT/second" wv_as_pg "$WALVAULT" archive --repo "$REPO" --dbname "$CONN" --no-loop
wv_assert_eq 1 "$WV_RC" "a second archiver exits 1"
wv_assert_match "already running on repository .*\(pid $HOLDER_PID on host " "$(cat "$OUT/second.err")" \
  "the refusal names the running archiver"
wv_assert_walvault_error "$OUT/second.err" "the refusal is one error line and a hint"

# ---------------------------------------------------------------- kill -9 mid-stream
wv_step "kill -9 in the middle of streaming, then resume"
# A burst of WAL that lasts a while (50 commits, short pauses), so the kill lands mid-stream.
wv_psql "$PG" "do \$\$ begin for i in 1..50 loop
  insert into filler select g, repeat(md5(g::text), 10) from generate_series(1, 600) g;
  commit; perform pg_sleep(0.03); end loop; end \$\$" >/dev/null &
GEN=$!
# Kill once the archiver has made some progress through the new WAL.
BEFORE=$(find "$REPO/wal/00000001" -name '*.lz4' | wc -l)
wv_wait_for -t 60 -m "the archiver made no progress" \
  bash -c "(( \$(find '$REPO/wal/00000001' -name '*.lz4' | wc -l) >= $BEFORE + 2 ))"
wv_stop_bg "$BG" KILL 5 || true
wait "$GEN"
wv_assert_not "the killed archiver is gone" kill -0 "$HOLDER_PID"
KILLED_AT=$(wv_psql "$PG" "select pg_current_wal_lsn()")
echo "killed the archiver; the server is at $KILLED_AT"
generate_wal 3000
END2=$(wv_psql "$PG" "select pg_current_wal_lsn()")
archive_to run2 "$END2"
wv_assert_eq 0 "$WV_RC" "after kill -9, archive --endpos $END2 --no-loop exits 0"
grep -hE "starting at|verified prefix" "$OUT/run2.err" | sed 's/^/    /' || true
RESUMED_AT=$(start_of "$OUT/run2.err")
wv_assert "the kill came mid-stream: the archive ended at ${RESUMED_AT:-?}, before the burst's end $KILLED_AT" \
  test "$(wv_lsn_to_num "${RESUMED_AT:-0/0}")" -lt "$(wv_lsn_to_num "$KILLED_AT")"
wv_assert_match "\(the archive's end\)" "$(cat "$OUT/run2.err")" "run2 resumes from the archive's end"
wv_assert_match "taking over the lock" "$(cat "$OUT/run2.err")" "run2 takes over the dead archiver's lock"
check_archive "$FIRST_SEG" "$END2" run2

# ---------------------------------------------------------------- nothing to do
wv_step "endpos already archived: exits 0 at once, changes nothing"
FP=$(wv_fingerprint "$REPO/wal")
archive_to run3 "$END1"
wv_assert_eq 0 "$WV_RC" "archive --endpos of an archived LSN exits 0"
wv_assert_eq "$FP" "$(wv_fingerprint "$REPO/wal")" "an archived endpos changes no WAL file"

# ---------------------------------------------------------------- errors
wv_step "errors"
wv_capture "$OUT/noslot" wv_as_pg "$WALVAULT" archive --repo "$REPO" --dbname "$CONN" --slot nosuch --no-loop
wv_assert_eq 1 "$WV_RC" "a missing slot without --create-slot exits 1"
wv_assert_match "replication slot \"nosuch\" does not exist" "$(cat "$OUT/noslot.err")" "the error names the slot"
wv_assert_match "HINT: .*--create-slot" "$(cat "$OUT/noslot.err")" "the hint mentions --create-slot"
wv_capture "$OUT/noslot-new" wv_as_pg "$WALVAULT" archive --repo "$WV_TMP/never-created" --dbname "$CONN" --slot nosuch --no-loop
wv_assert_eq 1 "$WV_RC" "a missing slot, new repository: exits 1"
wv_assert_eq absent "$(wv_fingerprint "$WV_TMP/never-created")" "... and creates no repository (the refusal comes first)"
wv_capture "$OUT/stray" wv_as_pg "$WALVAULT" info --repo "$REPO" 08:47:13
wv_assert_eq 2 "$WV_RC" "a stray word on the command line is a usage error (exit 2)"
wv_assert_match 'unexpected argument "08:47:13"' "$(cat "$OUT/stray.err")" "... naming the word"
wv_assert_match 'HINT: quote values that contain spaces' "$(cat "$OUT/stray.err")" "... with a hint about quoting"
wv_capture "$OUT/noserver" wv_as_pg "$WALVAULT" archive --repo "$REPO" --dbname "host=$WV_TMP port=1" --no-loop
wv_assert_eq 1 "$WV_RC" "an unreachable server with --no-loop exits 1"
wv_assert_walvault_error "$OUT/noserver.err" "an unreachable server: one error line and a hint"
wv_assert_match "could not connect to the server" "$(cat "$OUT/noserver.err")" "the error says it could not connect"

wv_summary archive_basic
