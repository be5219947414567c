#!/usr/bin/env bash
# walvault restore --verify against a real PostgreSQL 15 cluster (1 MB WAL segments):
#
#   archive (background) -> backup -> 30 rows, a restore point, 20 more rows -> then
#   1. --target-lsn (after row 30) --target-action promote --verify --verify-sql --json:
#      passes (exit 0), the server promoted, its "recovery stopping" line is the planned one,
#      every check true; afterwards no server runs, nothing of the check (port, socket dir,
#      listen_addresses) was written into the directory, and the normal service starts it
#      and sees exactly 30 rows;
#   2. --target-name (pause) --verify with a check that is false: exit 1, the server was
#      paused at the restore point, the failed query is named;
#   3. a repository copy with a needed segment (between the backup and the target) damaged:
#      restore checks every segment the plan needs before writing and refuses (exit 1),
#      naming the segment; nothing is written;
#   4. --verify-sql without --verify and --verify with --dry-run are usage errors (exit 2);
#   5. --target-action shutdown --verify: the server shuts down at the restore point, is
#      started again paused at the same point for the checks, and the directory is left as a
#      shutdown leaves it (recovery.signal, the shutdown setting).
#
# Run: bash tests/integration/pitr_verify.sh. Prints `pitr_verify: N passed, M failed` last.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

wv_test_begin pitr_verify
wv_init_tmp
wv_require_walvault
PG=$WV_TMP/source
REPO=$WV_TMP/repo
OUT=$WV_TMP/out
mkdir -p "$OUT"
wv_chown_pg "$OUT"
Q() { wv_psql "$PG" "$1"; }
show_output() { sed 's/^/    | /' "$1.out" "$1.err" | head -n 60 >&2; }

wv_step "source cluster, walvault archive, walvault backup, rows, restore point"
wv_pg_init "$PG" --wal-segsize=1
wv_pg_start "$PG"
CONN=$(wv_connstr "$PG")
Q "create table t (id int primary key, note text)" >/dev/null
wv_start_bg "$WV_TMP/archive.log" "$WALVAULT" archive --repo "$REPO" --dbname "$CONN"
ARCHIVER=$WV_LAST_BG_PID
wv_wait_for -m "archive did not create the repository" test -f "$REPO/walvault.json"
wv_capture "$OUT/backup" wv_walvault backup --repo "$REPO" --dbname "$CONN" --checkpoint fast
[[ $WV_RC -eq 0 ]] || show_output "$OUT/backup"
wv_assert_eq 0 "$WV_RC" "backup exits 0"
# Rows 1-30 with WAL in between so that the target lies two segments after the backup.
Q "insert into t select g, 'row ' || g from generate_series(1, 10) g" >/dev/null
Q "create table filler as select g, repeat(md5(g::text), 20) as pad from generate_series(1, 5000) g" >/dev/null
Q "insert into t select g, 'row ' || g from generate_series(11, 30) g" >/dev/null
TARGET_LSN=$(Q "select pg_current_wal_insert_lsn()")
Q "select pg_create_restore_point('before_more_rows')" >/dev/null
Q "insert into t select g, 'row ' || g from generate_series(31, 50) g" >/dev/null
Q "select pg_switch_wal()" >/dev/null
Q "insert into t values (51, 'pushes the switch out')" >/dev/null
Q "select pg_switch_wal()" >/dev/null
END_LSN=$(Q "select pg_current_wal_lsn()")
caught_up() {
  local to
  to=$(wv_walvault info --repo "$REPO" --json 2>/dev/null | wv_json '$j->{recoverable}{to_lsn}' || true)
  [[ -n $to && $to != null ]] && wv_lsn_ge "$to" "$END_LSN"
}
wv_wait_for -t 60 -m "the archive never reached $END_LSN" caught_up
wv_stop_bg "$ARCHIVER" INT 30 || true

cat >"$OUT/checks.sql" <<'SQL'
-- what was committed by the target
select count(*) = 30 from t;
select max(id) = 30
  from t;
select not exists (select 1 from t where id > 30);
SQL
cat >"$OUT/false.sql" <<'SQL'
select count(*) = 30 from t;
select count(*) = 50 from t;
SQL
wv_chown_pg "$OUT"

# ---------------------------------------------------------------- 1. a good restore
wv_step "1. --target-lsn $TARGET_LSN, promote, --verify --verify-sql --json"
R1=$WV_TMP/restored1
wv_capture "$OUT/v1" "$WALVAULT" restore --repo "$REPO" --target-dir "$R1" --target-lsn "$TARGET_LSN" \
  --target-action promote --verify --verify-sql "$OUT/checks.sql" --json
[[ $WV_RC -eq 0 ]] || show_output "$OUT/v1"
wv_assert_eq 0 "$WV_RC" "restore --verify of a good restore exits 0"
J() { wv_json "$1" <"$OUT/v1.out"; }
wv_assert_eq 1 "$(J '$j->{verify}{passed} ? 1 : 0')" "verify.passed is true"
wv_assert_eq promoted "$(J '$j->{verify}{state}')" "the server promoted at the target"
wv_assert_eq 1 "$(J '$j->{verify}{stop}{as_planned} ? 1 : 0')" "it stopped where the plan says"
wv_assert_match "recovery stopping after WAL location \\(LSN\\) \"$TARGET_LSN\"" "$(J '$j->{verify}{stop}{server}')" "the server's own stop line names the target LSN"
wv_assert_eq 3 "$(J 'scalar grep { $_->{passed} } @{$j->{verify}{checks}}')" "all three checks of the file ran and returned true"
wv_assert_match '^[0-9A-F]+/[0-9A-F]+$' "$(J '$j->{verify}{last_replay}{lsn}')" "the last replayed LSN is reported"
wv_assert_match '^20[0-9-]+T[0-9:.]+\+00:00$' "$(J '$j->{verify}{last_replay}{time}')" "the last replayed transaction time is reported (UTC)"
wv_assert_match 'postgres' "$(J 'join ",", @{$j->{verify}{databases}}')" "every database answered"
wv_assert_eq 1 "$(J '$j->{verify}{stopped_cleanly} ? 1 : 0')" "the server was stopped cleanly"
wv_assert "no server left running on the restored directory" test ! -e "$R1/postmaster.pid"
wv_assert_not "nothing of the check was written into the configuration" \
  grep -rq 'walvault-verify' "$R1/postgresql.auto.conf" "$R1/postgresql.conf"
wv_assert "no temporary check directory is left behind" \
  test -z "$(find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'walvault-verify-*' -newer "$OUT/checks.sql" 2>/dev/null)"
wv_pg_register "$R1"
wv_pg_start "$R1"
wv_assert_eq "30 f" "$(wv_psql "$R1" "select count(*), pg_is_in_recovery() from t" | tr '|' ' ')" \
  "the normal service starts it afterwards: 30 rows, read-write"
wv_pg_stop "$R1"

# ---------------------------------------------------------------- 2. a failing check
wv_step "2. --target-name before_more_rows (pause), a check that is false"
R2=$WV_TMP/restored2
wv_capture "$OUT/v2" "$WALVAULT" restore --repo "$REPO" --target-dir "$R2" --target-name before_more_rows --target-action pause \
  --verify --verify-sql "$OUT/false.sql"
wv_assert_eq 1 "$WV_RC" "a false check makes --verify exit 1"
wv_assert_match 'server state +paused' "$(cat "$OUT/v2.out")" "the server was paused at the restore point"
wv_assert_match 'recovery stopping at restore point "before_more_rows"' "$(cat "$OUT/v2.out")" "... its stop line names the restore point"
wv_assert_match 'check +ok +select count\(\*\) = 30 from t' "$(cat "$OUT/v2.out")" "the true check is reported ok"
wv_assert_match 'check +FAILED select count\(\*\) = 50 from t \(returned f\)' "$(cat "$OUT/v2.out")" "the false check is reported FAILED"
one_error() { wv_assert_eq 1 "$(grep -c '^walvault: error:' "$1")" "one 'walvault: error:' line"; }
# A failed verification keeps the server log (its directory is named in the HINT).
drop_kept_log() {
  local d
  d=$(sed -n 's/^HINT: .*(\(.*\)\/postgresql.log)$/\1/p' "$1")
  [[ $d == */walvault-verify-* && -d $d ]] && rm -r -- "$d"
  return 0
}
one_error "$OUT/v2.err"
wv_assert_match 'server log says more \(.*/walvault-verify-.*/postgresql.log\)' "$(cat "$OUT/v2.err")" "the HINT names the kept server log"
drop_kept_log "$OUT/v2.err"
wv_assert_match 'verification failed: check failed: select count\(\*\) = 50 from t' "$(cat "$OUT/v2.err")" "the error names the failed query"
wv_assert "no server left running" test ! -e "$R2/postmaster.pid"

# ---------------------------------------------------------------- 3. damaged WAL
wv_step "3. a needed segment damaged in the repository"
BAD=$WV_TMP/repo-bad
cp -a "$REPO" "$BAD"
START=$(wv_walvault info --repo "$REPO" --json | wv_json '$j->{backups}[0]{stop_lsn}')
SEG=$(wv_segment_name "$START" 1 1048576)
SEG=$(printf '%08X%08X%08X' 1 0 $((16#${SEG:16:8} + 1)))
TARGET_SEG=$(wv_segment_name "$TARGET_LSN" 1 1048576)
wv_assert "the damaged segment $SEG lies before the target's $TARGET_SEG" test "$SEG" '<' "$TARGET_SEG"
f=$BAD/wal/00000001/$SEG.lz4
truncate -s $(($(stat -c %s "$f") / 2)) "$f"
R3=$WV_TMP/restored3
wv_capture "$OUT/v3" "$WALVAULT" restore --repo "$BAD" --target-dir "$R3" --target-lsn "$TARGET_LSN" \
  --target-action promote --verify --verify-sql "$OUT/checks.sql"
wv_assert_eq 1 "$WV_RC" "--verify over damaged WAL exits 1"
# restore reads every segment its plan needs before writing: the damage is found before
# PostgreSQL would meet it, and nothing is written.
wv_assert_match "restore refused: .*$SEG.lz4\", WAL that recovery needs, is damaged" "$(cat "$OUT/v3.err")" "the refusal names the damaged segment"
wv_assert_match "HINT: run walvault verify" "$(cat "$OUT/v3.err")" "... and points to walvault verify"
one_error "$OUT/v3.err"
wv_assert_eq absent "$(wv_fingerprint "$R3")" "nothing was written"

# ---------------------------------------------------------------- 5. shutdown at the target
wv_step "5. --target-name before_more_rows --target-action shutdown --verify --verify-sql"
R5=$WV_TMP/restored5
wv_capture "$OUT/v5" "$WALVAULT" restore --repo "$REPO" --target-dir "$R5" --target-name before_more_rows \
  --target-action shutdown --verify --verify-sql "$OUT/checks.sql"
[[ $WV_RC -eq 0 ]] || show_output "$OUT/v5"
wv_assert_eq 0 "$WV_RC" "restore --verify with a shutdown action exits 0"
wv_assert_match 'server state +shut down at the target' "$(cat "$OUT/v5.out")" "the server shut down at the target"
wv_assert_match 'recovery stopping at restore point "before_more_rows"' "$(cat "$OUT/v5.out")" "... at the restore point"
wv_assert_eq 3 "$(grep -Ec '^check +ok ' "$OUT/v5.out")" "the checks ran (on a second start, paused at the same target) and passed"
wv_assert "no server left running" test ! -e "$R5/postmaster.pid"
wv_assert "the directory stays in recovery (recovery.signal), as a shutdown action leaves it" test -e "$R5/recovery.signal"
wv_assert "the user's shutdown action stays in the configuration" \
  grep -q "^recovery_target_action = 'shutdown'" "$R5/postgresql.auto.conf"

# ---------------------------------------------------------------- 4. usage
wv_step "4. usage errors"
wv_capture "$OUT/u1" "$WALVAULT" restore --repo "$REPO" --target-dir "$WV_TMP/never" --verify-sql "$OUT/checks.sql"
wv_assert_eq 2 "$WV_RC" "--verify-sql without --verify: exit 2"
wv_capture "$OUT/u2" "$WALVAULT" restore --repo "$REPO" --target-dir "$WV_TMP/never" --verify --dry-run
wv_assert_eq 2 "$WV_RC" "--verify with --dry-run: exit 2"
wv_assert_eq absent "$(wv_fingerprint "$WV_TMP/never")" "nothing was created"

echo
wv_summary pitr_verify
