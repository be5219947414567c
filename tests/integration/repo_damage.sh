#!/usr/bin/env bash
# Damaged repositories (PostgreSQL 15, 1 MB segments, one cluster):
#   archive (background) -> backup B1 -> snapshot of a directory -> rows, a segment switch ->
#   the cluster restarts in archive recovery and promotes itself (timeline 2, so the repository
#   holds a history file) -> rows on timeline 2 -> the archiver stops (a .partial stays).
# Then, for every kind of file (a WAL segment restore needs, the newest .partial, the history
# file, base.tar.lz4, backup.json, backup_manifest, walvault.json, a snapshot object, the lock
# file) and every kind of damage (truncated, zero bytes, one byte flipped, missing), on a copy
# of the repository (cp -a):
#   - `verify` exits 1 and names the file (its exact path) in one DAMAGED line, or, where the
#     damage is harmless (a torn .partial tail, a stale lock file), exits 0 naming it as a
#     WARNING or lock line; `verify --json` agrees;
#   - `restore --target latest` (with --restore-dir for the snapshot) refuses before writing
#     anything when what it needs is damaged (exit non-zero, target directories absent), and
#     restores when the damage is harmless;
#   - `wal-get` of a damaged segment exits with a status > 125 (PostgreSQL stops recovery) and
#     writes nothing; of a missing one exits 1.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
wv_test_begin repo_damage
wv_init_tmp
wv_require_walvault

SEG=$((1024 * 1024))
PG=$WV_TMP/pg
REPO=$WV_TMP/repo
OUT=$WV_TMP/out
SRC=$WV_TMP/src
mkdir -p "$OUT" "$SRC/conf"
printf 'secret-key\n' >"$SRC/conf/app.key"
head -c 200000 /dev/urandom >"$SRC/media.bin"
wv_chown_pg "$OUT" "$SRC"
Q() { wv_psql "$PG" "$1"; }

wv_step "a repository with WAL on two timelines, a backup and a snapshot"
wv_pg_init "$PG" --wal-segsize=1
wv_pg_start "$PG"
CONN=$(wv_connstr "$PG")
Q "create table t (id int primary key, v text)" >/dev/null
wv_start_bg "$OUT/archive.log" "$WALVAULT" archive --repo "$REPO" --dbname "$CONN" --status-interval-ms 200
ARCHIVER=$WV_LAST_BG_PID
wv_wait_for -m "archive did not create the repository" test -f "$REPO/walvault.json"
wv_capture "$OUT/backup" wv_walvault backup --repo "$REPO" --dbname "$CONN" --label damage --checkpoint fast
[[ $WV_RC -eq 0 ]] || { cat "$OUT/backup.err" >&2; wv_fail "backup failed"; }
wv_capture "$OUT/snapshot" wv_walvault snapshot --repo "$REPO" --dir "data=$SRC"
[[ $WV_RC -eq 0 ]] || { cat "$OUT/snapshot.err" >&2; wv_fail "snapshot failed"; }
Q "insert into t select g, md5(g::text) from generate_series(1, 3000) g" >/dev/null
Q "select pg_switch_wal()" >/dev/null
Q "insert into t select g, md5(g::text) from generate_series(3001, 4000) g" >/dev/null
archived_to() { # LSN [TLI]
  local end
  end=$(wv_info_end_lsn "$REPO" "${2:-0}")
  [[ -n $end ]] && wv_lsn_ge "$end" "$1"
}
LSN=$(Q "select pg_current_wal_lsn()")
wv_wait_for -m "the archiver did not reach $LSN" archived_to "$LSN"

# Archive recovery over the cluster's own pg_wal (restore_command finds nothing): it replays
# to the end and promotes itself to timeline 2; the archiver follows.
wv_pg_stop "$PG" fast
touch "$PG/recovery.signal"
printf "restore_command = 'false'\n" >>"$PG/postgresql.auto.conf"
wv_chown_pg "$PG/recovery.signal"
wv_pg_start "$PG"
wv_wait_for -m "the cluster did not promote" test "$(Q "select pg_is_in_recovery()")" = f
Q "insert into t select g, md5(g::text) from generate_series(4001, 5000) g" >/dev/null
Q "select pg_switch_wal()" >/dev/null
# Enough WAL in the segment being written that its .partial holds several lz4 blocks.
i=5001
while (($(wv_lsn_to_num "$(Q "select pg_current_wal_lsn()")") % SEG < 700000)); do
  Q "insert into t select g, md5(g::text) from generate_series($i, $((i + 499))) g" >/dev/null
  i=$((i + 500))
done
LSN=$(Q "select pg_current_wal_lsn()")
wv_wait_for -m "the archiver did not follow timeline 2 to $LSN" archived_to "$LSN" 2
wv_stop_bg "$ARCHIVER" INT 30 || true
wv_pg_stop "$PG" fast

BID=$(wv_walvault info --repo "$REPO" --json | wv_json '$j->{backups}[0]{id}')
BSTOP=$(wv_walvault info --repo "$REPO" --json | wv_json '$j->{backups}[0]{stop_lsn}')
BSEGNO=$(($(wv_lsn_to_num "$BSTOP") / SEG))
# A complete timeline 1 segment after the backup's end: restore to the latest point reads it.
NEEDSEG=$(printf '%08X%08X%08X' 1 0 $((BSEGNO + 1)))
PARTIAL=$(cd "$REPO/wal/00000002" && ls ./*.partial | tail -n 1)
PARTIAL=$REPO/wal/00000002/${PARTIAL#./}
OBJ=$(find "$REPO/store" -name '*.lz4' -size +10k | head -n 1)
wv_assert "the repository holds $NEEDSEG.lz4" test -f "$REPO/wal/00000001/$NEEDSEG.lz4"
wv_assert "the repository holds a timeline 2 .partial ($(basename "$PARTIAL"))" test -s "$PARTIAL"
wv_assert "the repository holds 00000002.history" test -f "$REPO/wal/00000002.history"
wv_assert "the repository holds a lock file" test -f "$REPO/lock/archiver.lock"
wv_assert "the snapshot's large file is an object in the store" test -n "$OBJ"
wv_capture "$OUT/verify-intact" wv_walvault verify --repo "$REPO"
wv_assert_eq 0 "$WV_RC" "verify of the intact repository exits 0"
wv_assert_match "^ok" "$(tail -n 1 "$OUT/verify-intact.out")" "... and says ok"
wv_assert_match "lock $REPO/lock/archiver.lock: not held" "$(cat "$OUT/verify-intact.out")" \
  "... and lists the lock file as not held"

# ---------------------------------------------------------------- the matrix
damage() { # KIND FILE
  local kind=$1 f=$2 size off byte
  case $kind in
    truncated) size=$(stat -c %s "$f"); truncate -s $((size / 2)) "$f" ;;
    zero) : >"$f" ;;
    missing) rm -f "$f" ;;
    flipped)
      size=$(stat -c %s "$f")
      off=$((size / 2))
      # In a history file the middle byte is in the free-text reason, which nothing reads:
      # flip the switch point's first digit instead.
      [[ $f == *.history ]] && off=$(($(head -n 1 "$f" | cut -f1 | wc -c)))
      # In a .partial, the last block may be a torn write: flip a byte of the first one, which
      # whole blocks follow.
      [[ $f == *.partial ]] && off=1000
      byte=$(od -An -tu1 -j "$off" -N1 "$f" | tr -d ' ')
      printf "\\x$(printf %02x $((255 - byte)))" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
      ;;
  esac
}

# verify_case NAME REL_PATH EXPECT(damaged|warning|lock|clean) [PATTERN]
verify_case() {
  local name=$1 path=$2 expect=$3 out=$OUT/v-$1
  wv_capture "$out" wv_walvault verify --repo "$CASE"
  case $expect in
    damaged)
      wv_assert_eq 1 "$WV_RC" "$name: verify exits 1"
      wv_assert "$name: verify names $path in a DAMAGED line" \
        bash -c 'grep -aF "$1" "$2" | grep -aq "DAMAGED"' _ "$path" "$out.out"
      wv_assert_walvault_error "$out.err" "$name: verify's failure follows the error contract"
      ;;
    warning)
      wv_assert_eq 0 "$WV_RC" "$name: verify exits 0 (harmless)"
      wv_assert "$name: verify names $path in a WARNING line" grep -qF "WARNING $path" "$out.out"
      ;;
    lock)
      wv_assert_eq 0 "$WV_RC" "$name: verify exits 0 (a stale lock file is no damage)"
      ;;
    clean)
      wv_assert_eq 0 "$WV_RC" "$name: verify exits 0 (nothing shows it is missing)"
      ;;
  esac
  if [[ $expect == damaged ]]; then
    wv_capture "$out-json" wv_walvault verify --repo "$CASE" --json
    wv_assert_eq 1 "$(wv_json 'scalar grep { $_->{path} eq "'"$path"'" } @{$j->{damaged}}' <"$out-json.out" | sed 's/^[1-9][0-9]*$/1/')" \
      "$name: verify --json lists $path as damaged"
  fi
}

# restore_case NAME EXPECT(refuse|ok) [--restore-dir ...]
restore_case() {
  local name=$1 expect=$2 out=$OUT/r-$1
  shift 2
  local target=$WV_TMP/target-$name dir=$WV_TMP/dir-$name
  wv_capture "$out" wv_walvault restore --repo "$CASE" --target-dir "$target" --target latest "$@"
  if [[ $expect == refuse ]]; then
    wv_assert_ne 0 "$WV_RC" "$name: restore refuses (exit $WV_RC)"
    # Warnings may come first (a damaged backup.json: the backup is not offered for restore).
    grep -av '^[0-9TZ:-]* walvault: warning: ' "$out.err" >"$out.err-errors" || true
    wv_assert_walvault_error "$out.err-errors" "$name: the refusal follows the error contract"
    wv_assert_eq absent "$(wv_fingerprint "$target")" "$name: the target directory was not created"
    [[ $# -gt 0 ]] && wv_assert_eq absent "$(wv_fingerprint "$dir")" "$name: the restore directory was not created"
  else
    wv_assert_eq 0 "$WV_RC" "$name: restore works (the damage is harmless)"
    [[ $WV_RC -eq 0 ]] || sed 's/^/    | /' "$out.err" | head -n 5 >&2
  fi
  rm -rf "$target" "$dir"
}

# wal_get_case NAME WALFILE EXPECT(fatal|missing|ok)
wal_get_case() {
  local name=$1 walfile=$2 expect=$3 dest=$WV_TMP/walget-dest
  rm -f "$dest"
  wv_capture "$OUT/w-$name" wv_walvault wal-get --repo "$CASE" --prefetch 0 "$walfile" "$dest"
  case $expect in
    fatal)
      wv_assert "$name: wal-get exits > 125 (got $WV_RC): PostgreSQL stops recovery" test "$WV_RC" -gt 125
      wv_assert "$name: ... and writes nothing" test ! -e "$dest"
      ;;
    missing)
      wv_assert_eq 1 "$WV_RC" "$name: wal-get exits 1 (not in the archive)"
      wv_assert "$name: ... and writes nothing" test ! -e "$dest"
      ;;
    ok)
      wv_assert_eq 0 "$WV_RC" "$name: wal-get serves it (the damage is harmless)"
      wv_assert_eq "$SEG" "$(stat -c %s "$dest" 2>/dev/null)" "$name: ... a whole segment"
      ;;
  esac
  rm -f "$dest"
}

PARTIAL_NAME=$(basename "${PARTIAL%.lz4.partial}")
for kind in truncated zero flipped missing; do
  wv_step "damage: $kind files"

  # A complete WAL segment that restoring to the latest point reads.
  CASE=$WV_TMP/case && rm -rf "$CASE" && cp -a "$REPO" "$CASE"
  damage "$kind" "$CASE/wal/00000001/$NEEDSEG.lz4"
  verify_case "segment-$kind" "$CASE/wal/00000001/$NEEDSEG.lz4" damaged
  restore_case "segment-$kind" refuse
  if [[ $kind == missing ]]; then
    wal_get_case "segment-$kind" "$NEEDSEG" missing
  else
    wal_get_case "segment-$kind" "$NEEDSEG" fatal
  fi

  # The newest .partial: a torn tail (truncated, emptied) is where an archiver stops; a
  # flipped byte with more data after it is damage; a missing one cannot be told from WAL
  # that was never archived.
  rm -rf "$CASE" && cp -a "$REPO" "$CASE"
  damage "$kind" "$CASE/wal/00000002/$(basename "$PARTIAL")"
  case $kind in
    truncated | zero)
      verify_case "partial-$kind" "$CASE/wal/00000002/$(basename "$PARTIAL")" warning
      restore_case "partial-$kind" ok
      wal_get_case "partial-$kind" "$PARTIAL_NAME" ok
      ;;
    flipped)
      verify_case "partial-$kind" "$CASE/wal/00000002/$(basename "$PARTIAL")" damaged
      # KNOWN GAP (issue 8): restore's check_plan_inputs does not yet refuse a .partial with
      # damage inside it (verify and wal-get do: recovery stops at it with exit 128).
      wv_log "KNOWN GAP: restore does not refuse a .partial damaged inside (wal-get stops recovery)"
      wal_get_case "partial-$kind" "$PARTIAL_NAME" fatal
      ;;
    missing)
      verify_case "partial-$kind" "$CASE/wal/00000002/$(basename "$PARTIAL")" clean
      restore_case "partial-$kind" ok
      wal_get_case "partial-$kind" "$PARTIAL_NAME" missing
      ;;
  esac
  rm -rf "$CASE" && cp -a "$REPO" "$CASE"

  # The history file of timeline 2 (restoring to the latest point follows it).
  damage "$kind" "$CASE/wal/00000002.history"
  verify_case "history-$kind" "$CASE/wal/00000002.history" damaged
  restore_case "history-$kind" refuse
  if [[ $kind == missing ]]; then
    wal_get_case "history-$kind" 00000002.history missing
  else
    wal_get_case "history-$kind" 00000002.history fatal
  fi

  # The backup's files and metadata.
  for f in base.tar.lz4 backup.json backup_manifest; do
    rm -rf "$CASE" && cp -a "$REPO" "$CASE"
    damage "$kind" "$CASE/backups/$BID/$f"
    verify_case "$f-$kind" "$CASE/backups/$BID/$f" damaged
    restore_case "$f-$kind" refuse
  done

  # The repository's identity.
  rm -rf "$CASE" && cp -a "$REPO" "$CASE"
  damage "$kind" "$CASE/walvault.json"
  verify_case "walvault.json-$kind" "$CASE/walvault.json" damaged
  restore_case "walvault.json-$kind" refuse
  wal_get_case "walvault.json-$kind" "$NEEDSEG" fatal

  # A snapshot object: restoring the directory refuses, verify names the object.
  rm -rf "$CASE" && cp -a "$REPO" "$CASE"
  CASEOBJ=$CASE/${OBJ#"$REPO"/}
  damage "$kind" "$CASEOBJ"
  verify_case "object-$kind" "$CASEOBJ" damaged
  restore_case "object-$kind" refuse --restore-dir "data=$WV_TMP/dir-object-$kind"

  # The lock file: flock(2) is what locks, the file's content is only a note.
  rm -rf "$CASE" && cp -a "$REPO" "$CASE"
  damage "$kind" "$CASE/lock/archiver.lock"
  verify_case "lock-$kind" "$CASE/lock/archiver.lock" lock
done
rm -rf "$CASE"

wv_step "a harmless restore still works end to end: the lock file damaged"
CASE=$WV_TMP/case && cp -a "$REPO" "$CASE"
printf '\xff\xfe' >"$CASE/lock/archiver.lock"
restore_case "lock-garbage" ok

wv_summary repo_damage
