#!/usr/bin/env bash
# Integration test of walvault's main job against a real PostgreSQL 15 cluster with 1 MB
# WAL segments:
#
#   archive -> backup -> changes at known times -> restore to a time between them ->
#   pg_verifybackup on the target before starting it -> start it, recovery stops at the
#   target -> exactly the rows committed before the target, none after -> every archived
#   segment passes `lz4 -t` and pg_waldump reads the archived range ->
#   bad inputs fail with one `walvault: error:` line and change nothing.
#
# Run: bash tests/integration/e2e_main_job.sh   (WALVAULT=path/to/walvault to override;
# WV_KEEP_TMP=1 keeps the temp dir). Prints `e2e_main_job: N passed, M failed` last.
# SC2016: Perl snippets are single-quoted on purpose. SC2317: functions called through
# wv_wait_for / wv_assert look unreachable to shellcheck.
# shellcheck disable=SC2016,SC2317
set -euo pipefail

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
FIXTURES=$WV_REPO_ROOT/tests/fixtures
SEG_BYTES=1048576

wv_test_begin e2e_main_job
wv_init_tmp
wv_require_walvault
PG=$WV_TMP/source
REPO=$WV_TMP/repo
TARGET_DIR=$WV_TMP/restored
OUT=$WV_TMP/out
mkdir -p "$OUT"

# Fails the whole test when a step the rest depends on goes wrong; counted as a failure.
require() {
  local msg=$1
  shift
  if ! "$@"; then
    wv__failed "$msg" "command failed: $*"
    exit 1 # the EXIT trap prints the summary
  fi
}

show_output() { # prefix: prints what a captured command wrote, indented
  sed 's/^/    | /' "$1.out" "$1.err" | head -n 40
}

# ---------------------------------------------------------------- source cluster
wv_step "source cluster (wal_segment_size = 1 MB) with the authentik-like fixture"
wv_pg_init "$PG" --wal-segsize=1
wv_pg_start "$PG"
CONN=$(wv_connstr "$PG")
wv_psql_file "$PG" "$FIXTURES/authentik_schema.sql"
wv_psql_file "$PG" "$FIXTURES/authentik_seed.sql"
wv_assert_eq "$SEG_BYTES" "$(wv_psql "$PG" "select setting from pg_settings where name = 'wal_segment_size'")" \
  "source cluster runs with 1 MB segments"
wv_assert_eq 3000 "$(wv_psql "$PG" "select count(*) from authentik_core_user")" "fixture loaded 3000 users"
SYSID=$(wv_psql "$PG" "select system_identifier from pg_control_system()")

# ---------------------------------------------------------------- archive
wv_step "walvault archive (background)"
wv_start_bg "$WV_TMP/archive.log" "$WALVAULT" archive --repo "$REPO" --dbname "$CONN"
ARCHIVER=$WV_LAST_BG_PID
archiver_alive() {
  wv_bg_alive "$ARCHIVER" && return 0
  wv_log "---- archive log ----"
  cat "$WV_TMP/archive.log" >&2
  return 1
}
repo_created() {
  archiver_alive || wv_fail "walvault archive exited early"
  [[ -f $REPO/walvault.json ]]
}
wv_wait_for -m "archive did not create $REPO/walvault.json" repo_created
wv__pass "archive created the repository (walvault.json)"

# ---------------------------------------------------------------- backup
wv_step "walvault backup"
wv_capture "$OUT/backup" wv_walvault backup --repo "$REPO" --dbname "$CONN" --label e2e --checkpoint fast
[[ $WV_RC -eq 0 ]] || show_output "$OUT/backup"
require "backup exits 0" test "$WV_RC" -eq 0
wv__pass "backup exits 0"

wv_capture "$OUT/info1" wv_walvault info --repo "$REPO" --json
require "info --json exits 0 after the backup" test "$WV_RC" -eq 0
BACKUP_ID=$(wv_json '$j->{backups}[0]{id}' <"$OUT/info1.out")
wv_assert_eq 1 "$(wv_json 'scalar @{$j->{backups}}' <"$OUT/info1.out")" "info lists one backup"
wv_assert_eq complete "$(wv_json '$j->{backups}[0]{status}' <"$OUT/info1.out")" "the backup is complete"
wv_assert_eq e2e "$(wv_json '$j->{backups}[0]{label}' <"$OUT/info1.out")" "the backup carries its label"
BACKUP_START_LSN=$(wv_json '$j->{backups}[0]{start_lsn}' <"$OUT/info1.out")
wv_assert_match '^[0-9A-F]+/[0-9A-F]+$' "$BACKUP_START_LSN" "backup start_lsn in PostgreSQL notation"
require "the backup has a manifest at backups/<id>/backup_manifest" test -f "$REPO/backups/$BACKUP_ID/backup_manifest"
wv__pass "the backup has a manifest at backups/$BACKUP_ID/backup_manifest"

# ---------------------------------------------------------------- changes at known times
wv_step "changes before and after the target time"
# Before the target: alice, a few events, one update.
wv_psql "$PG" "insert into authentik_core_user (uuid, username, name, email, password)
  values (md5('user:alice')::uuid, 'alice', 'Alice Liddell', 'alice@example.org', 'x')" >/dev/null
wv_psql "$PG" "insert into authentik_events_event (event_uuid, action, app, expires, context)
  select md5('e2e-before:' || i)::uuid, 'e2e-before', 'e2e', now() + interval '1 year',
         jsonb_build_object('i', i)
  from generate_series(1, 25) as i" >/dev/null
wv_psql "$PG" "update authentik_core_user set email = 'changed-before@example.org' where username = 'user00002'" >/dev/null
EXP_USERS=$(wv_psql "$PG" "select count(*) from authentik_core_user")
EXP_EVENTS=$(wv_psql "$PG" "select count(*) from authentik_events_event")
EXP_USERS_MD5=$(wv_psql "$PG" "select md5(string_agg(u::text, '|' order by id)) from authentik_core_user u")
EXP_EVENTS_MD5=$(wv_psql "$PG" "select md5(string_agg(e::text, '|' order by event_uuid)) from authentik_events_event e")
EXP_GROUPS_MD5=$(wv_psql "$PG" "select md5(string_agg(m::text, '|' order by id)) from authentik_core_user_ak_groups m")

# The target: the next whole second, given with an explicit offset.
TARGET=$(wv_psql "$PG" "select to_char(date_trunc('second', clock_timestamp() at time zone 'UTC')
  + interval '1 second', 'YYYY-MM-DD\"T\"HH24:MI:SS') || '+00:00'")
past_target() { [[ $(wv_psql "$PG" "select clock_timestamp() > timestamptz '$TARGET' + interval '700 ms'") == t ]]; }
wv_wait_for -t 10 past_target
echo "target time: $TARGET"

# After the target: bob, more events, a delete, an update, a membership change.
wv_psql "$PG" "insert into authentik_core_user (uuid, username, name, email, password)
  values (md5('user:bob')::uuid, 'bob', 'Bob Builder', 'bob@example.org', 'x')" >/dev/null
BOB_XID=$(wv_psql "$PG" "select xmin from authentik_core_user where username = 'bob'")
wv_psql "$PG" "insert into authentik_events_event (event_uuid, action, app, expires, context)
  select md5('e2e-after:' || i)::uuid, 'e2e-after', 'e2e', now() + interval '1 year',
         jsonb_build_object('i', i, 'pad', repeat(md5(i::text), 20))
  from generate_series(1, 3000) as i" >/dev/null
wv_psql "$PG" "delete from authentik_core_user where username = 'user00003'" >/dev/null
wv_psql "$PG" "update authentik_core_user set name = 'changed after' where username = 'akadmin'" >/dev/null
LAST_CHANGE_LSN=$(wv_psql "$PG" "select pg_current_wal_lsn()")
SWITCH_LSN=$(wv_psql "$PG" "select pg_switch_wal()")
wv_psql "$PG" "insert into authentik_events_event (event_uuid, action, app, expires)
  values (md5('e2e-after-switch')::uuid, 'e2e-after', 'e2e', now() + interval '1 year')" >/dev/null
echo "last change at $LAST_CHANGE_LSN, segment switch at $SWITCH_LSN"

caught_up() {
  archiver_alive || wv_fail "walvault archive exited early"
  local end
  end=$(wv_info_end_lsn "$REPO" 1 || true)
  [[ -n $end ]] && wv_lsn_ge "$end" "$SWITCH_LSN"
}
wv_wait_for -t 120 -m "info --json never showed timeline 1 reaching $SWITCH_LSN" caught_up
wv__pass "info shows the archive reaching past the segment switch ($(wv_info_end_lsn "$REPO" 1))"

# ---------------------------------------------------------------- info
wv_step "walvault info --json"
wv_capture "$OUT/info2" wv_walvault info --repo "$REPO" --json
require "info --json exits 0" test "$WV_RC" -eq 0
I=$OUT/info2.out
wv_assert_eq "$SYSID" "$(wv_json '$j->{system_identifier}' <"$I")" "info: system_identifier matches the server"
wv_assert_eq "$SEG_BYTES" "$(wv_json '$j->{wal_segment_size}' <"$I")" "info: wal_segment_size is 1 MB"
wv_assert_eq 1 "$(wv_json '$j->{timelines}[0]{timeline}' <"$I")" "info: timeline 1 listed"
wv_assert_eq 0 "$(wv_json 'scalar grep { $_->{timeline} == 1 } @{$j->{gaps} || []}' <"$I")" "info: no gaps on timeline 1"
FROM_TIME=$(wv_json '$j->{recoverable}{from_time}' <"$I")
TO_TIME=$(wv_json '$j->{recoverable}{to_time}' <"$I")
wv_assert_eq t "$(wv_psql "$PG" "select timestamptz '$FROM_TIME' <= timestamptz '$TARGET'
  and timestamptz '$TARGET' <= timestamptz '$TO_TIME'" 2>&1)" \
  "info: the target lies in the recoverable window [$FROM_TIME, $TO_TIME]"
wv_capture "$OUT/info-text" wv_walvault info --repo "$REPO"
wv_assert_eq 0 "$WV_RC" "info (text) exits 0"
wv_assert_match "$BACKUP_ID" "$(cat "$OUT/info-text.out")" "info (text) names the backup"

# ---------------------------------------------------------------- restore --dry-run
wv_step "walvault restore --dry-run"
BACKUPS_FP=$(wv_fingerprint "$REPO/backups")
wv_capture "$OUT/dry" wv_walvault restore --repo "$REPO" --target-dir "$TARGET_DIR" \
  --target-time "$TARGET" --target-action promote --dry-run
[[ $WV_RC -eq 0 ]] || show_output "$OUT/dry"
wv_assert_eq 0 "$WV_RC" "restore --dry-run exits 0"
cat "$OUT/dry.out"
wv_assert_match "$BACKUP_ID" "$(cat "$OUT/dry.out")" "the dry-run plan names the backup"
wv_assert_eq absent "$(wv_fingerprint "$TARGET_DIR")" "restore --dry-run does not create the target dir"
wv_capture "$OUT/dryjson" wv_walvault restore --repo "$REPO" --target-dir "$TARGET_DIR" \
  --target-time "$TARGET" --target-action promote --dry-run --json
wv_assert_eq 0 "$WV_RC" "restore --dry-run --json exits 0"
wv_assert_eq "$BACKUP_ID" "$(wv_json '$j->{backup}' <"$OUT/dryjson.out" 2>&1)" "plan (json): the backup"
wv_assert_eq time "$(wv_json '$j->{target}{kind}' <"$OUT/dryjson.out" 2>&1)" "plan (json): target kind is time"
wv_assert_eq "$BOB_XID" "$(wv_json '$j->{stop}{record}{xid}' <"$OUT/dryjson.out" 2>&1)" \
  "plan (json): recovery stops before bob's commit (xid $BOB_XID)"
SETTING_UTC=$(wv_json '$j->{recovery_settings}{recovery_target_time}' <"$OUT/dryjson.out" 2>&1)
wv_assert_match '([+-][0-9]{2}(:?[0-9]{2})?|Z|UTC)$' "$SETTING_UTC" "plan (json): recovery_target_time carries an offset ($SETTING_UTC)"
# The same instant written with another offset plans the same recovery.
TARGET_IST=$(wv_psql "$PG" "select to_char((timestamptz '$TARGET' at time zone 'UTC') + interval '5 hours 30 minutes',
  'YYYY-MM-DD\"T\"HH24:MI:SS') || '+05:30'")
wv_capture "$OUT/dryjson-ist" wv_walvault restore --repo "$REPO" --target-dir "$TARGET_DIR" \
  --target-time "$TARGET_IST" --target-action promote --dry-run --json
wv_assert_eq 0 "$WV_RC" "restore --dry-run --json with $TARGET_IST exits 0"
wv_assert_eq "$SETTING_UTC" "$(wv_json '$j->{recovery_settings}{recovery_target_time}' <"$OUT/dryjson-ist.out" 2>&1)" \
  "the same instant given as $TARGET_IST yields the same recovery_target_time"

# ---------------------------------------------------------------- restore
wv_step "walvault restore"
wv_capture "$OUT/restore" wv_walvault restore --repo "$REPO" --target-dir "$TARGET_DIR" \
  --target-time "$TARGET" --target-action promote
[[ $WV_RC -eq 0 ]] || show_output "$OUT/restore"
require "restore exits 0" test "$WV_RC" -eq 0
wv__pass "restore exits 0"
echo "target dir holds: $(find "$TARGET_DIR" -mindepth 1 -maxdepth 1 -printf '%f ' | LC_ALL=C sort)"
PGOWNER=$(if wv_is_root; then echo "$WV_PG_USER"; else id -un; fi)
wv_assert_eq "$PGOWNER" "$(stat -c %U "$TARGET_DIR")" "target dir owned by the PostgreSQL user"
wv_assert_match '^7[05]0$' "$(stat -c %a "$TARGET_DIR")" "target dir mode is 0700 or 0750"
wv_assert_eq "" "$(find "$TARGET_DIR" ! -user "$PGOWNER" | head -n 5)" "every restored file owned by the PostgreSQL user"
wv_assert "recovery.signal written" test -f "$TARGET_DIR/recovery.signal"
wv_assert "no standby.signal" test ! -e "$TARGET_DIR/standby.signal"
AUTO_CONF=$(cat "$TARGET_DIR/postgresql.auto.conf" "$TARGET_DIR/postgresql.conf" 2>/dev/null | grep -E "^\s*(restore_command|recovery_target)" || true)
printf '    %s\n' "$AUTO_CONF"
wv_assert_match "restore_command *= *'[^']*wal-get" "$AUTO_CONF" "recovery settings: restore_command uses walvault wal-get"
wv_assert_match "recovery_target_time *= *'[^']*([+-][0-9]{2}(:?[0-9]{2})?|Z|UTC)'" "$AUTO_CONF" \
  "recovery settings: recovery_target_time carries an offset"
# (The archiver is still appending WAL; the backups must not change.)
wv_assert_eq "$BACKUPS_FP" "$(wv_fingerprint "$REPO/backups")" "restore did not change the stored backups"
wv_assert "pg_verifybackup accepts the restored dir against the stored manifest (before start)" \
  wv_as_pg "$PGBIN/pg_verifybackup" --no-parse-wal --quiet \
  --manifest-path "$REPO/backups/$BACKUP_ID/backup_manifest" \
  -i recovery.signal -i postgresql.auto.conf -i backup_manifest "$TARGET_DIR"

# ---------------------------------------------------------------- recovery
wv_step "PostgreSQL on the restored dir"
wv_pg_register "$TARGET_DIR"
wv_pg_start "$TARGET_DIR"
promoted() { [[ $(wv_psql "$TARGET_DIR" "select pg_is_in_recovery()") == f ]]; }
wv_wait_for -t 180 -m "restored cluster did not leave recovery" promoted
wv__pass "restored cluster finished recovery and was promoted"
RLOG=$(wv_pg_logfile "$TARGET_DIR")
grep -E 'recovery stopping|archive recovery complete|selected new timeline' "$RLOG" | sed 's/^/    /' || true
wv_assert "recovery stopped at the target: before bob's commit (xid $BOB_XID)" \
  grep -q "recovery stopping before commit of transaction $BOB_XID," "$RLOG"
wv_assert_eq "$SYSID" "$(wv_psql "$TARGET_DIR" "select system_identifier from pg_control_system()")" \
  "restored cluster has the source's system identifier"
wv_assert_eq 2 "$(wv_psql "$TARGET_DIR" "select timeline_id from pg_control_checkpoint()")" \
  "restored cluster promoted to timeline 2"

wv_step "restored rows: exactly those committed before $TARGET"
R() { wv_psql "$TARGET_DIR" "$1" 2>&1; }
wv_assert_eq 1 "$(R "select count(*) from authentik_core_user where username = 'alice'")" "alice (before) present"
wv_assert_eq 0 "$(R "select count(*) from authentik_core_user where username = 'bob'")" "bob (after) absent"
wv_assert_eq 25 "$(R "select count(*) from authentik_events_event where action = 'e2e-before'")" "events before the target present"
wv_assert_eq 0 "$(R "select count(*) from authentik_events_event where action = 'e2e-after'")" "no event from after the target"
wv_assert_eq changed-before@example.org "$(R "select email from authentik_core_user where username = 'user00002'")" "update before the target kept"
wv_assert_eq 1 "$(R "select count(*) from authentik_core_user where username = 'user00003'")" "delete after the target undone"
wv_assert_eq "authentik Default Admin" "$(R "select name from authentik_core_user where username = 'akadmin'")" "update after the target undone"
wv_assert_eq "$EXP_USERS" "$(R "select count(*) from authentik_core_user")" "user count as of the target"
wv_assert_eq "$EXP_EVENTS" "$(R "select count(*) from authentik_events_event")" "event count as of the target"
wv_assert_eq "$EXP_USERS_MD5" "$(R "select md5(string_agg(u::text, '|' order by id)) from authentik_core_user u")" "users table identical to the target state"
wv_assert_eq "$EXP_EVENTS_MD5" "$(R "select md5(string_agg(e::text, '|' order by event_uuid)) from authentik_events_event e")" "events table identical to the target state"
wv_assert_eq "$EXP_GROUPS_MD5" "$(R "select md5(string_agg(m::text, '|' order by id)) from authentik_core_user_ak_groups m")" "memberships identical to the target state"
wv_assert "restored cluster: indexes are usable (amcheck-free probe)" \
  wv_psql "$TARGET_DIR" "set enable_seqscan = off; select count(*) from authentik_core_user where username = 'alice'"
wv_pg_stop "$TARGET_DIR"

# ---------------------------------------------------------------- archive resumes, endpos
wv_step "archive: stop, then resume with --endpos/--no-loop"
wv_stop_bg "$ARCHIVER" INT 30 && ARC_RC=0 || ARC_RC=$?
echo "archiver exited with status $ARC_RC on SIGINT"
ENDPOS=$(wv_psql "$PG" "select pg_current_wal_lsn()")
wv_capture "$OUT/endpos" wv_as_pg timeout 120 "$WALVAULT" archive --repo "$REPO" --dbname "$CONN" --endpos "$ENDPOS" --no-loop
[[ $WV_RC -eq 0 ]] || show_output "$OUT/endpos"
wv_assert_eq 0 "$WV_RC" "archive --endpos $ENDPOS --no-loop resumes and exits 0 by itself"
END_NOW=$(wv_info_end_lsn "$REPO" 1 || true)
wv_assert "after --endpos the archive reaches $ENDPOS (info says ${END_NOW:-nothing})" \
  wv_lsn_ge "${END_NOW:-0/0}" "$ENDPOS"

# ---------------------------------------------------------------- archived segments
wv_step "archived segments: lz4 -t, pg_waldump"
mapfile -t SEGMENTS < <(find "$REPO/wal" -mindepth 2 -maxdepth 2 -name '*.lz4' | LC_ALL=C sort)
wv_assert_ne 0 "${#SEGMENTS[@]}" "the archive holds complete segments (${#SEGMENTS[@]})"
bad_lz4=()
for f in "${SEGMENTS[@]}"; do
  lz4 -t -q "$f" >/dev/null 2>&1 || bad_lz4+=("${f#"$REPO"/}")
done
wv_assert_eq "" "${bad_lz4[*]}" "every complete segment passes lz4 -t"
bad_names=()
for f in "${SEGMENTS[@]}"; do
  [[ ${f##*/} =~ ^[0-9A-F]{24}\.lz4$ ]] || bad_names+=("${f#"$REPO"/}")
done
wv_assert_eq "" "${bad_names[*]}" "segment files are named <24 hex digits>.lz4"

# Decompress the segments from the backup's start to the last change and let pg_waldump
# read every record in between.
WALDIR=$WV_TMP/waldump
mkdir -p "$WALDIR"
FIRST_SEG=$(wv_segment_name "$BACKUP_START_LSN" 1 "$SEG_BYTES")
LAST_SEG=$(wv_segment_name "$LAST_CHANGE_LSN" 1 "$SEG_BYTES" prev)
bad_size=()
for f in "${SEGMENTS[@]}"; do
  name=${f##*/}
  name=${name%.lz4}
  [[ $name < "$FIRST_SEG" || $name > "$LAST_SEG" ]] && continue
  lz4 -d -q -f "$f" "$WALDIR/$name"
  [[ $(stat -c %s "$WALDIR/$name") -eq $SEG_BYTES ]] || bad_size+=("$name")
done
wv_chown_pg "$WALDIR"
wv_assert_eq "" "${bad_size[*]}" "decompressed segments are exactly 1 MB"
n_expected=$(( ($(wv_lsn_to_num "$LAST_CHANGE_LSN") - 1) / SEG_BYTES - $(wv_lsn_to_num "$BACKUP_START_LSN") / SEG_BYTES + 1 ))
wv_assert_eq "$n_expected" "$(find "$WALDIR" -type f | wc -l)" "no segment missing from $FIRST_SEG to $LAST_SEG"
# restore_command's helper hands out the same bytes, and fails for a file it does not have.
wv_capture "$OUT/walget" wv_walvault wal-get --repo "$REPO" "$FIRST_SEG" "$WV_TMP/walget-$FIRST_SEG"
wv_assert_eq 0 "$WV_RC" "wal-get $FIRST_SEG exits 0"
wv_assert "wal-get hands out exactly the archived segment's bytes" \
  cmp "$WALDIR/$FIRST_SEG" "$WV_TMP/walget-$FIRST_SEG"
wv_capture "$OUT/walget-missing" wv_walvault wal-get --repo "$REPO" 00000001000000FF000000FF "$WV_TMP/walget-missing"
wv_assert_ne 0 "$WV_RC" "wal-get of a segment the archive lacks exits non-zero"
wv_assert "wal-get of a missing segment creates no file" test ! -e "$WV_TMP/walget-missing"
wv_capture "$OUT/waldump" wv_as_pg "$PGBIN/pg_waldump" -p "$WALDIR" -t 1 --start="$BACKUP_START_LSN" --end="$LAST_CHANGE_LSN" --stats
[[ $WV_RC -eq 0 ]] || show_output "$OUT/waldump"
wv_assert_eq 0 "$WV_RC" "pg_waldump reads the archived WAL from $BACKUP_START_LSN to $LAST_CHANGE_LSN"
wv_assert_match 'Transaction' "$(cat "$OUT/waldump.out")" "pg_waldump saw commit records"

# ---------------------------------------------------------------- bad inputs
wv_step "bad inputs: one error line, nothing created or changed"
# bad_case NAME EXPECTED_RC(any|N) PATH_THAT_MUST_NOT_CHANGE... -- walvault ARGS...
bad_case() {
  local name=$1 want_rc=$2
  shift 2
  local paths=() fps=() i
  while [[ $1 != -- ]]; do paths+=("$1"); shift; done
  shift
  for i in "${!paths[@]}"; do fps[i]=$(wv_fingerprint "${paths[i]}"); done
  wv_capture "$OUT/bad-$name" wv_walvault "$@"
  if [[ $WV_RC -ne 0 ]]; then
    wv__pass "$name: exits non-zero ($WV_RC)"
  else
    wv__failed "$name: exits non-zero" "exit status 0: walvault $*"
  fi
  [[ $want_rc == any ]] || wv_assert_eq "$want_rc" "$WV_RC" "$name: exit status $want_rc"
  wv_assert_walvault_error "$OUT/bad-$name.err" "$name: one 'walvault: error:' line (+ optional HINT)"
  sed 's/^/    | /' "$OUT/bad-$name.err"
  for i in "${!paths[@]}"; do
    wv_assert_eq "${fps[i]}" "$(wv_fingerprint "${paths[i]}")" "$name: ${paths[i]#"$WV_TMP"/} unchanged"
  done
}

NOWHERE=$WV_TMP/no-such-repo
NEWDIR=$WV_TMP/new-target
bad_case missing-repo-info any "$NOWHERE" -- info --repo "$NOWHERE"
bad_case missing-repo-restore any "$NOWHERE" "$NEWDIR" -- \
  restore --repo "$NOWHERE" --target-dir "$NEWDIR" --target-time "$TARGET"

UNREADABLE=$WV_TMP/repo-unreadable
cp -a "$REPO" "$UNREADABLE"
chmod 000 "$UNREADABLE"
if wv_as_pg test -r "$UNREADABLE"; then
  echo "skip: unreadable-repo cases (the PostgreSQL user can read a mode 000 dir)"
else
  bad_case unreadable-repo-info any "$UNREADABLE" -- info --repo "$UNREADABLE"
  bad_case unreadable-repo-restore any "$UNREADABLE" "$NEWDIR" -- \
    restore --repo "$UNREADABLE" --target-dir "$NEWDIR" --target-time "$TARGET"
fi
chmod 700 "$UNREADABLE"

NOTEMPTY=$WV_TMP/not-empty
mkdir -p "$NOTEMPTY"
echo "precious" >"$NOTEMPTY/keep.txt"
wv_chown_pg "$NOTEMPTY"
bad_case target-not-empty any "$REPO" "$NOTEMPTY" -- \
  restore --repo "$REPO" --target-dir "$NOTEMPTY" --target-time "$TARGET"

bad_case before-first-backup 3 "$REPO" "$NEWDIR" -- \
  restore --repo "$REPO" --target-dir "$NEWDIR" --target-time "2001-02-03T04:05:06+00:00"

FUTURE=$(wv_psql "$PG" "select to_char((now() + interval '1 day') at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || '+00:00'")
bad_case after-last-wal 3 "$REPO" "$NEWDIR" -- \
  restore --repo "$REPO" --target-dir "$NEWDIR" --target-time "$FUTURE"
wv_assert_match '([Rr]estorable|[Rr]ecoverable|window)' "$(cat "$OUT/bad-after-last-wal.err")" \
  "after-last-wal: the message mentions the restorable window"
wv_assert_match '[0-9]{4}-[0-9]{2}-[0-9]{2}' "$(cat "$OUT/bad-after-last-wal.err")" \
  "after-last-wal: the message gives the window's times"

bad_case unparsable-time any "$REPO" "$NEWDIR" -- \
  restore --repo "$REPO" --target-dir "$NEWDIR" --target-time "not-a-time"
bad_case unparsable-time-2 any "$REPO" "$NEWDIR" -- \
  restore --repo "$REPO" --target-dir "$NEWDIR" --target-time "2024-13-45T25:61:00+00:00"
bad_case unparsable-lsn-endpos any "$REPO" -- \
  archive --repo "$REPO" --dbname "$CONN" --endpos zz --no-loop
bad_case unparsable-lsn-target any "$REPO" "$NEWDIR" -- \
  restore --repo "$REPO" --target-dir "$NEWDIR" --target-lsn zz

echo
wv_summary e2e_main_job
