#!/usr/bin/env bash
# `walvault backup` against a real PostgreSQL 15 cluster (1 MB WAL segments, a tablespace):
#
#   1. no archiver runs: the backup archives its own WAL (start..stop) and is complete;
#   2. `walvault archive` runs in the background: the backup waits for it and is complete;
#      for both: backup.json is plausible, the stored tars pass `lz4 -t` and their sha256,
#      `lz4 -d | tar -x` plus the tablespace gives a directory that pg_verifybackup accepts
#      against the stored manifest, once without WAL and once parsing the archived WAL from
#      the start to the stop LSN;
#   walvault restore --target immediate of the second backup (extract_backup, tablespace moved)
#      passes pg_verifybackup and starts with the rows the backup saw;
#   3. failures: no server, a malformed connection string, the repository of another
#      cluster, an archiver that holds the lock but archives nothing (--wal-timeout-s), and
#      SIGTERM while waiting, the server ending the connection mid-backup: one
#      `walvault: error:` line, exit 1, backup.json "failed", never a complete backup, no
#      temp files left.
#
# Run: bash tests/integration/backup_basic.sh  (WALVAULT=... to override, WV_KEEP_TMP=1 keeps
# the temp dir). Prints `backup_basic: N passed, M failed` last.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
FIXTURES=$WV_REPO_ROOT/tests/fixtures
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

wv_test_begin backup_basic
wv_init_tmp
wv_require_walvault
PG=$WV_TMP/pg
REPO=$WV_TMP/repo
OUT=$WV_TMP/out
mkdir -p "$OUT"
wv_chown_pg "$OUT"

require() {
  local msg=$1
  shift
  if ! "$@"; then
    wv__failed "$msg" "command failed: $*"
    exit 1
  fi
  wv__pass "$msg"
}

show_output() { sed 's/^/    | /' "$1.out" "$1.err" | head -n 40 >&2; }

json_field() { wv_json "\$j->{$2}" <"$REPO/backups/$1/backup.json"; }

# ---------------------------------------------------------------- cluster
wv_step "cluster with 1 MB segments, a tablespace and the authentik-like fixture"
wv_pg_init "$PG" --wal-segsize=1
wv_pg_start "$PG"
CONN=$(wv_connstr "$PG")
mkdir -p "$WV_TMP/ts_src"
wv_chown_pg "$WV_TMP/ts_src"
wv_psql "$PG" "create tablespace ts1 location '$WV_TMP/ts_src'" >/dev/null
wv_psql_file "$PG" "$FIXTURES/authentik_schema.sql"
wv_psql_file "$PG" "$FIXTURES/authentik_seed.sql"
wv_psql "$PG" "create table big tablespace ts1 as select g, md5(g::text) h from generate_series(1, 200000) g" >/dev/null
TS_OID=$(wv_psql "$PG" "select oid from pg_tablespace where spcname = 'ts1'")

# ---------------------------------------------------------------- checks of one backup
# Decompresses the repository's WAL of timeline 1 into DIR: complete segments as they are,
# the newest .partial padded with zeros to a whole segment (WAL past its end is zeros).
unpack_wal() {
  local dir=$1 f name
  mkdir -p "$dir"
  for f in "$REPO"/wal/00000001/*.lz4; do
    [[ -e $f ]] || continue
    name=$(basename "$f" .lz4)
    lz4 -dcq "$f" >"$dir/$name"
  done
  for f in "$REPO"/wal/00000001/*.lz4.partial; do
    [[ -e $f ]] || continue
    name=$(basename "$f" .lz4.partial)
    [[ -e $dir/$name ]] && continue
    lz4 -dcq "$f" >"$dir/$name" 2>/dev/null || true # a torn tail: the verified prefix is what counts
    truncate -s 1M "$dir/$name"
  done
  wv_chown_pg "$dir"
}

check_backup() {
  local id=$1 label=$2 bdir=$REPO/backups/$1 x f name sha
  wv_step "checking backup $id ($label)"
  wv_assert_eq complete "$(json_field "$id" status)" "$label: backup.json says complete"
  local start stop
  start=$(json_field "$id" start_lsn)
  stop=$(json_field "$id" stop_lsn)
  wv_assert_match '^[0-9A-F]+/[0-9A-F]+$' "$start" "$label: start_lsn in PostgreSQL notation"
  if wv_lsn_ge "$start" 0/1000000 && wv_lsn_ge "$stop" "$start" && ! wv_lsn_ge "$start" "$stop"; then
    wv__pass "$label: 0/1000000 <= start_lsn ($start) < stop_lsn ($stop)"
  else
    wv__failed "$label: plausible LSNs" "start $start stop $stop"
  fi
  wv_assert_eq 1 "$(json_field "$id" timeline)" "$label: timeline 1"
  wv_assert "$label: stop_lsn not beyond the server's position" \
    wv_lsn_ge "$(wv_psql "$PG" 'select pg_current_wal_lsn()')" "$stop"
  wv_assert_eq "$TS_OID" "$(json_field "$id" 'tablespaces}[0]{oid')" "$label: the tablespace is recorded"
  wv_assert_eq "$WV_TMP/ts_src" "$(json_field "$id" 'tablespaces}[0]{location')" "$label: with its location"
  local files
  files=$(wv_json 'map { $_->{name} } @{$j->{files}}' <"$bdir/backup.json")
  wv_assert_eq "$(printf 'base.tar.lz4\n%s.tar.lz4\nbackup_manifest' "$TS_OID" | sort)" \
    "$(sort <<<"$files")" "$label: files are base.tar.lz4, $TS_OID.tar.lz4, backup_manifest"
  local i=0 bad=0
  for name in $files; do
    sha=$(json_field "$id" "files}[$i]{sha256")
    [[ $(sha256sum <"$bdir/$name" | cut -d' ' -f1) == "$sha" ]] || bad=1
    [[ $(stat -c %s "$bdir/$name") == "$(json_field "$id" "files}[$i]{stored_bytes")" ]] || bad=1
    i=$((i + 1))
  done
  wv_assert_eq 0 "$bad" "$label: sizes and sha256 of the stored files match backup.json"
  for f in "$bdir"/*.tar.lz4; do
    wv_assert "$label: lz4 -t $(basename "$f")" lz4 -tq "$f"
  done
  wv_assert_eq "" "$(find "$REPO" -name '*.tmp')" "$label: no temp files in the repository"
  wv_assert_match '"PostgreSQL-Backup-Manifest-Version"' "$(head -c 200 "$bdir/backup_manifest")" \
    "$label: backup_manifest is the server's manifest"

  # Extract with standard tools: lz4 + tar, the tablespace into its own directory.
  x=$WV_TMP/extract-$id
  mkdir -p "$x/data" "$x/ts"
  chmod 0700 "$x/data"
  lz4 -dcq "$bdir/base.tar.lz4" | tar -xf - -C "$x/data"
  lz4 -dcq "$bdir/$TS_OID.tar.lz4" | tar -xf - -C "$x/ts"
  ln -sfn "$x/ts" "$x/data/pg_tblspc/$TS_OID"
  wv_chown_pg "$x"
  wv_assert "$label: pg_verifybackup --no-parse-wal accepts the extracted backup" \
    wv_as_pg "$PGBIN/pg_verifybackup" --quiet --no-parse-wal --manifest-path "$bdir/backup_manifest" "$x/data"
  unpack_wal "$x/wal"
  wv_assert "$label: pg_verifybackup parses the archived WAL from start to stop LSN" \
    wv_as_pg "$PGBIN/pg_verifybackup" --quiet --manifest-path "$bdir/backup_manifest" \
    --wal-directory "$x/wal" "$x/data"
  rm -rf "$x"
}

new_backup_id() { # the newest backup directory
  ls -1 "$REPO/backups" | LC_ALL=C sort | tail -n 1
}

# ---------------------------------------------------------------- 1. no archiver
wv_step "1. walvault backup with no archiver running (it archives its own WAL)"
wv_capture "$OUT/b1" wv_walvault backup --repo "$REPO" --dbname "$CONN" --checkpoint fast --label first
[[ $WV_RC -eq 0 ]] || show_output "$OUT/b1"
require "backup without an archiver exits 0" test "$WV_RC" -eq 0
ID1=$(new_backup_id)
wv_assert_match "backup $ID1 complete" "$(cat "$OUT/b1.out")" "stdout names the complete backup"
wv_assert_match "archiving the WAL of the backup" "$(cat "$OUT/b1.err")" "it archived the WAL itself"
wv_assert_eq first "$(json_field "$ID1" label)" "the label is kept"
check_backup "$ID1" "self-archived"

# ---------------------------------------------------------------- 2. with an archiver
wv_step "2. walvault archive in the background, then walvault backup"
wv_start_bg "$WV_TMP/archive.log" "$WALVAULT" archive --repo "$REPO" --dbname "$CONN"
ARCHIVER=$WV_LAST_BG_PID
archiver_locked() {
  wv_bg_alive "$ARCHIVER" || { cat "$WV_TMP/archive.log" >&2; wv_fail "walvault archive exited"; }
  grep -q pid= "$REPO/lock/archiver.lock" 2>/dev/null
}
wv_wait_for -m "walvault archive did not take its lock" archiver_locked
wv_psql "$PG" "insert into big select g, md5(g::text) from generate_series(200001, 250000) g" >/dev/null
wv_capture "$OUT/b2" wv_walvault backup --repo "$REPO" --dbname "$CONN" --checkpoint fast
[[ $WV_RC -eq 0 ]] || { show_output "$OUT/b2"; cat "$WV_TMP/archive.log" >&2; }
require "backup with a running archiver exits 0" test "$WV_RC" -eq 0
ID2=$(new_backup_id)
wv_assert_ne "$ID1" "$ID2" "the second backup has its own id"
wv_assert_eq "$ID2" "$(json_field "$ID2" label)" "without --label the label is the id"
wv_assert_match "waiting .* for the running archiver|is archived" "$(cat "$OUT/b2.err")" \
  "it relied on the running archiver"
wv_assert_not "it did not stream WAL itself" grep -q "archiving the WAL of the backup" "$OUT/b2.err"
check_backup "$ID2" "archiver running"
wv_stop_bg "$ARCHIVER" TERM 30 || true

# ---------------------------------------------------------------- restore through walvault
# extract_backup as walvault restore uses it: the tablespace goes to a new directory, the
# result passes pg_verifybackup and starts with the rows the backup saw.
wv_step "walvault restore --target immediate (extract_backup with a relocated tablespace)"
RESTORED=$WV_TMP/restored
TS_RESTORED=$WV_TMP/ts_restored
# Both ways of relocating a tablespace name the same place in the plan; a mapping that names
# no tablespace of the backup is a usage error before anything is written.
wv_capture "$OUT/plan_oid" wv_walvault restore --repo "$REPO" --target-dir "$RESTORED" \
  --tablespace-dir "$TS_OID=$TS_RESTORED" --target immediate --dry-run --json
wv_assert_eq 0 "$WV_RC" "dry run with --tablespace-dir OID=NEW exits 0"
wv_assert_eq "$TS_OID $WV_TMP/ts_src $TS_RESTORED" \
  "$(wv_json 'join " ", map { ($_->{oid}, $_->{location}, $_->{restore_to}) } @{$j->{tablespaces}}' <"$OUT/plan_oid.out")" \
  "the plan shows the tablespace, where it was and where it goes (by oid)"
wv_capture "$OUT/plan_path" wv_walvault restore --repo "$REPO" --target-dir "$RESTORED" \
  --tablespace "$WV_TMP/ts_src=$TS_RESTORED" --target immediate --dry-run
wv_assert_eq 0 "$WV_RC" "dry run with --tablespace OLD=NEW exits 0"
wv_assert_match "tablespace +$TS_OID \(was $WV_TMP/ts_src\) into $TS_RESTORED" "$(cat "$OUT/plan_path.out")" \
  "the text plan shows the tablespace going to the new path"
wv_capture "$OUT/bad_ts" wv_walvault restore --repo "$REPO" --target-dir "$RESTORED" \
  --tablespace "$WV_TMP/no_such_ts=$TS_RESTORED" --target immediate
wv_assert_eq 2 "$WV_RC" "--tablespace naming no tablespace of the backup exits 2"
wv_assert_match "^walvault: error: backup .* has no tablespace at \"$WV_TMP/no_such_ts\"" \
  "$(head -1 "$OUT/bad_ts.err")" "the error names the unknown path"
wv_assert_match "^HINT: its tablespaces are at: $WV_TMP/ts_src" "$(sed -n 2p "$OUT/bad_ts.err")" \
  "the hint lists the backup's tablespaces"
wv_assert "nothing was created by the refused restore" test ! -e "$RESTORED" -a ! -e "$TS_RESTORED"

wv_capture "$OUT/restore" wv_walvault restore --repo "$REPO" --target-dir "$RESTORED" \
  --tablespace "$WV_TMP/ts_src=$TS_RESTORED" --target immediate --json
[[ $WV_RC -eq 0 ]] || show_output "$OUT/restore"
require "walvault restore exits 0" test "$WV_RC" -eq 0
RID=$(wv_json '$j->{backup}' <"$OUT/restore.out")
wv_assert_eq "$ID2" "$RID" "restore picked the newest backup"
wv_assert_eq "$TS_RESTORED" "$(readlink "$RESTORED/pg_tblspc/$TS_OID")" "pg_tblspc/$TS_OID points at the new tablespace directory"
wv_assert_eq "" "$(ls "$RESTORED/backup_manifest" 2>/dev/null)" "no backup_manifest copied into the data directory"
wv_assert "pg_verifybackup accepts the restored directory" \
  wv_as_pg "$PGBIN/pg_verifybackup" --quiet --no-parse-wal --manifest-path "$REPO/backups/$RID/backup_manifest" \
  -i recovery.signal -i postgresql.auto.conf "$RESTORED"
wv_pg_start "$RESTORED"
wv_pg_wait_ready "$RESTORED"
wv_assert_eq 250000 "$(wv_psql "$RESTORED" 'select count(*) from big')" \
  "the restored server has the 250000 rows of the tablespace table"
wv_assert_eq 3000 "$(wv_psql "$RESTORED" 'select count(*) from authentik_core_user')" \
  "and the fixture's 3000 users"
wv_pg_stop "$RESTORED" immediate

# ---------------------------------------------------------------- 3. failures
count_complete() {
  local n=0 f
  for f in "$REPO"/backups/*/backup.json; do
    [[ $(wv_json '$j->{status}' <"$f") == complete ]] && n=$((n + 1))
  done
  echo "$n"
}

# expect_failure NAME REGEX CMD... — exit 1, exactly one error line matching REGEX.
expect_failure() {
  local name=$1 regex=$2
  shift 2
  wv_capture "$OUT/$name" "$@"
  wv_assert_eq 1 "$WV_RC" "$name: exit status 1"
  wv_assert_eq 1 "$(grep -c '^walvault: error: ' "$OUT/$name.err" || true)" "$name: one error line"
  wv_assert_match "$regex" "$(grep '^walvault: error: ' "$OUT/$name.err" || true)" "$name: says why"
}

wv_step "3. failures"
COMPLETE_BEFORE=$(count_complete)
wv_assert_eq 2 "$COMPLETE_BEFORE" "two complete backups so far"

expect_failure no-server "could not connect" \
  wv_walvault backup --repo "$WV_TMP/repo-none" --dbname "host=$WV_TMP/nosuchdir port=5" --checkpoint fast
wv_assert_eq absent "$(wv_fingerprint "$WV_TMP/repo-none")" "no-server: no repository created"

expect_failure bad-connstr "connect|connection|conninfo|missing" \
  wv_walvault backup --repo "$WV_TMP/repo-none" --dbname "this is not a connection string" --checkpoint fast
wv_assert_eq absent "$(wv_fingerprint "$WV_TMP/repo-none")" "bad-connstr: no repository created"

OTHER=$WV_TMP/repo-other
mkdir -p "$OTHER"
sed 's/"system_identifier": *"[0-9]*"/"system_identifier": "1234567890123456789"/' "$REPO/walvault.json" >"$OTHER/walvault.json"
wv_chown_pg "$OTHER"
chmod -R go-rwx "$OTHER"
FP_OTHER=$(wv_fingerprint "$OTHER")
expect_failure other-cluster "belongs to database system" \
  wv_walvault backup --repo "$OTHER" --dbname "$CONN" --checkpoint fast
wv_assert_eq "$FP_OTHER" "$(wv_fingerprint "$OTHER")" "other-cluster: the other repository is unchanged"

# An "archiver" that holds the lock but archives nothing: the backup must time out, failed.
wv_start_bg "$WV_TMP/fakelock.log" flock -x "$REPO/lock/archiver.lock" sleep 300
FAKE=$WV_LAST_BG_PID
wv_wait_for -m "flock did not take the archiver lock" \
  bash -c "! flock -xn '$REPO/lock/archiver.lock' true"
expect_failure wal-timeout "did not reach the repository within 2 s" \
  wv_walvault backup --repo "$REPO" --dbname "$CONN" --checkpoint fast --wal-timeout-s 2
ID3=$(new_backup_id)
wv_assert_eq failed "$(json_field "$ID3" status)" "wal-timeout: backup.json says failed"
wv_assert_match "did not reach" "$(json_field "$ID3" error)" "wal-timeout: backup.json has the error"

# SIGTERM while waiting for the WAL: failed, not left running.
wv_start_bg "$OUT/term.log" "$WALVAULT" backup --repo "$REPO" --dbname "$CONN" --checkpoint fast --wal-timeout-s 120
TERMED=$WV_LAST_BG_PID
wv_wait_for -m "the backup did not start waiting for WAL" grep -q "waiting up to" "$OUT/term.log"
ID4=$(new_backup_id)
wv_assert_not "while it runs, the backup holds lock/backup-$ID4.lock" \
  flock -xn "$REPO/lock/backup-$ID4.lock" true
# Signal walvault itself (a member of the group), not runuser, which would report the
# signal instead of walvault's own exit status.
WV_PID=$(ps -o pid=,comm= -g "$TERMED" | awk '$2 == "walvault" { print $1 }' | head -n 1)
[[ -n $WV_PID ]] || wv_fail "no walvault process in process group $TERMED"
kill -TERM "$WV_PID"
TERM_RC=0
wv_wait_bg "$TERMED" 30 || TERM_RC=$?
wv_assert_eq 1 "$TERM_RC" "sigterm: exit status 1"
wv_assert_eq failed "$(json_field "$ID4" status)" "sigterm: backup.json says failed"
wv_assert_match "interrupted" "$(json_field "$ID4" error)" "sigterm: the error says interrupted"

# kill -9 while waiting for the WAL: backup.json stays "running", nobody holds its lock, so
# info reports it failed, with where it began and nothing made up for what it never learnt.
wv_start_bg "$OUT/kill9.log" "$WALVAULT" backup --repo "$REPO" --dbname "$CONN" --checkpoint fast --wal-timeout-s 120
KILLED=$WV_LAST_BG_PID
wv_wait_for -m "the backup did not start waiting for WAL" grep -q "waiting up to" "$OUT/kill9.log"
KILLED_ID=$(new_backup_id)
wv_stop_bg "$KILLED" KILL 10 || true
wv_assert_eq running "$(json_field "$KILLED_ID" status)" "kill -9: backup.json still says running"
wv_capture "$OUT/info-killed" wv_walvault info --repo "$REPO" --json
IK() { wv_json "\$b = (grep { \$_->{id} eq '$KILLED_ID' } @{\$j->{backups}})[0]; $1" <"$OUT/info-killed.out"; }
wv_assert_eq failed "$(IK '$b->{status}')" "kill -9: info reports the backup failed"
wv_assert_eq "the backup process ended before the backup completed" "$(IK '$b->{error}')" "kill -9: ... with the reason"
wv_assert_match '^[0-9A-F]+/[0-9A-F]+$' "$(IK '$b->{start_lsn}')" "kill -9: ... and the start LSN it had recorded"
wv_assert_eq null "$(IK 'defined $b->{stop_lsn} ? $b->{stop_lsn} : "null"')" "kill -9: no stop LSN is made up"
wv_capture "$OUT/info-killed-text" wv_walvault info --repo "$REPO"
wv_assert_match "$KILLED_ID: the backup process ended before the backup completed" "$(cat "$OUT/info-killed-text.out")" "kill -9: the text output names the reason"
wv_stop_bg "$FAKE" TERM 10 || true

# The server ends the connection in the middle of the backup (here: while a spread
# checkpoint is still writing): failed, with the server's reason.
wv_psql "$PG" "alter system set checkpoint_timeout = '1h'" >/dev/null
wv_psql "$PG" "select pg_reload_conf()" >/dev/null
wv_psql "$PG" "update big set h = h || 'x'" >/dev/null # dirty buffers for the checkpoint to spread
wv_start_bg "$OUT/lost.log" "$WALVAULT" backup --repo "$REPO" --dbname "$CONN" --checkpoint spread
LOST=$WV_LAST_BG_PID
walsender_up() {
  [[ $(wv_psql "$PG" "select count(*) from pg_stat_activity where application_name = 'walvault backup'") -ge 1 ]]
}
wv_wait_for -m "the backup's walsender did not show up" walsender_up
wv_sleep 1
wv_psql "$PG" "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'walvault backup'" >/dev/null
LOST_RC=0
wv_wait_bg "$LOST" 60 || LOST_RC=$?
wv_assert_eq 1 "$LOST_RC" "connection lost: exit status 1"
wv_assert_eq 1 "$(grep -c '^walvault: error: ' "$OUT/lost.log" || true)" "connection lost: one error line"
ID5=$(new_backup_id)
wv_assert_eq failed "$(json_field "$ID5" status)" "connection lost: backup.json says failed"
wv_assert_match "terminat|connection|server closed" "$(json_field "$ID5" error)" "connection lost: the error says why"
wv_psql "$PG" "alter system reset checkpoint_timeout" >/dev/null
wv_psql "$PG" "select pg_reload_conf()" >/dev/null

N_BACKUPS=$(ls -1 "$REPO/backups" | wc -l)
wv_capture "$OUT/badlabel" wv_walvault backup --repo "$REPO" --dbname "$CONN" --label $'two\nlines'
wv_assert_eq 2 "$WV_RC" "a label with a newline is a usage error (exit 2)"
wv_assert_eq "$N_BACKUPS" "$(ls -1 "$REPO/backups" | wc -l)" "and starts no backup"

wv_assert_eq "$COMPLETE_BEFORE" "$(count_complete)" "no failure left a complete backup"
# kill -9 leaves its (unheld) lock file behind; expire removes such leftovers.
wv_assert_eq "" "$(ls "$REPO"/lock/backup-*.lock 2>/dev/null | grep -v "backup-$KILLED_ID.lock")" "no backup lock files left (but the killed backup's)"
wv_assert "the killed backup's lock file is left and not held" \
  bash -c "test -e '$REPO/lock/backup-$KILLED_ID.lock' && flock -xn '$REPO/lock/backup-$KILLED_ID.lock' true"
wv_assert_eq "" "$(find "$REPO" -name '*.tmp')" "no temp files left in the repository"

wv_summary backup_basic
