#!/usr/bin/env bash
# walvault expire against a real PostgreSQL 15 cluster (1 MB WAL segments):
#
#   archive (background) -> four rounds of {rows, WAL switch, snapshot of a directory,
#   walvault backup} -> a last round of rows;
#   1. --dry-run --json lists exactly what the real run then removes, and changes nothing;
#   2. --retain-days D (D chosen so the window starts between the 2nd and 3rd backup's stop):
#      the 1st backup goes, the 2nd (the newest that stopped before the window) stays; the WAL
#      before the 2nd backup's start goes, the rest stays;
#   3. --retain-full 2: the 2nd backup goes too; exactly backups 3 and 4 remain, the oldest WAL
#      file is the one holding backup 3's start, the snapshots before the window's start are
#      gone except the newest at or before it; info's window starts at backup 3's stop;
#   4. every point of the kept window is restorable: restore --dry-run for targets from the
#      window's start to the end of the WAL, then restore --verify (recovery checked by
#      PostgreSQL, the row count checked with --verify-sql) to the window's start (with the
#      directory snapshot of that moment), to a time between backups 3 and 4, to an LSN after
#      backup 4, and to the latest WAL; a target before the window is refused with exit 3;
#   5. bad input: neither or both policies, --retain-full 0, a repository that does not exist.
#
# Run: bash tests/integration/expire_retention.sh. Prints `expire_retention: N passed, M
# failed` last.
# SC2016: Perl snippets are single-quoted on purpose.
# shellcheck disable=SC2016
set -euo pipefail

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

wv_test_begin expire_retention
wv_init_tmp
wv_require_walvault
PG=$WV_TMP/source
REPO=$WV_TMP/repo
OUT=$WV_TMP/out
DATA=$WV_TMP/data
mkdir -p "$OUT" "$DATA"
wv_chown_pg "$OUT" "$DATA"
Q() { wv_psql "$PG" "$1"; }
show_output() { sed 's/^/    | /' "$1.out" "$1.err" | head -n 60 >&2; }
server_now() { Q "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '+00:00'"; }
wait_past() {
  local i
  for ((i = 0; i < 100; i++)); do
    [[ $(Q "select clock_timestamp() > timestamptz '$1' + interval '300 ms'") == t ]] && return 0
    sleep 0.05
  done
  wv_fail "the server clock did not pass $1"
}
J() { wv_json "$1" <"$2"; }
info_json() { wv_walvault info --repo "$REPO" --json >"$OUT/info.json"; }
require() {
  local msg=$1
  shift
  if ! "$@"; then
    wv__failed "$msg" "command failed: $*"
    wv_summary expire_retention || true
    exit 1
  fi
  wv__pass "$msg"
}

# ---------------------------------------------------------------- four backups
wv_step "source cluster, archive, four rounds of rows + snapshot + backup"
wv_pg_init "$PG" --wal-segsize=1
wv_pg_start "$PG"
CONN=$(wv_connstr "$PG")
Q "create table t (id int primary key, round int not null)" >/dev/null
wv_start_bg "$WV_TMP/archive.log" "$WALVAULT" archive --repo "$REPO" --dbname "$CONN"
wv_wait_for -m "archive did not create the repository" test -f "$REPO/walvault.json"

# Round k: rows 10k+1..10k+10, two WAL switches, the directory says "round k", a snapshot,
# then backup k (rounds 0..3), so backup k+1 holds rows 1..10(k+1).
declare -a BACKUP_ID SNAP_ID ROUND_TIME
for k in 0 1 2 3; do
  Q "insert into t select g, $k from generate_series($((10 * k + 1)), $((10 * k + 10))) g" >/dev/null
  ROUND_TIME[k]=$(server_now)
  wait_past "${ROUND_TIME[k]}"
  Q "select pg_switch_wal()" >/dev/null
  Q "create table if not exists filler$k as select g from generate_series(1, 3000) g" >/dev/null
  Q "select pg_switch_wal()" >/dev/null
  printf 'round %s\n' "$k" >"$DATA/state.txt"
  wv_capture "$OUT/snap$k" wv_walvault snapshot --repo "$REPO" --dir "data=$DATA" --json
  [[ $WV_RC -eq 0 ]] || show_output "$OUT/snap$k"
  require "snapshot $k exits 0" test "$WV_RC" -eq 0
  SNAP_ID[k]=$(J '$j->[0]{id}' "$OUT/snap$k.out")
  wv_capture "$OUT/backup$k" wv_walvault backup --repo "$REPO" --dbname "$CONN" --checkpoint fast --label "b$k"
  [[ $WV_RC -eq 0 ]] || show_output "$OUT/backup$k"
  require "backup $k exits 0" test "$WV_RC" -eq 0
  info_json
  BACKUP_ID[k]=$(J '(map { $_->{id} } grep { $_->{label} eq "b'"$k"'" } @{$j->{backups}})[0]' "$OUT/info.json")
  # Backups 1 and 2 stop at least 2 s apart: room for the --retain-days window's start.
  [[ $k == 1 ]] && wv_sleep 2
done
Q "insert into t select g, 4 from generate_series(41, 50) g" >/dev/null
Q "select pg_switch_wal()" >/dev/null
LSN_45=$(Q "select pg_current_wal_insert_lsn()")
Q "insert into t select g, 5 from generate_series(51, 55) g" >/dev/null
Q "select pg_switch_wal()" >/dev/null
END_LSN=$(Q "select pg_current_wal_lsn()")
caught_up() {
  local to
  to=$(wv_walvault info --repo "$REPO" --json 2>/dev/null | wv_json '$j->{recoverable}{to_lsn}' || true)
  [[ -n $to && $to != null ]] && wv_lsn_ge "$to" "$END_LSN"
}
wv_wait_for -t 60 -m "the archive never reached $END_LSN" caught_up
info_json
wv_assert_eq 4 "$(J 'scalar grep { $_->{status} eq "complete" } @{$j->{backups}}' "$OUT/info.json")" "four complete backups"
bfield() { J '(map { $_->{'"$2"'} } grep { $_->{id} eq "'"$1"'" } @{$j->{backups}})[0]' "$OUT/info.json"; }
START_1=$(bfield "${BACKUP_ID[1]}" start_lsn)
START_2=$(bfield "${BACKUP_ID[2]}" start_lsn)
STOP_TIME_1=$(bfield "${BACKUP_ID[1]}" stop_time)
STOP_TIME_2=$(bfield "${BACKUP_ID[2]}" stop_time)
echo "backups: ${BACKUP_ID[*]}; backup 1 starts at $START_1, backup 2 at $START_2"
wal_files() { find "$REPO/wal/00000001" -maxdepth 1 -name '0000000100000000000000*' -printf '%f\n' | sort; }
oldest_wal() { wal_files | head -n 1; }
START_0=$(bfield "${BACKUP_ID[0]}" start_lsn)
FIRST_0=$(wv_segment_name "$START_0" 1 1048576)
before_backup_0() { [[ $(oldest_wal) < $FIRST_0 ]]; }
wv_assert "before expire the archive holds WAL from before backup 0's start" before_backup_0

# ---------------------------------------------------------------- 1. dry run
wv_step "1. --dry-run --json: what would go, nothing changes"
FP_BEFORE=$(wv_fingerprint "$REPO/backups")$(wv_fingerprint "$REPO/wal")$(wv_fingerprint "$REPO/snapshots")$(wv_fingerprint "$REPO/store")
wv_capture "$OUT/dry" wv_walvault expire --repo "$REPO" --retain-full 2 --dry-run --json
[[ $WV_RC -eq 0 ]] || show_output "$OUT/dry"
require "expire --dry-run exits 0" test "$WV_RC" -eq 0
FP_AFTER=$(wv_fingerprint "$REPO/backups")$(wv_fingerprint "$REPO/wal")$(wv_fingerprint "$REPO/snapshots")$(wv_fingerprint "$REPO/store")
wv_assert_eq "$FP_BEFORE" "$FP_AFTER" "the dry run changed nothing"
wv_assert_eq "${BACKUP_ID[0]} ${BACKUP_ID[1]}" "$(J 'join " ", map { $_->{id} } @{$j->{removed}{backups}}' "$OUT/dry.out")" "dry run: backups 0 and 1 would go"
wv_assert_eq "${BACKUP_ID[2]} ${BACKUP_ID[3]}" "$(J 'join " ", @{$j->{kept_backups}}' "$OUT/dry.out")" "dry run: backups 2 and 3 are kept"
DRY_WAL=$(J 'join " ", map { @{$_->{files}} } @{$j->{removed}{wal}}' "$OUT/dry.out")
FIRST_KEPT=$(wv_segment_name "$START_2" 1 1048576)
EXPECTED_WAL=$(wal_files | awk -v k="$FIRST_KEPT" '$0 < k' | paste -sd' ')
wv_assert_eq "$EXPECTED_WAL" "$DRY_WAL" "dry run: exactly the WAL files before backup 2's start segment would go"
wv_assert_eq 1 "$(J '$j->{dry_run} ? 1 : 0' "$OUT/dry.out")" "dry run: marked as such"

# ---------------------------------------------------------------- 2. --retain-days
wv_step "2. --retain-days: the window starts between backup 1's and backup 2's stop"
# D in days such that now - D lies halfway between the two stops.
DAYS=$(perl -MTime::Local -e '
  sub t { my ($y,$mo,$d,$h,$mi,$s) = $_[0] =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):([\d.]+)/ or die "bad time $_[0]";
          return timegm(0,$mi,$h,$d,$mo-1,$y) + $s; }
  use Time::HiRes qw(time);
  printf "%.9f\n", (time() - (t($ARGV[0]) + t($ARGV[1])) / 2) / 86400;' "$STOP_TIME_1" "$STOP_TIME_2")
echo "retain-days $DAYS"
wv_capture "$OUT/days" wv_walvault expire --repo "$REPO" --retain-days "$DAYS" --json
[[ $WV_RC -eq 0 ]] || show_output "$OUT/days"
require "expire --retain-days exits 0" test "$WV_RC" -eq 0
wv_assert_eq "${BACKUP_ID[0]}" "$(J 'join " ", map { $_->{id} } @{$j->{removed}{backups}}' "$OUT/days.out")" "--retain-days removed backup 0 only"
wv_assert_eq "${BACKUP_ID[1]} ${BACKUP_ID[2]} ${BACKUP_ID[3]}" "$(J 'join " ", @{$j->{kept_backups}}' "$OUT/days.out")" "--retain-days kept the newest backup before the window and both in it"
wv_assert_eq "$(wv_segment_name "$START_1" 1 1048576).lz4" "$(oldest_wal)" "the oldest WAL file left holds backup 1's start"
wv_assert_eq absent "$(wv_fingerprint "$REPO/backups/${BACKUP_ID[0]}")" "backup 0's directory is gone"
wv_assert_eq "" "$(ls -A "$REPO/trash")" "trash/ is empty after the run"

# ---------------------------------------------------------------- 3. --retain-full 2
wv_step "3. --retain-full 2"
wv_capture "$OUT/full" wv_walvault expire --repo "$REPO" --retain-full 2
[[ $WV_RC -eq 0 ]] || show_output "$OUT/full"
require "expire --retain-full 2 exits 0" test "$WV_RC" -eq 0
sed 's/^/    /' "$OUT/full.out"
wv_assert_match "removed backup ${BACKUP_ID[1]}: beyond --retain-full 2" "$(cat "$OUT/full.out")" "text output names the removed backup and why"
wv_assert_match "freed [0-9.]+ (B|KiB|MiB)" "$(cat "$OUT/full.out")" "text output says how much was freed"
info_json
wv_assert_eq "${BACKUP_ID[2]} ${BACKUP_ID[3]}" "$(J 'join " ", map { $_->{id} } @{$j->{backups}}' "$OUT/info.json")" "exactly backups 2 and 3 remain"
wv_assert_eq "$(wv_segment_name "$START_2" 1 1048576).lz4" "$(oldest_wal)" "the oldest WAL file left holds backup 2's start"
wv_assert_eq 0 "$(J 'scalar @{$j->{gaps}}' "$OUT/info.json")" "no gaps"
wv_assert_eq t "$(Q "select timestamptz '$(J '$j->{recoverable}{from_time}' "$OUT/info.json")' = timestamptz '$STOP_TIME_2'")" "the restorable window starts at backup 2's stop"
# Snapshots: 0 and 1 were taken before the window's start and are not its newest: gone.
wv_assert_eq "${SNAP_ID[2]} ${SNAP_ID[3]}" "$(J 'join " ", map { $_->{id} } @{$j->{snapshots}}' "$OUT/info.json")" "snapshots 2 (newest before the window's start) and 3 remain"
wv_capture "$OUT/verify" wv_walvault verify --repo "$REPO"
wv_assert_eq 0 "$WV_RC" "verify: the kept snapshots have every object"
wv_capture "$OUT/again" wv_walvault expire --repo "$REPO" --retain-full 2
wv_assert_match "nothing to expire" "$(cat "$OUT/again.out")" "a second run has nothing to do"

# ---------------------------------------------------------------- 4. the kept window
wv_step "4. every point of the kept window is restorable"
STOP_TIME_3=$(bfield "${BACKUP_ID[3]}" stop_time)
START_3=$(bfield "${BACKUP_ID[3]}" start_lsn)
dry_restore() { # EXPECTED_BACKUP ARGS...
  local expected=$1
  shift
  wv_capture "$OUT/dry-restore" wv_walvault restore --repo "$REPO" --target-dir "$WV_TMP/never" --dry-run --json "$@"
  [[ $WV_RC -eq 0 ]] || show_output "$OUT/dry-restore"
  wv_assert_eq "0 $expected" "$WV_RC $(J '$j->{backup}' "$OUT/dry-restore.out" 2>/dev/null || true)" "restore --dry-run $* is planned from backup $expected"
}
dry_restore "${BACKUP_ID[2]}" --target-time "$STOP_TIME_2"
dry_restore "${BACKUP_ID[2]}" --target-time "${ROUND_TIME[3]}"
dry_restore "${BACKUP_ID[3]}" --target-time "$STOP_TIME_3"
dry_restore "${BACKUP_ID[2]}" --target-lsn "$START_3"
dry_restore "${BACKUP_ID[3]}" --target-lsn "$LSN_45"
dry_restore "${BACKUP_ID[3]}" --target latest
restore_verify() { # NAME EXPECTED_ROWS TARGET ARGS...
  local name=$1 rows=$2
  shift 2
  printf 'select count(*) = %s from t;\n' "$rows" >"$OUT/$name.sql"
  wv_chown_pg "$OUT/$name.sql"
  wv_capture "$OUT/$name" wv_walvault restore --repo "$REPO" --target-dir "$WV_TMP/$name" \
    --target-action promote --verify --verify-sql "$OUT/$name.sql" --json "$@"
  [[ $WV_RC -eq 0 ]] || show_output "$OUT/$name"
  wv_assert_eq 0 "$WV_RC" "restore $name ($*) --verify exits 0"
  wv_assert_eq 1 "$(J '$j->{verify}{passed} ? 1 : 0' "$OUT/$name.out")" "restore $name: recovery reached the target and holds exactly $rows rows"
}
restore_verify start 30 --target-time "$STOP_TIME_2" --restore-dir "data=$WV_TMP/start-data"
wv_assert_eq "${BACKUP_ID[2]}" "$(J '$j->{backup}' "$OUT/start.out")" "the window's start is restored from backup 2"
wv_assert_eq "round 2" "$(cat "$WV_TMP/start-data/state.txt")" "the directory is the snapshot of that moment"
restore_verify mid 40 --target-time "${ROUND_TIME[3]}"
wv_assert_eq "${BACKUP_ID[2]}" "$(J '$j->{backup}' "$OUT/mid.out")" "a time between backups 2 and 3 is restored from backup 2"
restore_verify lsn 50 --target-lsn "$LSN_45"
restore_verify latest 55 --target latest
wv_capture "$OUT/before" wv_walvault restore --repo "$REPO" --target-dir "$WV_TMP/before" --target-time "$STOP_TIME_1"
wv_assert_eq 3 "$WV_RC" "a target before the window is refused with exit 3"
wv_assert_walvault_error "$OUT/before.err" "the refusal is one error line (+ hint)"
wv_assert_eq absent "$(wv_fingerprint "$WV_TMP/before")" "nothing was written for the refused target"

# ---------------------------------------------------------------- 5. bad input
wv_step "5. bad input"
wv_capture "$OUT/u1" wv_walvault expire --repo "$REPO"
wv_assert_eq 2 "$WV_RC" "no policy: exit 2"
wv_assert_walvault_error "$OUT/u1.err" "no policy: one error line"
wv_capture "$OUT/u2" wv_walvault expire --repo "$REPO" --retain-full 1 --retain-days 3
wv_assert_eq 2 "$WV_RC" "both policies: exit 2"
wv_capture "$OUT/u3" wv_walvault expire --repo "$REPO" --retain-full 0
wv_assert_eq 2 "$WV_RC" "--retain-full 0: exit 2"
wv_assert_match "at least 1" "$(head -n 1 "$OUT/u3.err")" "--retain-full 0: says why"
wv_capture "$OUT/u4" wv_walvault expire --repo "$REPO" --retain-days -1
wv_assert_eq 2 "$WV_RC" "--retain-days -1: exit 2"
wv_capture "$OUT/u5" wv_walvault expire --repo "$WV_TMP/nothing" --retain-full 1
wv_assert_eq 1 "$WV_RC" "a missing repository: exit 1"
wv_assert_walvault_error "$OUT/u5.err" "a missing repository: one error line (+ hint)"
info_json
wv_assert_eq 2 "$(J 'scalar @{$j->{backups}}' "$OUT/info.json")" "bad input removed nothing"

wv_summary expire_retention
