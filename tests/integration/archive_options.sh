#!/usr/bin/env bash
# walvault archive with 16 MB segments, --compress none, --io pwrite and --synchronous:
#  - --synchronous serves as a synchronous standby: a commit returns only once its WAL is
#    durable in the archive (checked right after the commit: the .partial already holds it),
#    and with the archiver stopped, commits wait;
#  - --endpos with uncompressed 16 MB segments: complete segments and the .partial are
#    byte-identical to pg_wal; the forced backend is logged.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
wv_test_begin archive_options
wv_init_tmp
wv_require_walvault

SEG=$((16 * 1024 * 1024))
PG=$WV_TMP/pg
REPO=$WV_TMP/repo
OUT=$WV_TMP/out
mkdir -p "$OUT"
wv_pg_init "$PG"
cat >>"$PG/postgresql.conf" <<CONF
synchronous_standby_names = 'walvault_sync'
synchronous_commit = on
CONF
wv_pg_start "$PG"
CONN=$(wv_connstr "$PG")
wv_assert_eq 16MB "$(wv_psql "$PG" "show wal_segment_size")" "the cluster uses 16 MB segments"
wv_psql "$PG" "set synchronous_commit = local; create table filler (id int, v text)" >/dev/null
name_of() { printf '%08X%08X%08X' 1 $(($1 / 256)) $(($1 % 256)); }

wv_step "--synchronous: a synchronous standby"
wv_start_bg "$OUT/sync.log" "$WALVAULT" archive --repo "$REPO" --dbname "$CONN" --synchronous \
  --application-name walvault_sync --compress none --io pwrite
SYNC=$WV_LAST_BG_PID
archiver_is_sync() {
  [[ $(wv_psql "$PG" "select sync_state from pg_stat_replication where application_name = 'walvault_sync'") == sync ]]
}
wv_wait_for -m "the archiver is not the synchronous standby" archiver_is_sync
wv_assert_match "using pwrite \(--io pwrite\)" "$(cat "$OUT/sync.log")" "the forced pwrite backend is logged"
wv_capture "$OUT/commit" wv_as_pg timeout 20 "$PGBIN/psql" -X -At -v ON_ERROR_STOP=1 -d "$CONN" \
  -c "insert into filler select g, repeat(md5(g::text), 10) from generate_series(1, 3000) g" \
  -c "select pg_current_wal_lsn()"
wv_assert_eq 0 "$WV_RC" "a synchronous commit returns while the archiver runs"
COMMIT_LSN=$(tail -n 1 "$OUT/commit.out")
COMMIT_NUM=$(wv_lsn_to_num "$COMMIT_LSN")
PARTIAL=$REPO/wal/00000001/$(name_of $((COMMIT_NUM / SEG))).partial
# No waiting here: the commit returned, so its WAL must already be in the archive.
HAVE=$(stat -c %s "$PARTIAL" 2>/dev/null || echo 0)
wv_assert "the commit's WAL was in the archive when the commit returned ($HAVE >= $((COMMIT_NUM % SEG)))" \
  test "$HAVE" -ge $((COMMIT_NUM % SEG))
wv_assert "the archived bytes are the server's" \
  cmp -s <(head -c $((COMMIT_NUM % SEG)) "$PARTIAL") \
  <(head -c $((COMMIT_NUM % SEG)) "$PG/pg_wal/$(name_of $((COMMIT_NUM / SEG)))")
wv_stop_bg "$SYNC" INT 30 && RC=0 || RC=$?
wv_assert_eq 0 "$RC" "SIGINT stops the archiver with exit 0"
wv_assert_match "stopped; the archive is durable up to" "$(cat "$OUT/sync.log")" "the stop is logged"
wv_capture "$OUT/blocked" wv_as_pg timeout 3 "$PGBIN/psql" -X -At -d "$CONN" \
  -c "insert into filler values (0, 'waits for the synchronous standby')"
wv_assert_eq 124 "$WV_RC" "without the archiver a synchronous commit waits"
wv_psql "$PG" "alter system set synchronous_standby_names = ''" >/dev/null
wv_psql "$PG" "select pg_reload_conf()" >/dev/null

wv_step "--endpos with 16 MB segments, --compress none"
wv_psql "$PG" "insert into filler select g, repeat(md5(g::text), 10) from generate_series(1, 60000) g" >/dev/null
END=$(wv_psql "$PG" "select pg_current_wal_lsn()")
wv_capture "$OUT/endpos" wv_as_pg timeout 120 "$WALVAULT" archive --repo "$REPO" --dbname "$CONN" \
  --endpos "$END" --no-loop --compress none --io pwrite
[[ $WV_RC -eq 0 ]] || cat "$OUT/endpos.err" >&2
wv_assert_eq 0 "$WV_RC" "archive --endpos $END exits 0"
wv_assert_match "starting at [0-9A-F/]+ on timeline 1 \(the archive's end\)" "$(cat "$OUT/endpos.err")" \
  "it resumes from the archive's end"
END_NUM=$(wv_lsn_to_num "$END")
FIRST=$(find "$REPO/wal/00000001" -type f -printf '%f\n' | sort | head -n 1)
FIRST_SEG=$((16#${FIRST:16:8} + 16#${FIRST:8:8} * 256))
complete=0 differ=0
for ((n = FIRST_SEG; n < END_NUM / SEG; n++)); do
  f=$REPO/wal/00000001/$(name_of "$n")
  [[ -f $f ]] || { wv__failed "segment $(name_of "$n") is complete" "missing: $f"; continue; }
  complete=$((complete + 1))
  wv_assert_eq "$SEG" "$(stat -c %s "$f")" "$(name_of "$n") holds 16 MB"
  cmp -s "$f" "$PG/pg_wal/$(name_of "$n")" || differ=$((differ + 1))
done
wv_assert_ne 0 "$complete" "at least one 16 MB segment is complete"
wv_assert_eq 0 "$differ" "complete segments are byte-identical to pg_wal"
LAST=$REPO/wal/00000001/$(name_of $((END_NUM / SEG))).partial
wv_assert "the last segment is .partial and holds the WAL up to $END" \
  test "$(stat -c %s "$LAST" 2>/dev/null || echo 0)" -ge $((END_NUM % SEG))
wv_assert "the .partial's bytes are the server's" \
  cmp -s <(head -c $((END_NUM % SEG)) "$LAST") <(head -c $((END_NUM % SEG)) "$PG/pg_wal/$(name_of $((END_NUM / SEG)))")
wv_assert_eq 0 "$(find "$REPO/wal" -name '*.lz4*' | wc -l)" "--compress none writes no lz4 files"

wv_summary archive_options
