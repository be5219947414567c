#!/usr/bin/env bash
# walvault's main job, end to end, on a throwaway PostgreSQL 15 cluster:
#
#   archive WAL continuously -> take a base backup -> change data at known moments ->
#   restore to a moment between two changes -> start PostgreSQL on the restored copy ->
#   show that it holds exactly what existed at that moment.
#
# Usage: scripts/demo.sh            (as root or as a user who can run PostgreSQL)
# Environment: WV_KEEP_TMP=1 keeps the temp dir (clusters are stopped anyway);
#              WV_SKIP_BUILD=1 uses build/walvault as it is; TMPDIR picks the temp base.
# Exit status: 0 when the restored cluster holds what was expected, non-zero otherwise.
# Everything it starts is stopped and removed on exit, also after a failure or Ctrl-C.
# SC2317: functions called through wv_wait_for look unreachable to shellcheck.
# shellcheck disable=SC2317
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FIXTURES=$ROOT/tests/fixtures

# shellcheck source=tests/integration/lib.sh
. "$ROOT/tests/integration/lib.sh"

wv_step "1. Dependencies (scripts/install-deps.sh)"
"$ROOT/scripts/install-deps.sh"
echo "all Debian packages present"

wv_step "2. Build (cmake, incremental)"
if [[ ${WV_SKIP_BUILD:-0} != 1 ]]; then
  mkdir -p "$ROOT/build"
  build_log=$ROOT/build/demo-build.log
  echo "cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build -j2 --target walvault"
  echo "(output in $build_log; a first build takes several minutes)"
  build_started=$SECONDS
  if ! { cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    && cmake --build "$ROOT/build" -j2 --target walvault; } >"$build_log" 2>&1; then
    tail -n 40 "$build_log" >&2
    wv_fail "build failed; full log: $build_log"
  fi
  echo "built in $((SECONDS - build_started)) s"
fi
[[ -x $WALVAULT ]] || wv_fail "no walvault binary at $WALVAULT"
echo "$("$WALVAULT" --version) at $WALVAULT"

wv_init_tmp
wv_require_walvault
PG=$WV_TMP/source
REPO=$WV_TMP/repo
RESTORED=$WV_TMP/restored

wv_step "3. A throwaway PostgreSQL 15 cluster with an authentik-like database"
wv_pg_init "$PG"
wv_pg_start "$PG"
CONN=$(wv_connstr "$PG")
echo "cluster:   $PG"
echo "connect:   psql \"$CONN\""
wv_psql_file "$PG" "$FIXTURES/authentik_schema.sql"
wv_psql_file "$PG" "$FIXTURES/authentik_seed.sql"
wv_psql "$PG" "select format('loaded:    %s users, %s events, %s groups, %s tokens; database %s',
  (select count(*) from authentik_core_user), (select count(*) from authentik_events_event),
  (select count(*) from authentik_core_group), (select count(*) from authentik_core_token),
  pg_size_pretty(pg_database_size(current_database())))"

wv_step "4. walvault archive: stream WAL into the repository (in the background)"
echo "\$ walvault archive --repo $REPO --dbname \"$CONN\""
wv_start_bg "$WV_TMP/archive.log" "$WALVAULT" archive --repo "$REPO" --dbname "$CONN"
ARCHIVER=$WV_LAST_BG_PID

archiver_running() {
  wv_bg_alive "$ARCHIVER" || {
    wv_log "---- archive log ----"
    cat "$WV_TMP/archive.log" >&2
    wv_fail "walvault archive exited early"
  }
}
repo_ready() {
  archiver_running
  [[ -f $REPO/walvault.json ]]
}
wv_wait_for -m "the archiver did not create the repository" repo_ready
echo "archiver running (pid $ARCHIVER), repository created: $REPO"

wv_step "5. walvault backup: a base backup over the replication protocol"
echo "\$ walvault backup --repo $REPO --dbname \"$CONN\" --label demo --checkpoint fast"
wv_walvault backup --repo "$REPO" --dbname "$CONN" --label demo --checkpoint fast \
  || wv_fail "walvault backup failed"

wv_step "6. Changes at recorded times"
iso_utc="'YYYY-MM-DD\"T\"HH24:MI:SS.US'"
server_now() { wv_psql "$PG" "select to_char(clock_timestamp() at time zone 'UTC', $iso_utc) || '+00:00'"; }

wv_psql "$PG" "insert into authentik_core_user (uuid, username, name, email, password, attributes)
  values (md5('user:alice')::uuid, 'alice', 'Alice Liddell', 'alice@example.org',
          'pbkdf2_sha256\$600000\$demo\$alice', '{\"locale\": \"en\"}')" >/dev/null
wv_psql "$PG" "insert into authentik_events_event (event_uuid, action, app, context, client_ip, expires, \"user\")
  values (md5('event:alice-created')::uuid, 'model_created', 'authentik.events.signals',
          '{\"model\": {\"app\": \"authentik_core\", \"name\": \"alice\"}}', '10.9.9.1',
          now() + interval '1 year', '{\"username\": \"akadmin\"}')" >/dev/null
T_ALICE=$(server_now)
EXPECTED_USERS=$(wv_psql "$PG" "select count(*) from authentik_core_user")
EXPECTED_EVENTS=$(wv_psql "$PG" "select count(*) from authentik_events_event")
echo "$T_ALICE  user 'alice' created ($EXPECTED_USERS users, $EXPECTED_EVENTS events)"

# The restore target: the next whole second after alice's commit, in UTC with an offset.
TARGET=$(wv_psql "$PG" "select to_char(date_trunc('second', clock_timestamp() at time zone 'UTC')
  + interval '1 second', 'YYYY-MM-DD\"T\"HH24:MI:SS') || '+00:00'")
past_target() { [[ $(wv_psql "$PG" "select clock_timestamp() > timestamptz '$TARGET' + interval '700 ms'") == t ]]; }
wv_wait_for -t 10 past_target
echo "$TARGET         <- the restore target (between alice and bob)"

wv_psql "$PG" "insert into authentik_core_user (uuid, username, name, email, password)
  values (md5('user:bob')::uuid, 'bob', 'Bob Builder', 'bob@example.org',
          'pbkdf2_sha256\$600000\$demo\$bob')" >/dev/null
T_BOB=$(server_now)
wv_psql "$PG" "insert into authentik_events_event (event_uuid, action, app, context, client_ip, created, expires)
  select md5('event:after-target:' || i)::uuid, 'login', 'authentik.stages.user_login',
         jsonb_build_object('demo', 'after the target', 'n', i), '10.9.9.2', now(), now() + interval '1 year'
  from generate_series(1, 500) as i" >/dev/null
wv_psql "$PG" "update authentik_core_user set is_active = false where username = 'akadmin'" >/dev/null
LAST_CHANGE_LSN=$(wv_psql "$PG" "select pg_current_wal_lsn()")
echo "$T_BOB  user 'bob' created; then 500 more events, akadmin deactivated (WAL up to $LAST_CHANGE_LSN)"

SWITCH_LSN=$(wv_psql "$PG" "select pg_switch_wal()")
wv_psql "$PG" "insert into authentik_events_event (event_uuid, action, app, expires)
  values (md5('event:after-switch')::uuid, 'login', 'authentik.stages.user_login', now() + interval '1 year')" >/dev/null
echo "segment switch at $SWITCH_LSN, then one more commit"

wv_step "7. Waiting until the archive holds the WAL past the last change"
SEGMENT_FILE=$(wv_psql "$PG" "select pg_walfile_name('$LAST_CHANGE_LSN')")
archive_caught_up() {
  archiver_running
  local end
  end=$(wv_info_end_lsn "$REPO" || true)
  if [[ -n $end ]] && wv_lsn_ge "$end" "$LAST_CHANGE_LSN"; then
    return 0
  fi
  compgen -G "$REPO/wal/*/$SEGMENT_FILE.lz4" >/dev/null || compgen -G "$REPO/wal/*/$SEGMENT_FILE" >/dev/null
}
wv_wait_for -t 120 -m "the archive did not reach $LAST_CHANGE_LSN" archive_caught_up
echo "archived through $(wv_info_end_lsn "$REPO" || echo "segment $SEGMENT_FILE")"
echo
echo "\$ walvault info --repo $REPO"
wv_walvault info --repo "$REPO" || wv_fail "walvault info failed"

wv_step "8. walvault restore --dry-run: the plan for $TARGET"
echo "\$ walvault restore --repo $REPO --target-dir $RESTORED --target-time $TARGET --target-action promote --dry-run"
wv_walvault restore --repo "$REPO" --target-dir "$RESTORED" --target-time "$TARGET" \
  --target-action promote --dry-run || wv_fail "walvault restore --dry-run failed"
[[ ! -e $RESTORED ]] || [[ -z $(ls -A "$RESTORED") ]] || wv_fail "--dry-run wrote into $RESTORED"

wv_step "9. walvault restore: build the restore target"
echo "\$ walvault restore --repo $REPO --target-dir $RESTORED --target-time $TARGET --target-action promote"
wv_walvault restore --repo "$REPO" --target-dir "$RESTORED" --target-time "$TARGET" \
  --target-action promote || wv_fail "walvault restore failed"
echo "restored into $RESTORED:"
find "$RESTORED" -mindepth 1 -maxdepth 1 -printf '%f\n' | LC_ALL=C sort | tr '\n' ' '
echo

wv_step "10. PostgreSQL on the restored directory: recovery to $TARGET"
wv_pg_register "$RESTORED"
wv_pg_start "$RESTORED"
echo "started on $(wv_connstr "$RESTORED"); waiting for recovery to reach the target and promote"
promoted() { [[ $(wv_psql "$RESTORED" "select pg_is_in_recovery()") == f ]]; }
wv_wait_for -t 180 -m "the restored cluster did not finish recovery (see $(wv_pg_logfile "$RESTORED"))" promoted
grep -E 'recovery stopping|recovery has paused|selected new timeline|archive recovery complete' \
  "$(wv_pg_logfile "$RESTORED")" | sed 's/^/  server log: /' || true

wv_step "11. Expected vs restored"
GOT_ALICE=$(wv_psql "$RESTORED" "select count(*) from authentik_core_user where username = 'alice'")
GOT_BOB=$(wv_psql "$RESTORED" "select count(*) from authentik_core_user where username = 'bob'")
GOT_USERS=$(wv_psql "$RESTORED" "select count(*) from authentik_core_user")
GOT_EVENTS=$(wv_psql "$RESTORED" "select count(*) from authentik_events_event")
GOT_ADMIN=$(wv_psql "$RESTORED" "select is_active from authentik_core_user where username = 'akadmin'")
NOW_USERS=$(wv_psql "$PG" "select count(*) from authentik_core_user")
NOW_EVENTS=$(wv_psql "$PG" "select count(*) from authentik_events_event")

mismatches=0
row() {
  local what=$1 expected=$2 got=$3 mark=ok
  [[ $expected == "$got" ]] || { mark=DIFFERENT; mismatches=$((mismatches + 1)); }
  printf '  %-30s %-12s %-12s %s\n' "$what" "$expected" "$got" "$mark"
}
echo "target time $TARGET (alice at $T_ALICE, bob at $T_BOB)"
echo "the source cluster now has $NOW_USERS users and $NOW_EVENTS events"
echo
printf '  %-30s %-12s %-12s\n' "" expected restored
row "user alice present" 1 "$GOT_ALICE"
row "user bob present" 0 "$GOT_BOB"
row "users" "$EXPECTED_USERS" "$GOT_USERS"
row "events" "$EXPECTED_EVENTS" "$GOT_EVENTS"
row "akadmin active" t "$GOT_ADMIN"
echo

wv_step "12. Cleaning up"
wv_pg_stop "$RESTORED"
wv_stop_bg "$ARCHIVER" INT || true
wv_pg_stop "$PG"
wv_cleanup
echo "stopped both clusters and the archiver; cleaned up $WV_TMP"

echo
if ((mismatches == 0)); then
  echo "demo: PASSED: the restored cluster holds exactly what existed at $TARGET"
  exit 0
fi
echo "demo: FAILED: $mismatches value(s) differ from what existed at $TARGET" >&2
exit 1
