#!/usr/bin/env bash
# walvault archive: replication slots and gaps, against PostgreSQL 15 with 1 MB segments:
#  - a missing slot without --create-slot is an error naming it, with a --create-slot hint;
#  - an empty archive starts at the slot's restart_lsn (not at the server's position);
#  - a slot the server invalidated (wal_status = lost) is an error with a hint, and the slot
#    is not revived by streaming from it;
#  - when the server removed the WAL at the archive's end: an error (exit 1) that names the
#    LSN, with a hint to --allow-gap, and the repository is not touched; with --allow-gap the
#    gap is recorded in wal/00000001/gaps.json, logged as GAP, `info --json` names it, and
#    archiving continues at the server's oldest segment, byte-identical to pg_wal.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
wv_test_begin archive_slots_gaps
wv_init_tmp
wv_require_walvault

SEG=$((1024 * 1024))
PG=$WV_TMP/pg
OUT=$WV_TMP/out
mkdir -p "$OUT"
wv_pg_init "$PG" --wal-segsize=1
cat >>"$PG/postgresql.conf" <<CONF
max_slot_wal_keep_size = 3MB
min_wal_size = 2MB
max_wal_size = 32MB
wal_keep_size = 0
CONF
wv_pg_start "$PG"
CONN=$(wv_connstr "$PG")
wv_psql "$PG" "create table filler (id int, v text)" >/dev/null
generate_wal() { # SEGMENTS: about that many MB of WAL, each ending with a segment switch
  local i
  for ((i = 0; i < $1; i++)); do
    wv_psql "$PG" "insert into filler select g, repeat(md5(g::text), 8) from generate_series(1, 2500) g" >/dev/null
    wv_psql "$PG" "select pg_switch_wal()" >/dev/null
  done
}
now_lsn() { wv_psql "$PG" "select pg_current_wal_lsn()"; }
archive() { # NAME REPO ARGS...
  local name=$1 repo=$2
  shift 2
  wv_capture "$OUT/$name" wv_as_pg timeout 60 "$WALVAULT" archive --repo "$repo" --dbname "$CONN" \
    --no-loop "$@"
}

wv_step "a missing slot without --create-slot"
archive noslot "$WV_TMP/r0" --slot nosuch --endpos "$(now_lsn)"
wv_assert_eq 1 "$WV_RC" "exit 1"
wv_assert_match "walvault: error: replication slot \"nosuch\" does not exist" "$(cat "$OUT/noslot.err")" "the error names the slot"
wv_assert_match "HINT: add --create-slot" "$(cat "$OUT/noslot.err")" "the hint says --create-slot"
wv_assert_eq 0 "$(wv_psql "$PG" "select count(*) from pg_replication_slots")" "no slot was created"

wv_step "an empty archive starts at the slot's restart_lsn"
wv_psql "$PG" "select pg_create_physical_replication_slot('s1', true)" >/dev/null
SLOT_LSN=$(wv_psql "$PG" "select restart_lsn from pg_replication_slots where slot_name = 's1'")
generate_wal 2
END=$(now_lsn)
archive fromslot "$WV_TMP/r1" --slot s1 --endpos "$END"
wv_assert_eq 0 "$WV_RC" "archive --slot s1 --endpos exits 0"
SLOT_SEG_START=$(printf '%X/%X' $(($(wv_lsn_to_num "$SLOT_LSN") / SEG * SEG >> 32)) $(($(wv_lsn_to_num "$SLOT_LSN") / SEG * SEG & 0xFFFFFFFF)))
wv_assert_match "starting at $SLOT_SEG_START on timeline 1 \(the restart_lsn of slot \"s1\"\)" \
  "$(cat "$OUT/fromslot.err")" "it starts at the segment of the slot's restart_lsn $SLOT_LSN"
FIRST=$(find "$WV_TMP/r1/wal/00000001" -name '*.lz4*' -printf '%f\n' | sort | head -n 1)
wv_assert_eq "$(wv_segment_name "$SLOT_LSN" 1 $SEG)" "${FIRST:0:24}" "the first archived segment is the slot's"

wv_step "a slot whose WAL was removed (wal_status = lost)"
wv_psql "$PG" "select pg_create_physical_replication_slot('lost', true)" >/dev/null
generate_wal 6
wv_psql "$PG" "checkpoint" >/dev/null
wv_assert_eq lost "$(wv_psql "$PG" "select wal_status from pg_replication_slots where slot_name = 'lost'")" \
  "the server invalidated the slot"
archive lostslot "$WV_TMP/r2" --slot lost --endpos "$(now_lsn)"
wv_assert_eq 1 "$WV_RC" "archive --slot lost exits 1"
wv_assert_match "walvault: error: replication slot \"lost\" reserves no WAL: the server has invalidated it \(wal_status = lost" \
  "$(cat "$OUT/lostslot.err")" "the error says the slot is lost"
wv_assert_match "HINT: .*--drop-slot.*--create-slot" "$(cat "$OUT/lostslot.err")" "the hint says how to recreate it"
wv_assert_eq "" "$(find "$WV_TMP/r2/wal" -name '*.lz4*' 2>/dev/null)" "nothing was archived from the lost slot"
wv_assert_eq "lost" "$(wv_psql "$PG" "select wal_status from pg_replication_slots where slot_name = 'lost'")" \
  "the slot was not revived"
wv_psql "$PG" "select pg_drop_replication_slot('lost'); select pg_drop_replication_slot('s1')" >/dev/null

wv_step "the server removed the WAL at the archive's end"
REPO=$WV_TMP/repo
generate_wal 1
wv_psql "$PG" "insert into filler values (1, 'x')" >/dev/null
END1=$(now_lsn)
archive g0 "$REPO" --endpos "$END1"
wv_assert_eq 0 "$WV_RC" "the first run (no slot) exits 0"
generate_wal 2
wv_psql "$PG" "insert into filler values (1, 'x')" >/dev/null
archive g1 "$REPO" --endpos "$(now_lsn)"
wv_assert_eq 0 "$WV_RC" "the second run exits 0 (complete segments before the gap)"
ARCH_END=$(sed -n 's/.*the archive is durable up to \([0-9A-F]*\/[0-9A-F]*\) on.*/\1/p' "$OUT/g1.err" | tail -n 1)
generate_wal 8
wv_psql "$PG" "checkpoint" >/dev/null
wv_psql "$PG" "checkpoint" >/dev/null
wv_assert_not "the server no longer has the segment at the archive's end" \
  test -f "$PG/pg_wal/$(wv_segment_name "$ARCH_END" 1 $SEG)"
# What the archive holds: every file's name and decompressed content.
content_fp() { (cd "$REPO/wal/00000001" && for f in *.lz4*; do echo "$f $(lz4 -d -q -c "$f" | md5sum)"; done) | md5sum; }
FP=$(content_fp)
END2=$(now_lsn)
archive g2 "$REPO" --endpos "$END2"
wv_assert_eq 1 "$WV_RC" "without --allow-gap: exit 1"
wv_assert_match "walvault: error: the server no longer has the WAL at $ARCH_END on timeline 1 \(.*requested WAL segment .* has already been removed\): archiving on would leave a gap" \
  "$(cat "$OUT/g2.err")" "the error names the archive's end and the server's message"
wv_assert_match "HINT: the archive is intact up to $ARCH_END.*--allow-gap" "$(cat "$OUT/g2.err")" "the hint names --allow-gap"
wv_assert_eq "$FP" "$(content_fp)" "the refused run changed no archived content"
wv_assert_not "the refused run recorded no gap" test -e "$REPO/wal/00000001/gaps.json"

OLDEST=$(wv_psql "$PG" "select min(name) from pg_ls_waldir() where name ~ '^00000001[0-9A-F]{16}\$'")
archive g3 "$REPO" --endpos "$END2" --allow-gap
wv_assert_eq 0 "$WV_RC" "with --allow-gap: exit 0"
generate_wal 2
END3=$(now_lsn)
archive g3b "$REPO" --endpos "$END3"
wv_assert_eq 0 "$WV_RC" "a later run without --allow-gap continues from the archive's end (after the gap)"
OLDEST_NUM=$((16#${OLDEST:16:8} + 16#${OLDEST:8:8} * 4096))
OLDEST_LSN=$(printf '%X/%X' $((OLDEST_NUM * SEG >> 32)) $((OLDEST_NUM * SEG & 0xFFFFFFFF)))
wv_assert_match "warning: GAP: the WAL from $ARCH_END to $OLDEST_LSN on timeline 1 was removed by the server" \
  "$(cat "$OUT/g3.err")" "the gap is logged as a warning with both ends"
wv_assert_match "starting at $OLDEST_LSN on timeline 1" "$(cat "$OUT/g3.err")" "it continues at the server's oldest segment $OLDEST"
GAPS=$REPO/wal/00000001/gaps.json
wv_assert_eq "1 $ARCH_END $OLDEST_LSN" "$(wv_json '$j->{gaps}[0]{timeline}." ".$j->{gaps}[0]{start_lsn}." ".$j->{gaps}[0]{end_lsn}' <"$GAPS")" \
  "gaps.json records the gap"
wv_assert_eq 600 "$(stat -c %a "$GAPS")" "gaps.json is 0600"
wv_walvault info --repo "$REPO" --json >"$OUT/info.json"
INFO_GAP=$(wv_json 'map { "$_->{timeline} $_->{end_lsn}" } @{$j->{gaps}}' <"$OUT/info.json")
wv_assert_eq "1 $OLDEST_LSN" "$INFO_GAP" "info --json names the gap, ending at $OLDEST_LSN"
INFO_GAP_START=$(wv_json '$j->{gaps}[0]{start_lsn}' <"$OUT/info.json")
wv_assert "info's gap starts at or before the archive's end ($INFO_GAP_START <= $ARCH_END)" \
  test "$(wv_lsn_to_num "$INFO_GAP_START")" -le "$(wv_lsn_to_num "$ARCH_END")"
differ=0 compared=0
for f in "$REPO"/wal/00000001/*.lz4; do
  name=$(basename "$f" .lz4)
  [[ -f $PG/pg_wal/$name ]] || continue
  compared=$((compared + 1))
  cmp -s <(lz4 -d -q -c "$f") "$PG/pg_wal/$name" || differ=$((differ + 1))
done
wv_assert_ne 0 "$compared" "segments after the gap were compared with pg_wal ($compared)"
wv_assert_eq 0 "$differ" "segments after the gap are byte-identical to pg_wal"

wv_summary archive_slots_gaps
