#!/usr/bin/env bash
# walvault archive (no --no-loop) under server trouble, PostgreSQL 15 with 1 MB segments:
#  - keepalives: with wal_sender_timeout = 2s and the default 10 s status interval, a quiet
#    period of 6 s passes without a replication timeout on the server and without a
#    reconnect (same walsender pid before and after);
#  - a server crash (pg_ctl stop -m immediate) and restart: the archiver logs the outage
#    once, reconnects by itself and continues without a gap;
#  - kill -9 of the archiver at random moments during pgbench write load, restarted each
#    time: every segment from the first to the last is archived, byte-identical to pg_wal,
#    and pg_waldump walks the whole range.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
wv_test_begin archive_resilience
wv_init_tmp
wv_require_walvault

SEG=$((1024 * 1024))
PG=$WV_TMP/pg
REPO=$WV_TMP/repo
OUT=$WV_TMP/out
mkdir -p "$OUT"
wv_pg_init "$PG" --wal-segsize=1
cat >>"$PG/postgresql.conf" <<CONF
wal_sender_timeout = 2s
wal_keep_size = 1GB
max_wal_size = 1GB
checkpoint_timeout = 1h
log_min_messages = debug1
CONF
wv_pg_start "$PG"
CONN=$(wv_connstr "$PG")
PGLOG=$(wv_pg_logfile "$PG")
now_lsn() { wv_psql "$PG" "select pg_current_wal_lsn()"; }
archived_to() { # LSN: the archive holds everything before LSN
  local end
  end=$(wv_info_end_lsn "$REPO" 1)
  [[ -n $end ]] && wv_lsn_ge "$end" "$1"
}
start_archiver() { # LOGNAME
  wv_start_bg "$OUT/$1.log" "$WALVAULT" archive --repo "$REPO" --dbname "$CONN" --slot arch --create-slot
  ARCH=$WV_LAST_BG_PID
}
wv_psql "$PG" "create table filler (id int, v text)" >/dev/null
FIRST_LSN=$(now_lsn)

wv_step "keepalives: wal_sender_timeout = 2s, quiet for 6 s"
start_archiver a0
wv_wait_for -m "the archiver does not stream" grep -q "streaming WAL from" "$OUT/a0.log"
wv_wait_for -m "no walsender" test -n "$(wv_psql "$PG" "select pid from pg_stat_replication")"
PID0=$(wv_psql "$PG" "select pid from pg_stat_replication")
sleep 6
wv_assert_eq "$PID0" "$(wv_psql "$PG" "select pid from pg_stat_replication")" "the same walsender streams after 6 s of quiet"
wv_assert_not "no replication timeout in the server log" grep -q "replication timeout" "$PGLOG"
wv_assert_not "the archiver did not reconnect" grep -q "reconnecting" "$OUT/a0.log"

wv_step "server crash (immediate stop) and restart"
wv_psql "$PG" "insert into filler select g, md5(g::text) from generate_series(1, 20000) g" >/dev/null
wv_pg_stop "$PG" immediate
sleep 4
wv_pg_start "$PG"
wv_psql "$PG" "insert into filler select g, md5(g::text) from generate_series(1, 20000) g" >/dev/null
AFTER=$(now_lsn)
wv_wait_for -t 40 -m "the archiver did not catch up with $AFTER after the restart" archived_to "$AFTER"
wv_assert_eq 1 "$(grep -c "reconnecting with backoff" "$OUT/a0.log")" "the outage is logged once"
wv_assert_match "connected again after [0-9]+ failed attempt" "$(cat "$OUT/a0.log")" "the reconnect is logged"
wv_assert_match "starting at [0-9A-F/]+ on timeline 1 \(the archive's end\)" "$(grep -A3 "connected again" "$OUT/a0.log")" \
  "it resumes at the archive's end"
wv_assert_not "the archiver did not exit" ! wv_bg_alive "$ARCH"

wv_step "kill -9 at random moments during pgbench"
wv_as_pg "$PGBIN/pgbench" -i -s 3 -q -h "$(wv_pg_sockdir "$PG")" -p "$(wv_pg_port "$PG")" postgres >/dev/null 2>&1
wv_start_bg "$OUT/pgbench.log" "$PGBIN/pgbench" -c 4 -T 12 -h "$(wv_pg_sockdir "$PG")" -p "$(wv_pg_port "$PG")" postgres
BENCH=$WV_LAST_BG_PID
kills=0
for i in 1 2 3 4 5; do
  sleep "$((RANDOM % 2)).$((RANDOM % 10))5"
  wv_stop_bg "$ARCH" KILL 5 || true
  kills=$((kills + 1))
  echo "kill -9 #$kills at $(now_lsn)"
  start_archiver "k$i"
done
wv_wait_bg "$BENCH" 60 || true
END=$(now_lsn)
wv_wait_for -t 40 -m "the archiver did not reach $END" archived_to "$END"
wv_stop_bg "$ARCH" INT 30 || true
for i in 1 2 3 4 5; do
  grep -q "starting at .*(the archive's end)" "$OUT/k$i.log" || wv__failed "restart $i resumes at the archive's end" "$(cat "$OUT/k$i.log")"
done
wv_assert "pgbench ran" grep -q "number of transactions actually processed" "$OUT/pgbench.log"

first=$(($(wv_lsn_to_num "$FIRST_LSN") / SEG))
last=$(($(wv_lsn_to_num "$END") / SEG))
DEC=$WV_TMP/decoded
mkdir -p "$DEC"
missing=0 differ=0 bad=0
for ((n = first; n < last; n++)); do
  name=$(printf '%08X%08X%08X' 1 $((n / 4096)) $((n % 4096)))
  f=$REPO/wal/00000001/$name.lz4
  [[ -f $f ]] || { missing=$((missing + 1)); wv_log "missing $name"; continue; }
  lz4 -t -q "$f" || bad=$((bad + 1))
  lz4 -d -q -f "$f" "$DEC/$name"
  cmp -s "$DEC/$name" "$PG/pg_wal/$name" || { differ=$((differ + 1)); wv_log "differs: $name"; }
done
name=$(printf '%08X%08X%08X' 1 $((last / 4096)) $((last % 4096)))
lz4 -d -q -c "$REPO/wal/00000001/$name.lz4.partial" >"$DEC/$name" 2>/dev/null || true
truncate -s "$SEG" "$DEC/$name"
wv_assert "the run spans many segments ($first..$last)" test $((last - first)) -ge 10
wv_assert_eq 0 "$missing" "after $kills kills no segment is missing"
wv_assert_eq 0 "$bad" "every segment passes lz4 -t"
wv_assert_eq 0 "$differ" "every decompressed segment is byte-identical to pg_wal"
chown -R postgres: "$DEC"
wv_capture "$OUT/waldump" wv_as_pg "$PGBIN/pg_waldump" -p "$DEC" -t 1 -s "$FIRST_LSN" -e "$END"
[[ $WV_RC -eq 0 ]] || tail -n 3 "$OUT/waldump.err" >&2
wv_assert_eq 0 "$WV_RC" "pg_waldump walks $FIRST_LSN..$END"
echo "segments: $((last - first)), waldump records: $(wc -l <"$OUT/waldump.out")"
wv_assert_eq "" "$(wv_walvault info --repo "$REPO" --json | wv_json '@{$j->{gaps}}')" "info reports no gap"

wv_summary archive_resilience
