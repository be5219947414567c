#!/usr/bin/env bash
# Receives the same WAL (about ROWS x 350 bytes, 16 MB segments) with walvault archive in
# each compression/backend combination and with pg_receivewal, each from its own slot, and
# prints seconds, MB/s, stored size and the ratio to pg_receivewal with the same compression.
# Everything is served from the page cache, so this measures the receiver, not the disk.
#   bash bench/archive_vs_pg_receivewal.sh [ROWS=450000]
set -euo pipefail
. "$(dirname "$0")/../tests/integration/lib.sh"
ROWS=${1:-450000}
wv_init_tmp
wv_require_walvault
PG=$WV_TMP/pg
wv_pg_init "$PG"
echo "max_wal_size = '4GB'" >>"$PG/postgresql.conf"
wv_pg_start "$PG"
CONN=$(wv_connstr "$PG")
wv_psql "$PG" "create table filler (id int, v text)" >/dev/null
START=$(wv_psql "$PG" "select pg_current_wal_lsn()")
for s in lz4_uring lz4_pwrite none_uring none_pwrite; do
  wv_walvault archive --repo "$WV_TMP/repo_$s" --dbname "$CONN" --slot "$s" --create-slot \
    --endpos "$START" --no-loop --log-level warning
done
for s in recv_lz4 recv_none; do
  wv_psql "$PG" "select pg_create_physical_replication_slot('$s', true)" >/dev/null
  mkdir -p "$WV_TMP/$s"
  wv_chown_pg "$WV_TMP/$s"
done
wv_psql "$PG" "insert into filler select g, repeat(md5(g::text), 10) from generate_series(1, $ROWS) g" >/dev/null
END=$(wv_psql "$PG" "select pg_current_wal_lsn()")
MB=$(((($(wv_lsn_to_num "$END") - $(wv_lsn_to_num "$START"))) / 1048576))
echo "WAL $START .. $END (~$MB MB)"

declare -A SECS
run() { # NAME DIR CMD...
  local name=$1 dir=$2 t0 t1
  shift 2
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>"$WV_TMP/$name.err" || { cat "$WV_TMP/$name.err" >&2; wv_fail "$name failed"; }
  t1=$(date +%s.%N)
  SECS[$name]=$(echo "$t1 - $t0" | bc -l)
  printf '%-22s %7.2f s %8.1f MB/s %7s MB stored\n' "$name" "${SECS[$name]}" \
    "$(echo "$MB / ${SECS[$name]}" | bc -l)" "$(du -sm "$dir" | cut -f1)"
}
run recv_lz4 "$WV_TMP/recv_lz4" wv_as_pg "$PGBIN/pg_receivewal" -D "$WV_TMP/recv_lz4" -d "$CONN" \
  --slot recv_lz4 -E "$END" -n --compress=lz4
run recv_none "$WV_TMP/recv_none" wv_as_pg "$PGBIN/pg_receivewal" -D "$WV_TMP/recv_none" -d "$CONN" \
  --slot recv_none -E "$END" -n
for s in lz4_uring lz4_pwrite none_uring none_pwrite; do
  run "walvault_$s" "$WV_TMP/repo_$s/wal" wv_walvault archive --repo "$WV_TMP/repo_$s" \
    --dbname "$CONN" --slot "$s" --endpos "$END" --no-loop --compress "${s%_*}" --io "${s#*_}"
done
echo
for s in lz4_uring lz4_pwrite none_uring none_pwrite; do
  printf 'walvault %-12s is %5.1fx as fast as pg_receivewal --compress=%s\n' "$s" \
    "$(echo "${SECS[recv_${s%_*}]} / ${SECS[walvault_$s]}" | bc -l)" "${s%_*}"
done
