#!/usr/bin/env bash
# walvault archive when things go wrong on the repository side (PostgreSQL 15, 1 MB segments):
#  - disk full (the repository on a 6 MB tmpfs): `walvault: error:` naming "No space left on
#    device" and a HINT, exit 1; every complete segment still passes lz4 -t and equals
#    pg_wal; after space is freed a restart resumes at the archive's end and the archive is
#    contiguous and byte-identical to pg_wal;
#  - a repository of another cluster (another initdb) is refused with a hint, unchanged;
#  - directories are 0700 and files 0600 although the caller's umask is 022.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
wv_test_begin archive_failures
wv_init_tmp
wv_require_walvault
wv_is_root || { echo "SKIP: needs root to mount a tmpfs"; wv_summary archive_failures; exit 0; }

SEG=$((1024 * 1024))
PG=$WV_TMP/pg
OUT=$WV_TMP/out
MNT=$WV_TMP/small
mkdir -p "$OUT" "$MNT"
mount -t tmpfs -o size=6m,mode=0755 tmpfs "$MNT"
# Unmount (lazily: a killed archiver may still hold a file) before the temp dir goes.
trap 'rc=$?; umount -l "$MNT" 2>/dev/null || true; (exit $rc); wv__on_exit' EXIT
chown postgres: "$MNT"
REPO=$MNT/repo
wv_pg_init "$PG" --wal-segsize=1
cat >>"$PG/postgresql.conf" <<CONF
min_wal_size = 64MB
max_wal_size = 256MB
CONF
wv_pg_start "$PG"
CONN=$(wv_connstr "$PG")
now_lsn() { wv_psql "$PG" "select pg_current_wal_lsn()"; }
# Random md5 text: lz4 cannot shrink this WAL much, so a few MB fill the tmpfs.
generate_wal() { wv_psql "$PG" "insert into filler select g, md5(random()::text) || md5(random()::text) from generate_series(1, $1) g" >/dev/null; }
wv_psql "$PG" "create table filler (id int, v text)" >/dev/null

wv_step "disk full"
START=$(now_lsn)
# A file of ours on the repository's file system, to free space later.
wv_as_pg dd if=/dev/zero of="$MNT/ballast" bs=1M count=2 status=none
wv_capture "$OUT/w0" wv_as_pg timeout 60 "$WALVAULT" archive --repo "$REPO" --dbname "$CONN" \
  --slot full --create-slot --endpos "$START" --no-loop
wv_assert_eq 0 "$WV_RC" "the repository is created on the small file system"
generate_wal 60000
END=$(now_lsn)
wv_capture "$OUT/full" wv_as_pg sh -c "umask 022; exec timeout 60 '$WALVAULT' archive --repo '$REPO' --dbname '$CONN' --slot full --endpos '$END' --no-loop"
wv_assert_eq 1 "$WV_RC" "a full file system ends the archiver with exit 1"
wv_assert_match "walvault: error: .*No space left on device" "$(cat "$OUT/full.err")" "the error names ENOSPC"
wv_assert_match "HINT: .*free space" "$(cat "$OUT/full.err")" "with a hint to free space"
wv_assert_eq 2 "$(grep -cE '^(walvault: error:|HINT:)' "$OUT/full.err")" "one error line and one hint"
COMPLETE=$(find "$REPO/wal/00000001" -name '*.lz4' | wc -l)
wv_assert_ne 0 "$COMPLETE" "some segments were complete before the disk filled ($COMPLETE)"
bad=0 differ=0
for f in "$REPO"/wal/00000001/*.lz4; do
  lz4 -t -q "$f" || bad=$((bad + 1))
  cmp -s <(lz4 -d -q -c "$f") "$PG/pg_wal/$(basename "$f" .lz4)" || differ=$((differ + 1))
done
wv_assert_eq 0 "$bad" "every complete segment passes lz4 -t after ENOSPC"
wv_assert_eq 0 "$differ" "every complete segment equals pg_wal after ENOSPC"
wv_assert_eq 1 "$(find "$REPO/wal/00000001" -name '*.partial' | wc -l)" "one .partial is left"
rm -f "$MNT/ballast"
mount -o remount,size=64m "$MNT"
wv_capture "$OUT/again" wv_as_pg timeout 60 "$WALVAULT" archive --repo "$REPO" --dbname "$CONN" \
  --slot full --endpos "$END" --no-loop
[[ $WV_RC -eq 0 ]] || cat "$OUT/again.err" >&2
wv_assert_eq 0 "$WV_RC" "after space is freed the restart reaches --endpos"
wv_assert_match "starting at [0-9A-F/]+ on timeline 1 \(the archive's end\)" "$(cat "$OUT/again.err")" "it resumes at the archive's end"
FIRST=$(find "$REPO/wal/00000001" -name '*.lz4*' -printf '%f\n' | sort | head -n 1)
first=$((16#${FIRST:16:8} + 16#${FIRST:8:8} * 4096))
last=$(($(wv_lsn_to_num "$END") / SEG))
missing=0 differ=0
for ((n = first; n < last; n++)); do
  name=$(printf '%08X%08X%08X' 1 $((n / 4096)) $((n % 4096)))
  [[ -f $REPO/wal/00000001/$name.lz4 ]] || { missing=$((missing + 1)); continue; }
  cmp -s <(lz4 -d -q -c "$REPO/wal/00000001/$name.lz4") "$PG/pg_wal/$name" || differ=$((differ + 1))
done
wv_assert "the range covers several segments ($first..$last)" test $((last - first)) -ge 5
wv_assert_eq 0 "$missing" "no segment is missing from $FIRST to the end: no gap"
wv_assert_eq 0 "$differ" "all segments are byte-identical to pg_wal"
wv_assert_eq "" "$(wv_walvault info --repo "$REPO" --json | wv_json '@{$j->{gaps}}')" "info reports no gap"

wv_step "files 0600, directories 0700 under umask 022"
wv_assert_eq 0 "$(find "$REPO" -type f ! -perm 600 | wc -l)" "files are 0600"
wv_assert_eq 0 "$(find "$REPO" -type d ! -perm 700 | wc -l)" "directories are 0700"

wv_step "a repository of another cluster"
PG2=$WV_TMP/pg2
wv_pg_init "$PG2" --wal-segsize=1
wv_pg_start "$PG2"
FP=$(wv_fingerprint "$REPO")
wv_capture "$OUT/other" wv_as_pg timeout 60 "$WALVAULT" archive --repo "$REPO" --dbname "$(wv_connstr "$PG2")" --no-loop
wv_assert_eq 1 "$WV_RC" "archiving another cluster into the repository exits 1"
wv_assert_match "walvault: error: repository .* belongs to database system $(wv_json '$j->{system_identifier}' <"$REPO/walvault.json")" \
  "$(cat "$OUT/other.err")" "the error names the repository's system identifier"
wv_assert_match "HINT: " "$(cat "$OUT/other.err")" "with a hint"
wv_assert_eq "$FP" "$(wv_fingerprint "$REPO")" "the repository is unchanged"

wv_summary archive_failures
