#!/usr/bin/env bash
# SC2016: Perl snippets for wv_json are single-quoted on purpose.
# shellcheck disable=SC2016
# walvault service against PostgreSQL 15 (1 MB segments), schedules of a few seconds:
#  - start from a config file: the archiver streams, a base backup (the repository has none)
#    and scheduled snapshots happen, the metrics endpoint and the textfile answer with the
#    expected metric names and values;
#  - --check-config and a bad key at start: exit 2, the key and its line named;
#  - SIGHUP with an invalid file: logged with key and line, the running configuration kept;
#  - SIGHUP with a changed backup-interval and retain-full = 1: a second backup starts at
#    once, without restarting the archiver, and retention after it removes the first backup
#    and the WAL before the kept one;
#  - SIGHUP with a slow backup-max-rate, SIGTERM while that backup runs: exit 0, the backup
#    is "failed" (never complete), and a later `walvault archive` resumes at the archive's
#    end: no gap, pg_waldump walks every byte from the kept backup's start to after the
#    service stopped.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
wv_test_begin service_basic
wv_init_tmp
wv_require_walvault

SEG=$((1024 * 1024))
PG=$WV_TMP/pg
REPO=$WV_TMP/repo
OUT=$WV_TMP/out
APPDATA=$WV_TMP/appdata
CONF=$WV_TMP/walvault.conf
mkdir -p "$OUT" "$APPDATA/media"
for i in 1 2 3; do head -c 20000 /dev/urandom >"$APPDATA/media/f$i.bin"; done
echo "secret" >"$APPDATA/key.pem"
chmod 0600 "$APPDATA/key.pem"
wv_chown_pg "$OUT" "$APPDATA"

wv_pg_init "$PG" --wal-segsize=1
cat >>"$PG/postgresql.conf" <<CONF
wal_keep_size = 256MB
max_wal_size = 1GB
checkpoint_timeout = 1h
CONF
wv_pg_start "$PG"
CONN=$(wv_connstr "$PG")
now_lsn() { wv_psql "$PG" "select pg_current_wal_lsn()"; }
wv_psql "$PG" "create table filler (id int, v text)" >/dev/null
# A database of some size, so that a backup limited to 32 kB/s runs long enough.
wv_psql "$PG" "insert into filler select g, md5(g::text) from generate_series(1, 60000) g" >/dev/null
FIRST_LSN=$(now_lsn)
PORT=$(wv_free_port)
PROM=$OUT/walvault.prom

write_conf() { # EXTRA LINES...
  {
    echo "# walvault service test"
    echo "repo = $REPO"
    echo "dbname = $CONN"
    echo "slot = svc"
    echo "create-slot = true"
    echo "checkpoint = fast"
    echo "wal-timeout-s = 60"
    echo "dir = appdata=$APPDATA"
    echo "snapshot-interval = 2s"
    echo "metrics-listen = 127.0.0.1:$PORT"
    echo "metrics-textfile = $PROM"
    echo "metrics-interval = 1s"
    printf '%s\n' "$@"
  } >"$CONF"
  chmod 0644 "$CONF"
}
metrics() { curl -sf --max-time 5 "http://127.0.0.1:$PORT/metrics"; }
metric() { # NAME: its value in the endpoint's answer
  metrics | awk -v n="$1" '$1 == n { print $2 }'
}
metric_ge() { local v; v=$(metric "$1"); [[ -n $v ]] && (($(printf '%.0f' "$v") >= $2)); }
backups_with_status() { # STATUS: how many backups info --json lists with it
  wv_walvault info --repo "$REPO" --json | wv_json "scalar grep { \$_->{status} eq '$1' } @{\$j->{backups}}"
}
# The walvault process itself (when root, the group leader is runuser, its parent): signals
# go to it by PID, so that runuser's own signal handling plays no part.
service_pid() {
  ps -o pid=,comm= -g "$1" | awk '$2 == "walvault" { print $1 }' | head -n 1
}

wv_step "config errors are named with their line, before anything starts"
write_conf "backup-interval = 1h" "backup-intervall = 2h"
wv_capture "$OUT/bad" wv_walvault service --config "$CONF"
wv_assert_eq 2 "$WV_RC" "an unknown key: exit 2"
wv_assert_eq "walvault: error: unknown option \"backup-intervall\" in $CONF line 14" \
  "$(head -n 1 "$OUT/bad.err")" "the error names the key and the line"
wv_assert_walvault_error "$OUT/bad.err" "the error follows the error contract"
wv_assert "nothing was created" test ! -e "$REPO"

write_conf "backup-interval = 1h"
wv_capture "$OUT/check" wv_walvault service --config "$CONF" --check-config
wv_assert_eq 0 "$WV_RC" "--check-config of a valid file: exit 0"
wv_assert_match "base backups: every 1h, with snapshots of appdata=" "$(cat "$OUT/check.out")" \
  "--check-config prints the settings"
wv_capture "$OUT/check2" wv_walvault service --config "$CONF" --check-config --snapshot-interval 2x
wv_assert_eq 2 "$WV_RC" "--check-config with a bad flag: exit 2"
wv_assert_eq 'walvault: error: invalid snapshot-interval "2x" (--snapshot-interval)' \
  "$(head -n 1 "$OUT/check2.err")" "a bad flag is named as a flag"

wv_step "start: archiver, a first backup, scheduled snapshots, metrics"
wv_start_bg "$OUT/service.log" "$WALVAULT" service --config "$CONF"
SVC=$WV_LAST_BG_PID
wv_wait_for -m "the service does not stream" grep -q "streaming WAL from" "$OUT/service.log"
SVC_PID=$(service_pid "$SVC")
[[ -n $SVC_PID ]] || wv_fail "no walvault process in process group $SVC"
wv_wait_for -m "no complete backup" metric_ge walvault_backups_completed_total 1
wv_wait_for -m "no scheduled snapshot after the backup" metric_ge walvault_snapshots_completed_total 3
wv_assert_eq 1 "$(backups_with_status complete)" "info lists one complete backup"
wv_assert "info lists snapshots of appdata" test "$(wv_walvault info --repo "$REPO" --json \
  | wv_json 'scalar grep { $_->{name} eq "appdata" } @{$j->{snapshots}}')" -ge 3

M=$(metrics)
absent_metrics=()
for name in walvault_up walvault_archiver_up walvault_wal_received_lsn walvault_wal_flushed_lsn \
  walvault_wal_server_lsn walvault_wal_lag_bytes walvault_wal_segments_archived_total \
  walvault_wal_last_segment_time_seconds walvault_archiver_errors_total walvault_backup_running \
  walvault_last_backup_time_seconds walvault_last_backup_duration_seconds \
  walvault_backups_completed_total walvault_backup_errors_total walvault_last_snapshot_time_seconds \
  walvault_snapshots_completed_total walvault_snapshot_errors_total walvault_retention_runs_total \
  walvault_retention_errors_total; do
  grep -q "^# TYPE $name " <<<"$M" && grep -q "^$name [0-9]" <<<"$M" || absent_metrics+=("$name")
done
wv_assert_eq "" "${absent_metrics[*]}" "the endpoint answers every expected metric (HELP/TYPE and a sample)"
wv_assert_eq 1 "$(metric walvault_archiver_up)" "walvault_archiver_up is 1"
wv_assert_eq 0 "$(metric walvault_backup_errors_total)" "no backup failed"
wv_assert "walvault_last_backup_time_seconds is set" test "$(metric walvault_last_backup_time_seconds | cut -d. -f1)" -gt 1700000000
# The flushed LSN catches up with the server after a segment switch.
wv_psql "$PG" "select pg_switch_wal()" >/dev/null
wv_psql "$PG" "insert into filler values (0, 'after switch')" >/dev/null
TARGET=$(wv_lsn_to_num "$(now_lsn)")
flushed_reaches() { local v; v=$(metric walvault_wal_flushed_lsn); [[ -n $v ]] && (($(printf '%.0f' "$v") >= TARGET)); }
wv_wait_for -m "walvault_wal_flushed_lsn does not reach the server's LSN" flushed_reaches
wv_assert "walvault_wal_segments_archived_total counts the switched segment" metric_ge walvault_wal_segments_archived_total 1
wv_assert "404 for anything but /metrics" test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/")" = 404
wv_wait_for -m "no metrics textfile" test -s "$PROM"
wv_assert "the textfile holds the same metrics" grep -q '^walvault_backups_completed_total 1$' "$PROM"

wv_step "SIGHUP with an invalid file: logged, the running configuration kept"
write_conf "backup-interval = 1h" "snapshot-intervall = 5s"
kill -HUP "$SVC_PID"
wv_wait_for -m "the invalid reload is not logged" grep -q "the new configuration is invalid" "$OUT/service.log"
wv_assert_match "unknown option \"snapshot-intervall\" in $CONF line 14" \
  "$(grep "the new configuration is invalid" "$OUT/service.log")" "the reload error names key and line"
wv_assert "the service still runs" wv_bg_alive "$SVC"
wv_assert_eq 1 "$(metric walvault_up)" "the endpoint still answers"

wv_step "SIGHUP with a changed backup-interval and retain-full: a second backup, then retention"
FIRST_BACKUP=$(wv_walvault info --repo "$REPO" --json | wv_json '$j->{backups}[0]{id}')
write_conf "backup-interval = 2s" "retain-full = 1"
kill -HUP "$SVC_PID"
wv_wait_for -m "the reload is not logged" grep -q "reloaded: base backups: every 2s" "$OUT/service.log"
wv_wait_for -m "no second backup after the reload" metric_ge walvault_backups_completed_total 2
wv_wait_for -m "retention does not run after the second backup" metric_ge walvault_retention_runs_total 1
wv_assert_not "the archiver was not restarted (its settings did not change)" grep -q "restarting it" "$OUT/service.log"
wv_assert "retention removed the first backup ($FIRST_BACKUP)" test ! -e "$REPO/backups/$FIRST_BACKUP"
wv_assert_match "retention \(--retain-full 1\): 1 backup\(s\), [1-9][0-9]* WAL file\(s\)" \
  "$(grep -m 1 "retention (" "$OUT/service.log")" "the first retention run removed a backup and WAL"
wv_assert_eq 0 "$(metric walvault_retention_errors_total)" "no retention run failed"

wv_step "SIGHUP with a slow backup-max-rate: the next backup runs long"
write_conf "backup-interval = 2s" "retain-full = 1" "backup-max-rate = 32"
kill -HUP "$SVC_PID"
wv_wait_for -m "the reload is not logged" grep -q "reloaded: base backups: every 2s, at most 32 kB/s" "$OUT/service.log"
# Backups run one after the other: once one started with the new rate, the fast ones are over.
wv_wait_for -m "no backup starts with the new rate" grep -q "scheduled base backup starting (at most 32 kB/s)" "$OUT/service.log"
# Wait until it really runs (its backup.json says running).
one_running() { [[ $(backups_with_status running) == 1 ]]; }
wv_wait_for -m "the slow backup is not running" one_running
KEPT_START=$(wv_walvault info --repo "$REPO" --json \
  | wv_json 'map { $_->{start_lsn} } grep { $_->{status} eq "complete" } @{$j->{backups}}')

wv_step "SIGTERM during the backup: exit 0, the backup failed, the archive resumes without gap"
wv_psql "$PG" "insert into filler select g, md5(g::text) from generate_series(1, 5000) g" >/dev/null
T0=$SECONDS
kill -TERM "$SVC_PID"
RC=0
wv_wait_bg "$SVC" 60 || RC=$?
STOP_S=$((SECONDS - T0))
echo "the service stopped ${STOP_S}s after SIGTERM"
wv_assert_eq 0 "$RC" "SIGTERM: exit status 0"
wv_assert "the shutdown is logged" grep -q "interrupted by the shutdown and is marked failed" "$OUT/service.log"
wv_assert "the service logs that it stopped" grep -q "stopped$" "$OUT/service.log"
wv_assert_eq 1 "$(backups_with_status complete)" "exactly one complete backup (retain-full = 1)"
wv_assert_eq 1 "$(backups_with_status failed)" "the interrupted backup is failed"
wv_assert_eq 0 "$(backups_with_status running)" "no backup is left running"
wv_assert "the .partial segment is kept" test -n "$(find "$REPO/wal/00000001" -name '*.partial')"

wv_psql "$PG" "insert into filler select g, md5(g::text) from generate_series(1, 5000) g" >/dev/null
wv_psql "$PG" "select pg_switch_wal()" >/dev/null
END=$(now_lsn)
wv_capture "$OUT/archive" wv_walvault archive --repo "$REPO" --dbname "$CONN" --slot svc --endpos "$END"
[[ $WV_RC -eq 0 ]] || tail -n 5 "$OUT/archive.err" >&2
wv_assert_eq 0 "$WV_RC" "walvault archive --endpos after the service: exit 0"
wv_assert_match "starting at [0-9A-F/]+ on timeline 1 \(the archive's end\)" "$(cat "$OUT/archive.err")" \
  "walvault archive resumes at the archive's end"
wv_assert_eq "" "$(wv_walvault info --repo "$REPO" --json | wv_json '@{$j->{gaps}}')" "info reports no gap"

wv_assert "the kept backup's start is known ($KEPT_START)" wv_lsn_ge "$KEPT_START" "$FIRST_LSN"
FIRST_LSN=$KEPT_START
first=$(($(wv_lsn_to_num "$FIRST_LSN") / SEG))
last=$(($(wv_lsn_to_num "$END") / SEG))
DEC=$WV_TMP/decoded
mkdir -p "$DEC"
missing=0
for ((n = first; n < last; n++)); do
  name=$(printf '%08X%08X%08X' 1 $((n / 4096)) $((n % 4096)))
  f=$REPO/wal/00000001/$name.lz4
  [[ -f $f ]] || { missing=$((missing + 1)); wv_log "missing $name"; continue; }
  lz4 -d -q -f "$f" "$DEC/$name"
done
wv_assert_eq 0 "$missing" "every segment from $FIRST_LSN to $END is archived"
wv_chown_pg "$DEC"
wv_capture "$OUT/waldump" wv_as_pg "$PGBIN/pg_waldump" -p "$DEC" -t 1 -s "$FIRST_LSN" -e "$END"
[[ $WV_RC -eq 0 ]] || tail -n 3 "$OUT/waldump.err" >&2
wv_assert_eq 0 "$WV_RC" "pg_waldump walks $FIRST_LSN..$END across the service's stop"

wv_summary service_basic
