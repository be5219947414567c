#!/usr/bin/env bash
# walvault backup with no archiver running, into a repository whose archive ends before the
# backup starts (the archiver was stopped, WAL went on): the backup archives the WAL from the
# archive's end, not only from its own start, so no hole is left between them and a commit
# made while the archiver was down stays restorable. (Found by a fresh-user test: the backup
# used to stream only its own range, and the next archiver run resumed after it.)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
wv_test_begin backup_archive_tail
wv_init_tmp
wv_require_walvault

PG=$WV_TMP/pg
REPO=$WV_TMP/repo
OUT=$WV_TMP/out
mkdir -p "$OUT"
wv_pg_init "$PG" --wal-segsize=1
wv_pg_start "$PG"
CONN=$(wv_connstr "$PG")
wv_psql "$PG" "create table t (id int, v text)" >/dev/null
fill() { wv_psql "$PG" "insert into t select g, repeat(md5(g::text), 8) from generate_series(1, 3000) g" >/dev/null; }

wv_step "archive up to a point inside a segment, then stop the archiver"
fill
END1=$(wv_psql "$PG" "select pg_current_wal_lsn()")
wv_capture "$OUT/a1" wv_walvault archive --repo "$REPO" --dbname "$CONN" --endpos "$END1" --no-loop
wv_assert_eq 0 "$WV_RC" "the first archive run reaches --endpos"

wv_step "more WAL while no archiver runs, then a backup"
for i in 1 2 3; do fill; wv_psql "$PG" "select pg_switch_wal()" >/dev/null; done
wv_capture "$OUT/b" wv_walvault backup --repo "$REPO" --dbname "$CONN" --checkpoint fast
wv_assert_eq 0 "$WV_RC" "the backup completes"
START=$(wv_json '$j->{start_lsn}' <"$(ls "$REPO"/backups/*/backup.json)")

wv_step "the archive has no hole between its old end and the backup"
wv_capture "$OUT/info" wv_walvault info --repo "$REPO" --json
wv_assert_eq 0 "$WV_RC" "info works"
wv_assert_eq "0" "$(wv_json 'scalar @{$j->{gaps}}' <"$OUT/info.out")" \
  "info reports no gap"
first=$(wv_segment_name "$END1" 1 1048576)
last=$(wv_segment_name "$START" 1 1048576)
missing=0
for ((n = 16#${first:16:8}; n <= 16#${last:16:8}; n++)); do
  name=$(printf '00000001%08X%08X' 0 "$n")
  [[ -e $REPO/wal/00000001/$name.lz4 || -e $REPO/wal/00000001/$name.lz4.partial ]] || missing=$((missing + 1))
done
wv_assert_eq 0 "$missing" "every segment from the old archive end ($first) to the backup start ($last) is archived"

if wv_is_root; then
  wv_step "root may not write into the postgres-owned repository"
  before=$(find "$REPO" -printf '%p %s %u\n' | sort | md5sum)
  wv_capture "$OUT/root" "$WALVAULT" backup --repo "$REPO" --dbname "$CONN user=postgres" --checkpoint fast
  wv_assert_eq 1 "$WV_RC" "backup as root exits 1"
  wv_assert_match "belongs to user postgres" "$(cat "$OUT/root.err")" "the error names the owner"
  wv_assert_match "HINT: run walvault as postgres" "$(cat "$OUT/root.err")" "the hint says whom to run as"
  wv_assert_eq "$before" "$(find "$REPO" -printf '%p %s %u\n' | sort | md5sum)" "the repository is unchanged"
fi

wv_step "a damaged backup.json hides only its own backup, and says so"
BJ=$(ls "$REPO"/backups/*/backup.json)
cp "$BJ" "$OUT/backup.json.good"
printf '{"id":' >"$BJ"
wv_capture "$OUT/info2" wv_walvault info --repo "$REPO" --json
wv_assert_eq 0 "$WV_RC" "info still works"
wv_assert_match 'is not offered for restore: its backup.json is damaged' \
  "$(wv_json 'join "\n", @{$j->{problems}}' <"$OUT/info2.out")" "info names the damaged backup"
wv_assert_eq 0 "$(wv_json 'scalar @{$j->{backups}}' <"$OUT/info2.out")" "and does not list it as a backup"
wv_capture "$OUT/r" wv_walvault restore --repo "$REPO" --target-dir "$WV_TMP/never" --target latest --dry-run
wv_assert_eq 3 "$WV_RC" "restore finds no usable backup: exit 3"
wv_assert_match 'warning: backup .* is not offered for restore' "$(cat "$OUT/r.err")" "restore warns about it"
cp "$OUT/backup.json.good" "$BJ"

wv_step "two restores into the same absent directory at once: one wins, the other is refused"
T=$WV_TMP/together
wv_walvault restore --repo "$REPO" --target-dir "$T" --target latest >"$OUT/ra.out" 2>"$OUT/ra.err" &
pa=$!
wv_walvault restore --repo "$REPO" --target-dir "$T" --target latest >"$OUT/rb.out" 2>"$OUT/rb.err" &
pb=$!
rca=0; wait $pa || rca=$?
rcb=0; wait $pb || rcb=$?
wv_assert_eq "0 2" "$(printf '%s\n' "$rca" "$rcb" | sort | tr '\n' ' ' | sed 's/ $//')" \
  "exactly one restore succeeds, the other is a usage error"
wv_assert "the winner's directory is whole" test -f "$T/PG_VERSION" -a -f "$T/recovery.signal" -a -f "$T/global/pg_control"

wv_summary backup_archive_tail
