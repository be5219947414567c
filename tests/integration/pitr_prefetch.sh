#!/usr/bin/env bash
# wal-get's prefetch spool against a real PostgreSQL 15 cluster (1 MB WAL segments, ~50 of
# them between the backup and the end of the archive):
#
#   1. restore --target latest, start the restored cluster as the service would: the rows are
#      exactly those committed; wal-get's closing line in the server log says most segments
#      were served from the spool, never more than 8 held at once; a watcher sampling the
#      spool during recovery never saw more than 8 segments; the spool is gone afterwards;
#   2. restore --verify: passes, and leaves no spool behind;
#   3. the same recovery with --prefetch 0 in restore_command: same rows, no spool created.
#   Recovery times of 1 and 3 are printed (no timed assertion).
#
# Run: bash tests/integration/pitr_prefetch.sh. Prints `pitr_prefetch: N passed, M failed` last.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

wv_test_begin pitr_prefetch
wv_init_tmp
wv_require_walvault
PG=$WV_TMP/source
REPO=$WV_TMP/repo
OUT=$WV_TMP/out
mkdir -p "$OUT"
wv_chown_pg "$OUT"
Q() { wv_psql "$PG" "$1"; }
FINGERPRINT="select count(*) || ' ' || sum(id) || ' ' || md5(string_agg(note, ',' order by id)) from t"

wv_step "source cluster, archive, backup, ~50 segments of rows and filler"
wv_pg_init "$PG" --wal-segsize=1
wv_pg_start "$PG"
CONN=$(wv_connstr "$PG")
Q "create table t (id int primary key, note text)" >/dev/null
Q "create table filler (g int, pad text)" >/dev/null
wv_start_bg "$WV_TMP/archive.log" "$WALVAULT" archive --repo "$REPO" --dbname "$CONN"
ARCHIVER=$WV_LAST_BG_PID
wv_wait_for -m "archive did not create the repository" test -f "$REPO/walvault.json"
wv_capture "$OUT/backup" wv_walvault backup --repo "$REPO" --dbname "$CONN" --checkpoint fast
wv_assert_eq 0 "$WV_RC" "backup exits 0"
START_LSN=$(Q "select pg_current_wal_lsn()")
for i in $(seq 1 25); do
  Q "insert into t select g, 'row ' || g || ' of batch $i' from generate_series(($i - 1) * 10 + 1, $i * 10) g" >/dev/null
  Q "insert into filler select g, repeat(md5(g::text), 20) from generate_series(1, 2500) g" >/dev/null
done
Q "select pg_switch_wal()" >/dev/null
END_LSN=$(Q "select pg_current_wal_lsn()")
EXPECTED=$(Q "$FINGERPRINT")
SEGMENTS=$((($(wv_lsn_to_num "$END_LSN") - $(wv_lsn_to_num "$START_LSN")) / 1048576))
wv_log "WAL after the backup: $SEGMENTS segments; expected rows: $EXPECTED"
wv_assert "at least 40 segments to replay" test "$SEGMENTS" -ge 40
caught_up() {
  local to
  to=$(wv_walvault info --repo "$REPO" --json 2>/dev/null | wv_json '$j->{recoverable}{to_lsn}' || true)
  [[ -n $to && $to != null ]] && wv_lsn_ge "$to" "$END_LSN"
}
wv_wait_for -t 120 -m "the archive never reached $END_LSN" caught_up
wv_stop_bg "$ARCHIVER" INT 30 || true
wv_pg_stop "$PG"

# Starts a restored directory, samples its spool until recovery has ended, prints seconds.
MAXFILE=$OUT/max_spooled
recovered() { [[ $(wv_psql "$1" "select pg_is_in_recovery()" 2>/dev/null) == f ]]; }
recover() {
  local dir=$1 spool=$1/pg_wal/walvault-prefetch t0 t1
  echo 0 >"$MAXFILE"
  (
    max=0
    while [[ ! -e $OUT/stop-watch ]]; do
      n=$(find "$spool" -maxdepth 1 -regextype posix-extended -regex '.*/[0-9A-F]{24}' 2>/dev/null | wc -l)
      ((n > max)) && { max=$n; echo "$max" >"$MAXFILE"; }
      sleep 0.005
    done
  ) &
  local watcher=$!
  rm -f "$OUT/stop-watch"
  t0=$(date +%s.%N)
  wv_pg_register "$dir"
  wv_pg_start "$dir"
  wv_wait_for -t 300 -m "recovery of $dir did not end" recovered "$dir"
  t1=$(date +%s.%N)
  touch "$OUT/stop-watch"
  wait "$watcher" || true
  rm -f "$OUT/stop-watch"
  echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}'
}

# ---------------------------------------------------------------- 1. prefetch on (default)
wv_step "1. restore --target latest, recovery with the default prefetch (8)"
R1=$WV_TMP/restored1
wv_capture "$OUT/r1" "$WALVAULT" restore --repo "$REPO" --target-dir "$R1" --target latest
wv_assert_eq 0 "$WV_RC" "restore exits 0"
wv_assert "restore_command names the timeline" grep -q -- "wal-get --repo .* --timeline 1 %f %p" "$R1/postgresql.auto.conf"
T_ON=$(recover "$R1")
wv_assert_eq "$EXPECTED" "$(wv_psql "$R1" "$FINGERPRINT")" "restored rows are exactly those committed"
LOG1=$(wv_pg_logfile "$R1")
LINE=$(grep -o 'walvault: prefetch: .*' "$LOG1" | tail -n 1 || true)
wv_log "server log: $LINE"
wv_assert_match 'walvault: prefetch: [0-9]+ of [0-9]+ segments were served from the spool' "$LINE" \
  "wal-get reports the spool when recovery ends"
SERVED=$(sed -E 's/.*prefetch: ([0-9]+) of.*/\1/' <<<"$LINE")
REQUESTS=$(sed -E 's/.*prefetch: [0-9]+ of ([0-9]+) .*/\1/' <<<"$LINE")
HELD=$(sed -E 's/.*at most ([0-9]+) spooled.*/\1/' <<<"$LINE")
wv_assert "segments were served from the spool ($SERVED of $REQUESTS)" test "$SERVED" -gt 0
wv_assert "the prefetcher never held more than 8 ($HELD)" test "$HELD" -le 8
WATCHED=$(cat "$MAXFILE")
wv_log "most segments seen in the spool by the watcher: $WATCHED"
wv_assert "the watcher never saw more than 8 segments in the spool ($WATCHED)" test "$WATCHED" -le 8
wv_assert "the spool is gone after recovery" test ! -e "$R1/pg_wal/walvault-prefetch"
wv_pg_stop "$R1"

# ---------------------------------------------------------------- 2. --verify
wv_step "2. restore --verify with prefetch: passes, no spool left"
R2=$WV_TMP/restored2
wv_capture "$OUT/r2" "$WALVAULT" restore --repo "$REPO" --target-dir "$R2" --target latest --verify
[[ $WV_RC -eq 0 ]] || sed 's/^/    | /' "$OUT/r2.out" "$OUT/r2.err" | head -n 40 >&2
wv_assert_eq 0 "$WV_RC" "restore --verify passes"
wv_assert "no spool left after --verify" test ! -e "$R2/pg_wal/walvault-prefetch"

# ---------------------------------------------------------------- 3. prefetch off
wv_step "3. the same recovery with --prefetch 0"
R3=$WV_TMP/restored3
wv_capture "$OUT/r3" "$WALVAULT" restore --repo "$REPO" --target-dir "$R3" --target latest
wv_assert_eq 0 "$WV_RC" "restore exits 0"
sed -i 's/ wal-get --repo / wal-get --prefetch 0 --repo /' "$R3/postgresql.auto.conf"
T_OFF=$(recover "$R3")
wv_assert_eq "$EXPECTED" "$(wv_psql "$R3" "$FINGERPRINT")" "restored rows are exact without prefetch"
wv_assert_eq 0 "$(cat "$MAXFILE")" "no spool with --prefetch 0"
wv_assert "no spool directory with --prefetch 0" test ! -e "$R3/pg_wal/walvault-prefetch"
wv_pg_stop "$R3"

wv_log "recovery of $SEGMENTS segments (start to promoted): prefetch 8: ${T_ON}s, prefetch 0: ${T_OFF}s"
wv_summary pitr_prefetch
