#!/usr/bin/env bash
# walvault check against a real PostgreSQL 15 cluster (1 MB WAL segments):
#   1. healthy: archive running on slot "arch", a backup and a snapshot: exit 0, one OK line,
#      --json says healthy with every check ok;
#   2. limits the repository misses: backup and snapshot too old (exact lines);
#   3. a slot that does not exist, a role without the replication privilege;
#   4. the archiver stopped and the server moved on: slot not active, lag in bytes and in
#      seconds over the limits;
#   5. a slot whose WAL the server removed (wal_status lost);
#   6. the server down: the connection check fails and the server's checks are skipped, the
#      repository's checks still run;
#   7. bad input.
# Every failing line is compared whole (numbers that depend on the moment as patterns).
# Run: bash tests/integration/check_health.sh. Prints `check_health: N passed, M failed` last.
# SC2016: Perl snippets are single-quoted on purpose.
# shellcheck disable=SC2016
set -euo pipefail

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

wv_test_begin check_health
wv_init_tmp
wv_require_walvault
PG=$WV_TMP/pg
REPO=$WV_TMP/repo
OUT=$WV_TMP/out
DATA=$WV_TMP/data
mkdir -p "$OUT" "$DATA"
echo hello >"$DATA/a.txt"
wv_chown_pg "$OUT" "$DATA"
Q() { wv_psql "$PG" "$1"; }
J() { wv_json "$1" <"$2"; }
show_output() { sed 's/^/    | /' "$1.out" "$1.err" | head -n 40 >&2; }
check() { # NAME ARGS...
  local name=$1
  shift
  wv_capture "$OUT/$name" wv_walvault check --repo "$REPO" "$@"
}
# assert_lines NAME MESSAGE REGEX... — stdout of check NAME is exactly these lines (each a
# whole-line pattern), stderr is empty.
assert_lines() {
  local name=$1 msg=$2 i=0 line ok=1
  shift 2
  local -a lines
  mapfile -t lines <"$OUT/$name.out"
  if [[ ${#lines[@]} -ne $# ]]; then
    ok=0
  else
    for line in "$@"; do
      [[ ${lines[i]} =~ ^${line}$ ]] || ok=0
      i=$((i + 1))
    done
  fi
  [[ -s $OUT/$name.err ]] && ok=0
  if ((ok)); then
    wv__pass "$msg"
  else
    wv__failed "$msg" "expected lines: $*" "stdout: $(cat "$OUT/$name.out")" "stderr: $(cat "$OUT/$name.err")"
  fi
}
NUM='[0-9]+\.[0-9]'
TIME='[0-9-]+T[0-9:.]+\+00:00'
LSN='[0-9A-F]+/[0-9A-F]+'

wv_step "cluster, archive on slot arch, a backup, a snapshot"
wv_pg_init "$PG" --wal-segsize=1
cat >>"$PG/postgresql.conf" <<CONF
max_slot_wal_keep_size = 3MB
wal_keep_size = 0
CONF
wv_pg_start "$PG"
CONN=$(wv_connstr "$PG")
Q "create table filler (id int, v text)" >/dev/null
Q "create role plain login" >/dev/null
generate_wal() { # SEGMENTS
  local i
  for ((i = 0; i < $1; i++)); do
    Q "insert into filler select g, repeat(md5(g::text), 8) from generate_series(1, 2500) g" >/dev/null
    Q "select pg_switch_wal()" >/dev/null
  done
}
wv_start_bg "$WV_TMP/archive.log" "$WALVAULT" archive --repo "$REPO" --dbname "$CONN" --slot arch --create-slot
ARCHIVER=$WV_LAST_BG_PID
wv_wait_for -m "archive did not create the repository" test -f "$REPO/walvault.json"
wv_capture "$OUT/backup" wv_walvault backup --repo "$REPO" --dbname "$CONN" --checkpoint fast
[[ $WV_RC -eq 0 ]] || show_output "$OUT/backup"
wv_assert_eq 0 "$WV_RC" "backup exits 0"
wv_capture "$OUT/snap" wv_walvault snapshot --repo "$REPO" --dir "data=$DATA"
wv_assert_eq 0 "$WV_RC" "snapshot exits 0"
BACKUP=$(wv_walvault info --repo "$REPO" --json | wv_json '$j->{backups}[0]{id}')
SNAP=$(wv_walvault info --repo "$REPO" --json | wv_json '$j->{snapshots}[0]{id}')
caught_up() { # the archive's end has reached the server's flush position
  local server end
  server=$(Q "select pg_current_wal_flush_lsn()")
  end=$(wv_info_end_lsn "$REPO" 1)
  [[ -n $end ]] && wv_lsn_ge "$end" "$server"
}
Q "select pg_switch_wal()" >/dev/null
wv_wait_for -m "the archive did not catch up" caught_up

# ---------------------------------------------------------------- 1. healthy
wv_step "1. healthy"
ALL_LIMITS=(--dbname "$CONN" --slot arch --max-lag-bytes 16777216 --max-lag-s 600
  --max-backup-age-h 1 --max-snapshot-age-h 1)
check ok "${ALL_LIMITS[@]}"
[[ $WV_RC -eq 0 ]] || show_output "$OUT/ok"
wv_assert_eq 0 "$WV_RC" "healthy: exit 0"
assert_lines ok "healthy: one OK line" \
  "OK: 7 checks passed; archive lag [0-9]+ bytes, $NUM s; newest backup $BACKUP $NUM h old; snapshots at most $NUM h old"
check okjson "${ALL_LIMITS[@]}" --json
wv_assert_eq 0 "$WV_RC" "healthy --json: exit 0"
wv_assert_eq 1 "$(J '$j->{healthy} ? 1 : 0' "$OUT/okjson.out")" "--json: healthy"
wv_assert_eq "connection:ok replication:ok slot:ok lag_bytes:ok lag_seconds:ok backup_age:ok snapshot_age:ok" \
  "$(J 'join " ", map { "$_->{name}:$_->{state}" } @{$j->{checks}}' "$OUT/okjson.out")" "--json: every check ok, in order"
wv_assert_eq "1 $BACKUP data $SNAP" \
  "$(J '($j->{slot_active} ? 1 : 0, $j->{newest_backup}{id}, $j->{newest_snapshots}[0]{name}, $j->{newest_snapshots}[0]{id})' "$OUT/okjson.out" | paste -sd' ')" \
  "--json: slot active, the newest backup and snapshot"
check bare --dbname "$CONN"
wv_assert_eq 0 "$WV_RC" "without limits: exit 0"
assert_lines bare "without limits: connection, replication and the lag are measured" \
  "OK: 4 checks passed; archive lag [0-9]+ bytes, $NUM s; newest backup $BACKUP $NUM h old; snapshots at most $NUM h old"

# ---------------------------------------------------------------- 2. repository limits
wv_step "2. backup and snapshot older than the limits"
wv_sleep 1
check old --dbname "$CONN" --max-backup-age-h 0.0001 --max-snapshot-age-h 0.0002
wv_assert_eq 1 "$WV_RC" "too old: exit 1"
assert_lines old "too old: one line each" \
  "CRITICAL backup_age: the newest complete backup $BACKUP stopped $NUM h ago, limit 0.0001 h" \
  "CRITICAL snapshot_age: the newest data snapshot $SNAP was taken $NUM h ago, limit 0.0002 h"
EMPTY=$WV_TMP/empty-repo
mkdir -p "$EMPTY"
cp "$REPO/walvault.json" "$EMPTY/"
wv_chown_pg "$EMPTY"
wv_capture "$OUT/empty" wv_walvault check --repo "$EMPTY" --dbname "$CONN" --max-backup-age-h 24 --max-snapshot-age-h 24
wv_assert_eq 1 "$WV_RC" "an empty repository: exit 1"
assert_lines empty "an empty repository: no backup, no snapshot (the server's checks fail too: no WAL)" \
  "CRITICAL lag_bytes: the archive holds no WAL of the server's timeline 1 \(is walvault archive running\?\)" \
  "CRITICAL backup_age: the repository holds no complete backup" \
  "CRITICAL snapshot_age: the repository holds no snapshot"

# ---------------------------------------------------------------- 3. slot, privilege
wv_step "3. a missing slot, a role without the replication privilege"
check noslot --dbname "$CONN" --slot nosuch
wv_assert_eq 1 "$WV_RC" "missing slot: exit 1"
assert_lines noslot "missing slot: one line" 'CRITICAL slot: replication slot "nosuch" does not exist'
check plain --dbname "$CONN user=plain"
wv_assert_eq 1 "$WV_RC" "no replication privilege: exit 1"
assert_lines plain "no replication privilege: one line with the server's reason" \
  'CRITICAL replication: could not open a replication connection: .*FATAL: +must be superuser or replication role to start walsender'

# ---------------------------------------------------------------- 4. archiver stopped
wv_step "4. the archiver stopped, the server moved on"
wv_stop_bg "$ARCHIVER" || true
generate_wal 1
Q "insert into filler values (1, 'x')" >/dev/null
wv_sleep 2
check stopped --dbname "$CONN" --slot arch --max-lag-bytes 1000 --max-lag-s 1
wv_assert_eq 1 "$WV_RC" "archiver stopped: exit 1"
assert_lines stopped "archiver stopped: slot, lag bytes, lag seconds" \
  'CRITICAL slot: replication slot "arch": it is not active: no walvault archive streams from it' \
  "CRITICAL lag_bytes: the archive is [0-9]+ bytes behind the server \(server at $LSN, archive ends at $LSN\), limit 1000" \
  "CRITICAL lag_seconds: the archive is $NUM s behind the server \(no archiver streams; the archive last received WAL at $TIME\), limit 1 s"
check stoppedjson --dbname "$CONN" --slot arch --json
wv_assert_eq 1 "$WV_RC" "--json: exit 1 as well"
wv_assert_eq "slot:failed lag_bytes:ok lag_seconds:ok" \
  "$(J 'join " ", map { "$_->{name}:$_->{state}" } grep { $_->{name} =~ /slot|lag/ } @{$j->{checks}}' "$OUT/stoppedjson.out")" \
  "--json: without lag limits only the slot fails"
LAG=$(J '$j->{lag_bytes}' "$OUT/stoppedjson.out")
SERVER=$(J '$j->{server_lsn}' "$OUT/stoppedjson.out")
END=$(J '$j->{archive_end_lsn}' "$OUT/stoppedjson.out")
wv_assert_eq "$(($(wv_lsn_to_num "$SERVER") - $(wv_lsn_to_num "$END")))" "$LAG" "--json: lag_bytes is the server's LSN minus the archive's end"
wv_assert_eq "$(wv_info_end_lsn "$REPO" 1)" "$END" "--json: the archive's end is info's"
wv_assert_match "^[0-9]+" "$LAG" "--json: lag_bytes measured"
wv_assert "--json: lag_bytes > 1 MB (a whole segment switched since)" test "$LAG" -gt 1000000

# ---------------------------------------------------------------- 5. lost slot
wv_step "5. a slot whose WAL the server removed"
generate_wal 6
Q "checkpoint" >/dev/null
wv_assert_eq lost "$(Q "select wal_status from pg_replication_slots where slot_name = 'arch'")" "the server invalidated the slot"
check lost --dbname "$CONN" --slot arch
wv_assert_eq 1 "$WV_RC" "lost slot: exit 1"
assert_lines lost "lost slot: one line naming both problems" \
  'CRITICAL slot: replication slot "arch": its WAL is lost \(wal_status lost\): the server removed WAL the archive had not received; run walvault archive --allow-gap and take a new backup; it is not active: no walvault archive streams from it'

# ---------------------------------------------------------------- 6. server down
wv_step "6. the server is down"
wv_pg_stop "$PG"
check down --dbname "$CONN" --slot arch --max-lag-bytes 1000 --max-backup-age-h 24
wv_assert_eq 1 "$WV_RC" "server down: exit 1"
assert_lines down "server down: only the connection line (server checks skipped, the backup is fresh)" \
  'CRITICAL connection: could not connect to the server: connection to server on socket ".*" failed: .*'
check downjson --dbname "$CONN" --slot arch --max-lag-bytes 1000 --max-backup-age-h 24 --json
wv_assert_eq "connection:failed replication:skipped slot:skipped lag_bytes:skipped lag_seconds:skipped backup_age:ok" \
  "$(J 'join " ", map { "$_->{name}:$_->{state}" } @{$j->{checks}}' "$OUT/downjson.out")" "--json: the server's checks are skipped"

# ---------------------------------------------------------------- 7. bad input
wv_step "7. bad input"
check u1 --dbname "$CONN" --max-lag-s 0
wv_assert_eq 2 "$WV_RC" "--max-lag-s 0: exit 2"
wv_assert_walvault_error "$OUT/u1.err" "--max-lag-s 0: one error line"
check u2 --dbname "$CONN" --max-backup-age-h abc
wv_assert_eq 2 "$WV_RC" "--max-backup-age-h abc: exit 2"
wv_capture "$OUT/u3" wv_walvault check --repo "$WV_TMP/nothing" --dbname "$CONN"
wv_assert_eq 1 "$WV_RC" "a missing repository: exit 1"
wv_assert_walvault_error "$OUT/u3.err" "a missing repository: one error line (+ hint)"

wv_summary check_health
