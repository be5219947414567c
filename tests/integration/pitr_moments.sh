#!/usr/bin/env bash
# Five moments of an authentik-like database, and every other kind of target, each restored
# with `walvault restore --verify` and compared row for row with what was committed by then
# (real PostgreSQL 15, 1 MB WAL segments):
#
#   schema + seed (tests/fixtures) -> archive (background) -> backup -> five changes, each
#   followed by a fingerprint of every row of users, groups, tokens and events (md5 of the
#   rows in key order) and the server's clock T1..T5 -> transaction "carol" (its xid) ->
#   an LSN -> "dave" -> the end.
#
#   * --target-time T1..T5 (promote and pause alternately): each restored cluster holds
#     exactly the fingerprint of its moment (a --verify-sql check), recovery stopped before
#     the first commit after Tk, and the last replayed transaction is not after Tk;
#   * --target-xid carol inclusive: carol is there; --target-exclusive: exactly moment 5;
#   * --target-lsn (taken between carol and dave), inclusive and exclusive: carol, no dave;
#   * --target immediate: exactly the rows at the backup;
#   * --target latest: everything, dave included.
#
# Run: bash tests/integration/pitr_moments.sh. Prints `pitr_moments: N passed, M failed` last.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

wv_test_begin pitr_moments
wv_init_tmp
wv_require_walvault
PG=$WV_TMP/source
REPO=$WV_TMP/repo
OUT=$WV_TMP/out
FIXTURES=$WV_REPO_ROOT/tests/fixtures
mkdir -p "$OUT"
wv_chown_pg "$OUT"
Q() { wv_psql "$PG" "$1"; }
show_output() { sed 's/^/    | /' "$1.out" "$1.err" | head -n 60 >&2; }
server_now() { Q "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '+00:00'"; }
past() { [[ $(Q "select clock_timestamp() > timestamptz '$1' + interval '300 ms'") == t ]]; }
wait_past() { wv_wait_for -t 10 past "$1"; }
# Every row of the four tables authentik changes most, in key order.
FP_SQL="select md5(concat_ws('|',
  (select md5(coalesce(string_agg(x::text, ',' order by id), '')) from authentik_core_user x),
  (select md5(coalesce(string_agg(x::text, ',' order by group_uuid), '')) from authentik_core_group x),
  (select md5(coalesce(string_agg(x::text, ',' order by token_uuid), '')) from authentik_core_token x),
  (select md5(coalesce(string_agg(x::text, ',' order by event_uuid), '')) from authentik_events_event x)))"
fingerprint() { Q "$FP_SQL"; }

wv_step "authentik-like source cluster, archive, backup"
wv_pg_init "$PG" --wal-segsize=1
wv_pg_start "$PG"
CONN=$(wv_connstr "$PG")
wv_psql_file "$PG" "$FIXTURES/authentik_schema.sql" >/dev/null
wv_psql_file "$PG" "$FIXTURES/authentik_seed.sql" -v users=300 -v events=3000 -v groups=12 >/dev/null
wv_start_bg "$WV_TMP/archive.log" "$WALVAULT" archive --repo "$REPO" --dbname "$CONN"
ARCHIVER=$WV_LAST_BG_PID
wv_wait_for -m "archive did not create the repository" test -f "$REPO/walvault.json"
FP0=$(fingerprint)
wv_capture "$OUT/backup" wv_walvault backup --repo "$REPO" --dbname "$CONN" --checkpoint fast
[[ $WV_RC -eq 0 ]] || show_output "$OUT/backup"
wv_assert_eq 0 "$WV_RC" "backup exits 0"

wv_step "five moments"
declare -a T FP
change() {
  case $1 in
    1) Q "insert into authentik_core_user (uuid, username, name, email, password)
            values (md5('user:alice')::uuid, 'alice', 'Alice', 'alice@example.org', 'x')" >/dev/null
       Q "insert into authentik_events_event (event_uuid, action, app, expires)
            values (md5('event:alice')::uuid, 'model_created', 'authentik.events', now() + interval '1 year')" >/dev/null ;;
    2) Q "update authentik_core_user set is_active = false where username = 'akadmin'" >/dev/null
       Q "insert into authentik_core_token (token_uuid, identifier, key, intent, user_id)
            select md5('token:alice')::uuid, 'alice-api', 'k', 'api', id from authentik_core_user where username = 'alice'" >/dev/null ;;
    3) Q "delete from authentik_events_event where event_uuid in
            (select event_uuid from authentik_events_event order by created, event_uuid limit 100)" >/dev/null ;;
    4) Q "insert into authentik_events_event (event_uuid, action, app, context, expires)
            select md5('event:login:' || i)::uuid, 'login', 'authentik.stages.user_login',
                   jsonb_build_object('n', i), now() + interval '1 year' from generate_series(1, 300) i" >/dev/null
       Q "insert into authentik_core_user (uuid, username, name, email, password)
            values (md5('user:bob')::uuid, 'bob', 'Bob', 'bob@example.org', 'x')" >/dev/null ;;
    5) Q "update authentik_core_group set attributes = attributes || '{\"reviewed\": true}'" >/dev/null
       Q "delete from authentik_core_user where username = 'alice'" >/dev/null ;;
  esac
}
for k in 1 2 3 4 5; do
  change "$k"
  FP[k]=$(fingerprint)
  T[k]=$(server_now)
  wait_past "${T[k]}"
  echo "moment $k at ${T[k]}: $(Q "select count(*) from authentik_core_user") users, $(Q "select count(*) from authentik_events_event") events"
done
CAROL_XID=$(Q "with i as (insert into authentik_core_user (uuid, username, name, email, password)
  values (md5('user:carol')::uuid, 'carol', 'Carol', 'carol@example.org', 'x') returning 1)
  select pg_current_xact_id() from i")
FP_CAROL=$(fingerprint)
LSN=$(Q "select pg_current_wal_insert_lsn()")
Q "insert into authentik_core_user (uuid, username, name, email, password)
     values (md5('user:dave')::uuid, 'dave', 'Dave', 'dave@example.org', 'x')" >/dev/null
FP_END=$(fingerprint)
echo "carol: xid $CAROL_XID; then LSN $LSN; then dave"
for fp in "$FP0" "${FP[@]}" "$FP_CAROL"; do
  wv_assert_ne "$fp" "$FP_END" "the fingerprints differ from moment to moment" >/dev/null
done
Q "select pg_switch_wal()" >/dev/null
END_LSN=$(Q "select pg_current_wal_lsn()")
caught_up() {
  local to
  to=$(wv_walvault info --repo "$REPO" --json 2>/dev/null | wv_json '$j->{recoverable}{to_lsn}' || true)
  [[ -n $to && $to != null ]] && wv_lsn_ge "$to" "$END_LSN"
}
wv_wait_for -t 60 -m "the archive never reached $END_LSN" caught_up
wv_stop_bg "$ARCHIVER" INT 30 || true

# restored NAME EXPECTED_FINGERPRINT RESTORE_ARGS... — restore --verify with a --verify-sql
# check that the rows are exactly EXPECTED_FINGERPRINT; the JSON report is $OUT/NAME.out.
N=0
restored() {
  local name=$1 want=$2 dir
  shift 2
  N=$((N + 1))
  dir=$WV_TMP/r$N
  printf '%s\n' "-- the rows committed by then" "select ($FP_SQL) = '$want';" >"$OUT/$name.sql"
  wv_chown_pg "$OUT/$name.sql"
  wv_capture "$OUT/$name" "$WALVAULT" restore --repo "$REPO" --target-dir "$dir" "$@" \
    --verify --verify-sql "$OUT/$name.sql" --json
  [[ $WV_RC -eq 0 ]] || show_output "$OUT/$name"
  wv_assert_eq 0 "$WV_RC" "$name: restore --verify passes: the rows are exactly those committed by then"
  wv_assert_eq 1 "$(wv_json '$j->{verify}{stop}{as_planned} ? 1 : 0' <"$OUT/$name.out" 2>/dev/null)" \
    "$name: recovery stopped where the plan says ($(wv_json '$j->{verify}{stop}{server} // "end of WAL"' <"$OUT/$name.out" 2>/dev/null))"
  rm -r -- "$dir"
}
J() { wv_json "$2" <"$OUT/$1.out"; }

wv_step "--target-time: five moments"
for k in 1 2 3 4 5; do
  action=promote
  ((k % 2)) || action=pause
  restored "moment$k" "${FP[k]}" --target-time "${T[k]}" --target-action "$action"
  wv_assert_eq "$([[ $action == promote ]] && echo promoted || echo paused)" "$(J "moment$k" '$j->{verify}{state}')" "moment$k: $action"
  wv_assert_match 'recovery stopping before commit of transaction' "$(J "moment$k" '$j->{verify}{stop}{server}')" "moment$k: stopped before the first commit after T$k"
  last=$(J "moment$k" '$j->{verify}{last_replay}{time}')
  wv_assert_eq 1 "$([[ ! $last > ${T[k]} ]] && echo 1 || echo 0)" "moment$k: the last replayed transaction ($last) is not after T$k"
done

wv_step "--target-xid, --target-lsn: inclusive and exclusive"
restored xid-inclusive "$FP_CAROL" --target-xid "$CAROL_XID" --target-action promote
wv_assert_match "recovery stopping after commit of transaction $CAROL_XID," "$(J xid-inclusive '$j->{verify}{stop}{server}')" "xid inclusive: after carol's commit"
restored xid-exclusive "${FP[5]}" --target-xid "$CAROL_XID" --target-exclusive --target-action promote
wv_assert_match "recovery stopping before commit of transaction $CAROL_XID," "$(J xid-exclusive '$j->{verify}{stop}{server}')" "xid exclusive: before carol's commit"
restored lsn-inclusive "$FP_CAROL" --target-lsn "$LSN" --target-action promote
wv_assert_match "recovery stopping after WAL location \\(LSN\\) \"$LSN\"" "$(J lsn-inclusive '$j->{verify}{stop}{server}')" "lsn inclusive: stops after the record at $LSN"
restored lsn-exclusive "$FP_CAROL" --target-lsn "$LSN" --target-exclusive --target-action promote
wv_assert_match "recovery stopping before WAL location \\(LSN\\) \"$LSN\"" "$(J lsn-exclusive '$j->{verify}{stop}{server}')" "lsn exclusive: stops before the record at $LSN"

wv_step "--target immediate, --target latest"
restored immediate "$FP0" --target immediate --target-action promote
wv_assert_eq "recovery stopping after reaching consistency" "$(J immediate '$j->{verify}{stop}{server}')" "immediate: at the backup's consistency point"
restored latest "$FP_END" --target latest
wv_assert_eq promoted "$(J latest '$j->{verify}{state}')" "latest: all WAL replayed, promoted"

echo
wv_summary pitr_moments
