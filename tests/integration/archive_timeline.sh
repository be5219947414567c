#!/usr/bin/env bash
# walvault archive follows a timeline switch and survives a server restart:
#  - archive (no --endpos, reconnecting) from a standby with 1 MB segments;
#  - the standby restarts: the archiver logs the lost connection once and reconnects;
#  - the standby is promoted: the archiver stores 00000002.history (identical to the
#    server's), keeps timeline 1's last segment as .partial holding exactly the WAL up to
#    the switch point, and continues on timeline 2 from that segment's start;
#  - SIGINT stops it cleanly (exit 0); --endpos then resumes on timeline 2;
#  - timeline 2's segments are byte-identical to the server's and pg_waldump reads them.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
wv_test_begin archive_timeline
wv_init_tmp
wv_require_walvault

SEG=$((1024 * 1024))
PRIMARY=$WV_TMP/primary
STANDBY=$WV_TMP/standby
REPO=$WV_TMP/repo
OUT=$WV_TMP/out
mkdir -p "$OUT"

wv_pg_init "$PRIMARY" --wal-segsize=1
wv_pg_start "$PRIMARY"
wv_psql "$PRIMARY" "create table filler (id int, v text)" >/dev/null

wv_step "standby from a base backup of the primary"
wv_pg_register "$STANDBY"
wv_as_pg "$PGBIN/pg_basebackup" -D "$STANDBY" -R -X stream -c fast \
  -d "$(wv_connstr "$PRIMARY")" >"$OUT/pg_basebackup.log" 2>&1 \
  || { cat "$OUT/pg_basebackup.log" >&2; wv_fail "pg_basebackup failed"; }
wv_pg_start "$STANDBY"
standby_streams() {
  [[ $(wv_psql "$PRIMARY" "select count(*) from pg_stat_replication where state = 'streaming'") == 1 ]]
}
wv_wait_for -m "the standby does not stream from the primary" standby_streams
SCONN=$(wv_connstr "$STANDBY")

generate_wal() { # DATADIR ROWS
  wv_psql "$1" "insert into filler select g, repeat(md5(g::text), 10) from generate_series(1, $2) g" >/dev/null
}
replayed_on_standby() { # LSN
  wv_lsn_ge "$(wv_psql "$STANDBY" "select pg_last_wal_replay_lsn()")" "$1"
}

wv_step "archive from the standby (background, reconnecting)"
wv_start_bg "$OUT/archive.log" "$WALVAULT" archive --repo "$REPO" --dbname "$SCONN" \
  --slot arch --create-slot --status-interval-ms 200
ARCHIVER=$WV_LAST_BG_PID
wv_wait_for -m "the archiver did not start" grep -q "streaming WAL from" "$OUT/archive.log"
generate_wal "$PRIMARY" 5000
LSN=$(wv_psql "$PRIMARY" "select pg_current_wal_lsn()")
wv_wait_for -m "the standby did not replay $LSN" replayed_on_standby "$LSN"

wv_step "the standby restarts: the archiver reconnects"
wv_pg_stop "$STANDBY" fast
wv_pg_start "$STANDBY"
wv_wait_for -m "the archiver did not reconnect" \
  bash -c "(( \$(grep -c 'streaming WAL from' '$OUT/archive.log') >= 2 ))"
wv_assert_eq 1 "$(grep -c 'reconnecting with backoff' "$OUT/archive.log" || true)" \
  "the lost connection is logged once"
wv_assert "the archiver is still running after the restart" wv_bg_alive "$ARCHIVER"

generate_wal "$PRIMARY" 5000
LSN=$(wv_psql "$PRIMARY" "select pg_current_wal_lsn()")
wv_wait_for -m "the standby did not replay $LSN" replayed_on_standby "$LSN"

wv_step "promote the standby: timeline 2"
wv_pg_stop "$PRIMARY" fast
wv_as_pg "$PGBIN/pg_ctl" promote -D "$STANDBY" -w >/dev/null
wv_assert_eq 00000002 "$(wv_psql "$STANDBY" "select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")" \
  "the promoted standby writes timeline 2"
generate_wal "$STANDBY" 8000
wv_wait_for -m "the archiver did not follow timeline 2" grep -q "following timeline 2" "$OUT/archive.log"
END=$(wv_psql "$STANDBY" "select pg_current_wal_lsn()")
wv_wait_for -m "the archiver did not store 00000002.history" test -f "$REPO/wal/00000002.history"
wv_sleep 1
wv_stop_bg "$ARCHIVER" INT 30 && RC=0 || RC=$?
wv_assert_eq 0 "$RC" "SIGINT stops the archiver with exit 0"
wv_assert_match "stopped; the archive is durable up to" "$(cat "$OUT/archive.log")" \
  "the stop says how far the archive is durable"

wv_step "resume with --endpos on timeline 2"
wv_capture "$OUT/endpos" wv_as_pg timeout 120 "$WALVAULT" archive --repo "$REPO" --dbname "$SCONN" \
  --slot arch --endpos "$END" --no-loop
[[ $WV_RC -eq 0 ]] || cat "$OUT/endpos.err" >&2
wv_assert_eq 0 "$WV_RC" "archive --endpos $END on timeline 2 exits 0"
wv_assert_match "starting at [0-9A-F/]+ on timeline 2 \(the archive's end\)" "$(cat "$OUT/endpos.err")" \
  "the restart resumes on timeline 2 from the archive's end"

wv_step "what the archive holds"
wv_assert "00000002.history is identical to the server's" \
  cmp -s "$REPO/wal/00000002.history" "$STANDBY/pg_wal/00000002.history"
SWITCH=$(awk -F'\t' '$1 == 1 { print $2 }' "$REPO/wal/00000002.history")
SWITCH_NUM=$(wv_lsn_to_num "$SWITCH")
SWITCH_SEG=$((SWITCH_NUM / SEG))
name_of() { printf '%08X%08X%08X' "$1" $(($2 / 4096)) $(($2 % 4096)); }
OLD_PARTIAL=$REPO/wal/00000001/$(name_of 1 "$SWITCH_SEG").lz4.partial
wv_assert "timeline 1's last segment is kept as .partial ($(basename "$OLD_PARTIAL"))" test -f "$OLD_PARTIAL"
wv_assert_not "timeline 1's last segment is not complete" test -f "${OLD_PARTIAL%.partial}"
DEC=$WV_TMP/decoded
mkdir -p "$DEC"
lz4 -d -q -f "$OLD_PARTIAL" "$DEC/old.content"
wv_assert_eq "$((SWITCH_NUM % SEG))" "$(stat -c %s "$DEC/old.content")" \
  "timeline 1's .partial holds exactly the WAL up to the switch point $SWITCH"
# Timeline 2's first segment starts with a copy of timeline 1's WAL up to the switch point.
wv_assert "timeline 1's .partial is the server's WAL (the head of $(name_of 2 "$SWITCH_SEG"))" \
  cmp -s "$DEC/old.content" <(head -c $((SWITCH_NUM % SEG)) "$STANDBY/pg_wal/$(name_of 2 "$SWITCH_SEG")")

END_NUM=$(wv_lsn_to_num "$END")
missing=0 bad=0 differ=0 compared=0
for ((n = SWITCH_SEG; n < END_NUM / SEG; n++)); do
  name=$(name_of 2 "$n")
  f=$REPO/wal/00000002/$name.lz4
  [[ -f $f ]] || { missing=$((missing + 1)); continue; }
  lz4 -t -q "$f" || bad=$((bad + 1))
  lz4 -d -q -f "$f" "$DEC/$name"
  if [[ -f $STANDBY/pg_wal/$name ]]; then
    compared=$((compared + 1))
    cmp -s "$DEC/$name" "$STANDBY/pg_wal/$name" || differ=$((differ + 1))
  fi
done
wv_assert_eq 0 "$missing" "timeline 2 is complete from the switch segment to the one before $END"
wv_assert_eq 0 "$bad" "timeline 2's segments pass lz4 -t"
wv_assert_ne 0 "$compared" "timeline 2's segments can be compared with pg_wal"
wv_assert_eq 0 "$differ" "timeline 2's segments are byte-identical to the server's ($compared compared)"
name=$(name_of 2 $((END_NUM / SEG)))
if ((END_NUM % SEG != 0)); then
  lz4 -d -q -f "$REPO/wal/00000002/$name.lz4.partial" "$DEC/$name"
  truncate -s "$SEG" "$DEC/$name"
fi
chown -R postgres: "$DEC"
wv_capture "$OUT/waldump" wv_as_pg "$PGBIN/pg_waldump" -p "$DEC" -t 2 -s "$SWITCH" -e "$END"
[[ $WV_RC -eq 0 ]] || tail -n 3 "$OUT/waldump.err" >&2
wv_assert_eq 0 "$WV_RC" "pg_waldump reads timeline 2 from the switch point $SWITCH to $END"

wv_summary archive_timeline
