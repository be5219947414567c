#!/usr/bin/env bash
# Point-in-time recovery against a real PostgreSQL 15 cluster (1 MB WAL segments):
#
#   archive (background) -> backup -> rows committed in three phases at known times ->
#   1. restore to a time between phases A and B, given WITHOUT a zone in another time zone
#      (TZ=America/New_York): the plan echoes it in UTC; the restored cluster, started as
#      postgres on its own socket and port, holds exactly phase A's rows;
#   2. restore to a time between phases B and C while the archiver is still writing the
#      segment that holds the stop record (served by wal-get from the `.partial`): exactly
#      phases A and B, with B's update and delete applied;
#   3. refusals, each asserting the exit status and that the target directory was not
#      created (or, if it existed, not changed): before the window, after the window,
#      beyond a gap (a repository copy with a segment removed), a non-empty target, an
#      unparsable time;
#   4. wal-get: a missing history file exits 1 quietly, a damaged segment exits > 125 and
#      writes nothing.
#
# Run: bash tests/integration/pitr_restore.sh  (WALVAULT=... to override, WV_KEEP_TMP=1 keeps
# the temp dir). Prints `pitr_restore: N passed, M failed` last.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

wv_test_begin pitr_restore
wv_init_tmp
wv_require_walvault
PG=$WV_TMP/source
REPO=$WV_TMP/repo
OUT=$WV_TMP/out
mkdir -p "$OUT"
wv_chown_pg "$OUT"

require() {
  local msg=$1
  shift
  if ! "$@"; then
    wv__failed "$msg" "command failed: $*"
    wv_summary pitr_restore || true
    exit 1
  fi
  wv__pass "$msg"
}
show_output() { sed 's/^/    | /' "$1.out" "$1.err" | head -n 40 >&2; }
Q() { wv_psql "$PG" "$1"; }
# The server's clock, UTC, ISO 8601 with an offset.
server_now() { Q "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '+00:00'"; }
# Waits until the server's clock is past TIME + 300 ms, so commits after it are later.
wait_past() { wv_wait_for -t 10 test "$(Q "select clock_timestamp() > timestamptz '$1' + interval '300 ms'")" = t; }
wait_past_loop() {
  local i
  for ((i = 0; i < 100; i++)); do
    [[ $(Q "select clock_timestamp() > timestamptz '$1' + interval '300 ms'") == t ]] && return 0
    sleep 0.05
  done
  wv_fail "the server clock did not pass $1"
}

# ---------------------------------------------------------------- source, archive, backup
wv_step "source cluster, walvault archive, walvault backup"
wv_pg_init "$PG" --wal-segsize=1
wv_pg_start "$PG"
CONN=$(wv_connstr "$PG")
Q "create table t (id int primary key, phase text not null, note text)" >/dev/null
wv_start_bg "$WV_TMP/archive.log" "$WALVAULT" archive --repo "$REPO" --dbname "$CONN"
ARCHIVER=$WV_LAST_BG_PID
repo_created() {
  wv_bg_alive "$ARCHIVER" || { cat "$WV_TMP/archive.log" >&2; wv_fail "walvault archive exited early"; }
  [[ -f $REPO/walvault.json ]]
}
wv_wait_for -m "archive did not create the repository" repo_created
wv_capture "$OUT/backup" wv_walvault backup --repo "$REPO" --dbname "$CONN" --label pitr --checkpoint fast
[[ $WV_RC -eq 0 ]] || show_output "$OUT/backup"
require "backup exits 0" test "$WV_RC" -eq 0

# ---------------------------------------------------------------- three phases
wv_step "phase A, target 1, phase B, target 2, phase C"
for i in $(seq 1 10); do Q "insert into t values ($i, 'A', 'row $i')" >/dev/null; done
T1=$(server_now)
wait_past_loop "$T1"
for i in $(seq 11 20); do Q "insert into t values ($i, 'B', 'row $i')" >/dev/null; done
Q "update t set note = 'changed in B' where id = 1" >/dev/null
Q "delete from t where id = 2" >/dev/null
# Fill a few segments so that phase B's WAL is in complete segments.
Q "create table filler as select g, repeat(md5(g::text), 20) as pad from generate_series(1, 20000) g" >/dev/null
Q "select pg_switch_wal()" >/dev/null
T2=$(server_now)
wait_past_loop "$T2"
for i in $(seq 21 25); do Q "insert into t values ($i, 'C', 'row $i')" >/dev/null; done
LAST_C=$(server_now)
C_LSN=$(Q "select pg_current_wal_lsn()")
echo "target 1: $T1   target 2: $T2   last commit of C before $LAST_C at $C_LSN"
# No segment switch after C: the commits of phase C are only in the archiver's .partial.
caught_up() {
  local to
  to=$(wv_walvault info --repo "$REPO" --json 2>/dev/null | wv_json '$j->{recoverable}{to_lsn}' || true)
  [[ -n $to && $to != null ]] && wv_lsn_ge "$to" "$C_LSN"
}
wv_wait_for -t 60 -m "the archive never reached $C_LSN" caught_up
wv_capture "$OUT/info" wv_walvault info --repo "$REPO" --json
require "info --json exits 0" test "$WV_RC" -eq 0
wv_assert_ne null "$(wv_json '$j->{timelines}[0]{partial}' <"$OUT/info.out")" "info: the newest segment is in progress (.partial)"
wv_assert_eq 0 "$(wv_json 'scalar @{$j->{gaps}}' <"$OUT/info.out")" "info: no gaps"
wv_assert_eq t "$(Q "select timestamptz '$(wv_json '$j->{recoverable}{to_time}' <"$OUT/info.out")' > timestamptz '$T2'")" \
  "info: the window reaches past target 2 (phase C is archived, in the .partial)"
wv_capture "$OUT/info-text" wv_walvault info --repo "$REPO"
wv_assert_match "restorable" "$(cat "$OUT/info-text.out")" "info (text) shows the restorable window"

# ---------------------------------------------------------------- restore 1
wv_step "restore 1: target 1 given in New York local time, without a zone"
T1_NY=$(Q "select to_char(timestamptz '$T1' at time zone 'America/New_York', 'YYYY-MM-DD HH24:MI:SS.US')")
R1=$WV_TMP/restored1
wv_capture "$OUT/dry1" wv_as_pg env TZ=America/New_York "$WALVAULT" restore --repo "$REPO" \
  --target-dir "$R1" --target-time "$T1_NY" --target-action promote --dry-run --json
[[ $WV_RC -eq 0 ]] || show_output "$OUT/dry1"
require "dry run for $T1_NY (New York) exits 0" test "$WV_RC" -eq 0
wv_assert_eq "$T1" "$(wv_json '$j->{target}{value}' <"$OUT/dry1.out")" "the plan echoes the local time in UTC"
wv_assert_eq t "$(Q "select timestamptz '$(wv_json '$j->{recovery_settings}{recovery_target_time}' <"$OUT/dry1.out")' = timestamptz '$T1'")" \
  "recovery_target_time names the same instant, with an offset"
wv_assert_eq absent "$(wv_fingerprint "$R1")" "the dry run created nothing"
wv_capture "$OUT/restore1" wv_as_pg env TZ=America/New_York "$WALVAULT" restore --repo "$REPO" \
  --target-dir "$R1" --target-time "$T1_NY" --target-action promote
[[ $WV_RC -eq 0 ]] || show_output "$OUT/restore1"
require "restore 1 exits 0" test "$WV_RC" -eq 0
wv_assert_eq 700 "$(stat -c %a "$R1")" "restored directory has mode 0700"
wv_assert_eq postgres "$(stat -c %U "$R1")" "restored directory belongs to postgres"
wv_pg_register "$R1"
wv_pg_start "$R1"
promoted() { [[ $(wv_psql "$1" "select pg_is_in_recovery()") == f ]]; }
wv_wait_for -t 120 -m "restored cluster 1 did not finish recovery" promoted "$R1"
wv_assert "recovery 1 stopped before a commit after the target" \
  grep -q 'recovery stopping before commit of transaction' "$(wv_pg_logfile "$R1")"
R() { wv_psql "$1" "$2" 2>&1; }
wv_assert_eq "10 A" "$(R "$R1" "select count(*), string_agg(distinct phase, ',') from t" | tr '|' ' ')" "restore 1: exactly phase A's ten rows"
wv_assert_eq "row 1" "$(R "$R1" "select note from t where id = 1")" "restore 1: B's update is not there"
wv_assert_eq 1 "$(R "$R1" "select count(*) from t where id = 2")" "restore 1: B's delete is not there"
wv_pg_stop "$R1"

# ---------------------------------------------------------------- restore 2
wv_step "restore 2: target 2, stop record in the segment still being archived"
R2=$WV_TMP/restored2
wv_capture "$OUT/restore2" wv_walvault restore --repo "$REPO" --target-dir "$R2" \
  --target-time "$T2" --target-action promote
[[ $WV_RC -eq 0 ]] || show_output "$OUT/restore2"
require "restore 2 exits 0" test "$WV_RC" -eq 0
sed 's/^/    /' "$OUT/restore2.out"
wv_pg_register "$R2"
wv_pg_start "$R2"
wv_wait_for -t 120 -m "restored cluster 2 did not finish recovery" promoted "$R2"
wv_assert "recovery 2 stopped before a commit after the target" \
  grep -q 'recovery stopping before commit of transaction' "$(wv_pg_logfile "$R2")"
wv_assert_eq "19 A,B" "$(R "$R2" "select count(*), string_agg(distinct phase, ',' order by phase) from t" | tr '|' ' ')" \
  "restore 2: phases A and B (20 rows, one deleted), nothing of C"
wv_assert_eq "changed in B" "$(R "$R2" "select note from t where id = 1")" "restore 2: B's update is there"
wv_assert_eq 0 "$(R "$R2" "select count(*) from t where id = 2")" "restore 2: B's delete is there"
wv_assert_eq 20000 "$(R "$R2" "select count(*) from filler")" "restore 2: the filler table is complete"
wv_assert "restore 2: wal-get served the segment in progress from its .partial" \
  grep -q 'is still being archived; serving its' "$(wv_pg_logfile "$R2")"
wv_pg_stop "$R2"

# ---------------------------------------------------------------- refusals
wv_step "refusals: exit status, one error line, target directory untouched"
wv_stop_bg "$ARCHIVER" INT 30 || true
# refuse NAME EXPECTED_RC TARGET_DIR -- ARGS...
refuse() {
  local name=$1 want=$2 dir=$3 before
  shift 4
  before=$(wv_fingerprint "$dir")
  wv_capture "$OUT/refuse-$name" wv_walvault restore "$@" --target-dir "$dir"
  wv_assert_eq "$want" "$WV_RC" "$name: exit status $want"
  wv_assert_walvault_error "$OUT/refuse-$name.err" "$name: one 'walvault: error:' line (+ HINT)"
  sed 's/^/    | /' "$OUT/refuse-$name.err"
  wv_assert_eq "$before" "$(wv_fingerprint "$dir")" "$name: target directory $( [[ $before == absent ]] && echo "not created" || echo "unchanged")"
}
NEW=$WV_TMP/never
refuse before-window 3 "$NEW" -- --repo "$REPO" --target-time "2001-02-03 04:05:06+00"
wv_assert_match 'before the earliest restorable point' "$(cat "$OUT/refuse-before-window.err")" "before-window: says so"
FUTURE=$(Q "select to_char((now() + interval '1 day') at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS') || 'Z'")
refuse after-window 3 "$NEW" -- --repo "$REPO" --target-time "$FUTURE"
wv_assert_match 'after the end of the restorable window' "$(cat "$OUT/refuse-after-window.err")" "after-window: says so"
wv_assert_match 'archived up to [0-9A-F]+/[0-9A-F]+' "$(cat "$OUT/refuse-after-window.err")" "after-window: names the newest LSN"
refuse unknown-xid 3 "$NEW" -- --repo "$REPO" --target-xid 3999999999
wv_assert_match 'transaction 3999999999 was not found' "$(cat "$OUT/refuse-unknown-xid.err")" "unknown-xid: says it was not found (not 'after the end')"
wv_assert_match 'HINT: a transaction that ended before the earliest backup' "$(cat "$OUT/refuse-unknown-xid.err")" "unknown-xid: the hint covers an old transaction too"
FULL=$WV_TMP/full
mkdir -p "$FULL"
echo precious >"$FULL/keep"
wv_chown_pg "$FULL"
refuse not-empty 2 "$FULL" -- --repo "$REPO" --target-time "$T1"
refuse unparsable 2 "$NEW" -- --repo "$REPO" --target-time "yesterday at noon"
refuse two-targets 2 "$NEW" -- --repo "$REPO" --target-time "$T1" --target-lsn 0/1000000

# A gap: a copy of the repository without one segment between the backup and target 2.
GAPREPO=$WV_TMP/repo-gap
cp -a "$REPO" "$GAPREPO"
BACKUP_STOP=$(wv_json '$j->{backups}[0]{stop_lsn}' <"$OUT/info.out")
GAPSEG=$(wv_segment_name "$BACKUP_STOP" 1 1048576)
GAPSEG=$(printf '%08X%08X%08X' 1 0 $((16#${GAPSEG:16:8} + 2)))
rm -f "$GAPREPO/wal/00000001/$GAPSEG.lz4"
wv_capture "$OUT/info-gap" wv_walvault info --repo "$GAPREPO" --json
wv_assert_eq 1 "$(wv_json 'scalar @{$j->{gaps}}' <"$OUT/info-gap.out")" "info names the gap ($GAPSEG removed)"
refuse gap 3 "$NEW" -- --repo "$GAPREPO" --target-time "$T2"
wv_assert_match 'gap' "$(cat "$OUT/refuse-gap.err")" "gap: says so"
wv_assert_match 'on timeline 1 is missing' "$(cat "$OUT/refuse-gap.err")" "gap: names the missing range"

# ---------------------------------------------------------------- wal-get
wv_step "wal-get: probes, damage"
wv_capture "$OUT/walget-history" wv_walvault wal-get --repo "$REPO" 00000002.history "$WV_TMP/h"
wv_assert_eq 1 "$WV_RC" "wal-get of an absent history file exits 1"
wv_assert_eq "" "$(cat "$OUT/walget-history.err")" "... quietly"
wv_assert "... and writes nothing" test ! -e "$WV_TMP/h"
BADREPO=$WV_TMP/repo-bad
cp -a "$REPO" "$BADREPO"
FIRSTSEG=$(wv_json '$j->{backups}[0]{start_lsn}' <"$OUT/info.out")
FIRSTSEG=$(wv_segment_name "$FIRSTSEG" 1 1048576)
f=$BADREPO/wal/00000001/$FIRSTSEG.lz4
off=$(($(stat -c %s "$f") / 2))
byte=$(od -An -tu1 -j "$off" -N1 "$f" | tr -d ' ')
printf "\\x$(printf %02x $((255 - byte)))" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
wv_assert_ne "$(md5sum <"$REPO/wal/00000001/$FIRSTSEG.lz4")" "$(md5sum <"$f")" "one byte of $FIRSTSEG.lz4 flipped in a copy of the repository"
wv_capture "$OUT/walget-bad" wv_walvault wal-get --repo "$BADREPO" "$FIRSTSEG" "$WV_TMP/seg"
wv_assert_eq 128 "$WV_RC" "wal-get of a damaged segment exits 128 (> 125: PostgreSQL stops recovery)"
wv_assert_match "$FIRSTSEG" "$(cat "$OUT/walget-bad.err")" "... naming the file"
wv_assert "... and writes nothing" test ! -e "$WV_TMP/seg"
wv_capture "$OUT/walget-good" wv_walvault wal-get --repo "$REPO" "$FIRSTSEG" "$WV_TMP/seg"
wv_assert_eq 0 "$WV_RC" "wal-get of the intact segment exits 0"
wv_assert_eq 1048576 "$(stat -c %s "$WV_TMP/seg" 2>/dev/null)" "... and writes one whole segment"

echo
wv_summary pitr_restore
