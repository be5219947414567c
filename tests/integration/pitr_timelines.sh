#!/usr/bin/env bash
# Point-in-time recovery across timelines (PostgreSQL 15, 1 MB WAL segments):
#
#   source on timeline 1: archive -> backup -> phase A -> T1 -> phase B (archived);
#   restore to T1 and promote: the restored server starts timeline 2 at the stop point;
#   the source's archiver is stopped and the restored server archived into the same
#   repository (00000002.history, timeline 2's WAL);
#   on timeline 2: phase D -> T3 -> phase E (archived);
#   then:
#   1. info shows timeline 2 with parent 1 and its switch LSN;
#   2. restore to T3 (latest timeline): the plan uses the timeline 1 backup, follows
#      timeline 1 until the switch and timeline 2 after it; the restored server holds
#      phases A and D, not B (timeline 1 only) and not E;
#   3. restore with --target-timeline 1 to a time inside phase B: A and the first part of B,
#      nothing of timeline 2.
#
# Run: bash tests/integration/pitr_timelines.sh  (WALVAULT=... to override, WV_KEEP_TMP=1).
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

wv_test_begin pitr_timelines
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
    wv_summary pitr_timelines || true
    exit 1
  fi
  wv__pass "$msg"
}
show_output() { sed 's/^/    | /' "$1.out" "$1.err" | head -n 40 >&2; }
now_on() { wv_psql "$1" "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '+00:00'"; }
wait_past() { # DATADIR TIME
  local i
  for ((i = 0; i < 100; i++)); do
    [[ $(wv_psql "$1" "select clock_timestamp() > timestamptz '$2' + interval '300 ms'") == t ]] && return 0
    sleep 0.05
  done
  wv_fail "the server clock did not pass $2"
}
insert_rows() { # DATADIR PHASE FROM TO
  local i
  for ((i = $3; i <= $4; i++)); do wv_psql "$1" "insert into t values ($i, '$2')" >/dev/null; done
}
archived_to() { # REPO LSN TIMELINE
  local end
  end=$(wv_info_end_lsn "$1" "$3" || true)
  [[ -n $end ]] && wv_lsn_ge "$end" "$2"
}
promoted() { [[ $(wv_psql "$1" "select pg_is_in_recovery()") == f ]]; }
restore_and_start() { # NAME DIR ARGS...
  local name=$1 dir=$2
  shift 2
  wv_capture "$OUT/$name" wv_walvault restore --repo "$REPO" --target-dir "$dir" --target-action promote "$@"
  [[ $WV_RC -eq 0 ]] || show_output "$OUT/$name"
  require "$name: restore exits 0" test "$WV_RC" -eq 0
  wv_pg_register "$dir"
  wv_pg_start "$dir"
  wv_wait_for -t 120 -m "$name: the restored cluster did not finish recovery" promoted "$dir"
}

# ---------------------------------------------------------------- timeline 1
wv_step "timeline 1: archive, backup, phase A, T1, phase B"
wv_pg_init "$PG" --wal-segsize=1
wv_pg_start "$PG"
wv_psql "$PG" "create table t (id int primary key, phase text not null)" >/dev/null
wv_start_bg "$WV_TMP/archive1.log" "$WALVAULT" archive --repo "$REPO" --dbname "$(wv_connstr "$PG")"
ARCH1=$WV_LAST_BG_PID
wv_wait_for -m "archive did not create the repository" test -f "$REPO/walvault.json"
wv_capture "$OUT/backup" wv_walvault backup --repo "$REPO" --dbname "$(wv_connstr "$PG")" --checkpoint fast
[[ $WV_RC -eq 0 ]] || show_output "$OUT/backup"
require "backup on timeline 1 exits 0" test "$WV_RC" -eq 0
insert_rows "$PG" A 1 10
T1=$(now_on "$PG")
wait_past "$PG" "$T1"
insert_rows "$PG" B 11 15
TB=$(now_on "$PG")
wait_past "$PG" "$TB"
insert_rows "$PG" B 16 20
END1=$(wv_psql "$PG" "select pg_switch_wal()")
wv_psql "$PG" "insert into t values (999, 'after the switch')" >/dev/null
wv_wait_for -t 60 -m "timeline 1 was not archived up to $END1" archived_to "$REPO" "$END1" 1
wv_stop_bg "$ARCH1" INT 30 || true
wv_pg_stop "$PG"

# ---------------------------------------------------------------- timeline 2
wv_step "restore to T1 and promote: timeline 2, archived into the same repository"
TL2=$WV_TMP/tl2
restore_and_start restore-t1 "$TL2" --target-time "$T1"
wv_assert_eq 2 "$(wv_psql "$TL2" "select timeline_id from pg_control_checkpoint()")" "the restored server runs on timeline 2"
wv_assert_eq 10 "$(wv_psql "$TL2" "select count(*) from t")" "timeline 2 begins with phase A only"
wv_start_bg "$WV_TMP/archive2.log" "$WALVAULT" archive --repo "$REPO" --dbname "$(wv_connstr "$TL2")"
ARCH2=$WV_LAST_BG_PID
insert_rows "$TL2" D 101 110
T3=$(now_on "$TL2")
wait_past "$TL2" "$T3"
insert_rows "$TL2" E 111 120
END2=$(wv_psql "$TL2" "select pg_switch_wal()")
wv_psql "$TL2" "insert into t values (998, 'after the switch')" >/dev/null
tl2_archived() {
  wv_bg_alive "$ARCH2" || { cat "$WV_TMP/archive2.log" >&2; wv_fail "the archiver of timeline 2 exited"; }
  archived_to "$REPO" "$END2" 2
}
wv_wait_for -t 60 -m "timeline 2 was not archived up to $END2" tl2_archived
wv_stop_bg "$ARCH2" INT 30 || true
wv_pg_stop "$TL2"

# ---------------------------------------------------------------- info
wv_step "info: two timelines"
wv_capture "$OUT/info" wv_walvault info --repo "$REPO" --json
require "info --json exits 0" test "$WV_RC" -eq 0
I=$OUT/info.out
SWITCH=$(wv_json '(grep { $_->{timeline} == 2 } @{$j->{timelines}})[0]{switch_lsn}' <"$I")
wv_assert_eq 1 "$(wv_json '(grep { $_->{timeline} == 2 } @{$j->{timelines}})[0]{parent}' <"$I")" "info: timeline 2's parent is 1"
wv_assert_match '^[0-9A-F]+/[0-9A-F]+$' "$SWITCH" "info: timeline 2's switch LSN ($SWITCH)"
wv_assert "the repository holds 00000002.history" test -f "$REPO/wal/00000002.history"
wv_assert_eq 2 "$(wv_json '$j->{recoverable}{timeline}' <"$I")" "info: the window is on timeline 2"
wv_assert_eq 0 "$(wv_json 'scalar grep { $_->{timeline} == 2 } @{$j->{gaps}}' <"$I")" "info: no gaps on timeline 2"

# ---------------------------------------------------------------- restore along timeline 2
wv_step "restore to T3 (on timeline 2) from the timeline 1 backup"
R3=$WV_TMP/r3
wv_capture "$OUT/dry3" wv_walvault restore --repo "$REPO" --target-dir "$R3" --target-time "$T3" --dry-run --json
require "dry run to T3 exits 0" test "$WV_RC" -eq 0
wv_assert_eq "1 2" "$(wv_json 'join " ", map { $_->{timeline} } @{$j->{timeline_path}}' <"$OUT/dry3.out")" "the plan follows timeline 1, then 2"
wv_assert_eq "$SWITCH" "$(wv_json '$j->{timeline_path}[0]{end_lsn}' <"$OUT/dry3.out")" "... switching at $SWITCH"
wv_assert_eq 2 "$(wv_json '$j->{recovery_settings}{recovery_target_timeline}' <"$OUT/dry3.out")" "recovery_target_timeline = 2"
wv_assert_match '^00000002' "$(wv_json '$j->{wal}{last}' <"$OUT/dry3.out")" "the last WAL file comes from timeline 2"
restore_and_start restore-t3 "$R3" --target-time "$T3"
R() { wv_psql "$1" "$2" 2>&1; }
wv_assert_eq "A:10 D:10" "$(R "$R3" "select string_agg(phase || ':' || n, ' ' order by phase) from (select phase, count(*) n from t group by phase) s")" \
  "restored along timeline 2: phases A and D only"
wv_assert_eq 3 "$(R "$R3" "select timeline_id from pg_control_checkpoint()")" "... and promoted to timeline 3"
wv_pg_stop "$R3"

wv_step "restore with --target-timeline 1 into phase B"
R4=$WV_TMP/r4
restore_and_start restore-tb "$R4" --target-time "$TB" --target-timeline 1
wv_assert_eq "A:10 B:5" "$(R "$R4" "select string_agg(phase || ':' || n, ' ' order by phase) from (select phase, count(*) n from t group by phase) s")" \
  "restored along timeline 1: phase A and the first half of B"
wv_assert_match "^[3-9]$" "$(R "$R4" "select timeline_id from pg_control_checkpoint()")" "... and promoted to a new timeline (not 1 or 2)"
wv_pg_stop "$R4"

wv_step "refusals: a timeline that does not exist, a missing history file"
# refuse NAME REPO ARGS... — exit 3, one error line, the target directory not created.
refuse() {
  local name=$1 repo=$2 dir=$WV_TMP/never-$1
  shift 2
  wv_capture "$OUT/refuse-$name" wv_walvault restore --repo "$repo" --target-dir "$dir" "$@"
  wv_assert_eq 3 "$WV_RC" "$name: exit status 3"
  wv_assert_walvault_error "$OUT/refuse-$name.err" "$name: one 'walvault: error:' line (+ HINT)"
  sed 's/^/    | /' "$OUT/refuse-$name.err"
  wv_assert_eq absent "$(wv_fingerprint "$dir")" "$name: target directory not created"
}
refuse no-such-timeline "$REPO" --target-time "$T3" --target-timeline 9
wv_assert_match 'timeline 9 is not in the repository' "$(cat "$OUT/refuse-no-such-timeline.err")" "no-such-timeline: says so"
NOHIST=$WV_TMP/repo-no-history
cp -a "$REPO" "$NOHIST"
rm -- "$NOHIST/wal/00000002.history"
for tl in latest 2; do
  refuse "no-history-$tl" "$NOHIST" --target-time "$T3" --target-timeline "$tl"
  wv_assert_match 'timeline 2 has no history file in the repository \(00000002.history\)' \
    "$(cat "$OUT/refuse-no-history-$tl.err")" "no-history ($tl): names the missing history file"
done

echo
wv_summary pitr_timelines
