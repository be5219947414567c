#!/usr/bin/env bash
# walvault snapshot on authentik-shaped directories, run as root (as authentik's volumes need):
# snapshot, snapshot unchanged, change, snapshot, delete, snapshot; restore every moment and
# compare byte for byte and metadata for metadata; chunk-level dedup of a large file; a file
# rewritten while it is read; a damaged object found by verify and refused by restore; bad
# input. No PostgreSQL server is needed: the repository's walvault.json is written by hand.
# SC2016: Perl snippets are single-quoted on purpose.
# shellcheck disable=SC2016
set -euo pipefail

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! wv_is_root; then
  echo "snapshot_basic: skipped (needs root to create files of several owners)"
  exit 0
fi
wv_test_begin snapshot_basic
wv_init_tmp
wv_require_walvault

T=$WV_TMP
REPO=$T/repo
SRC=$T/authentik

# snap ARGS... — walvault snapshot as root; JSON of the snapshots on stdout.
snap() { "$WALVAULT" snapshot --repo "$REPO" --json "$@"; }
json_field() { wv_json "\$j->[0]{$1}"; }

# listing DIR — every entry with type, mode, owner, mtime (ns), size, link target, content.
listing() {
  (
    cd "$1"
    find . -printf '%p|%y|%m|%U|%G|%T@|%s|%l\n' | LC_ALL=C sort
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
  )
}

wv_step "repository and an authentik-shaped tree"
mkdir -p "$REPO"
printf '{"format_version":1,"system_identifier":"7300000000000000001","pg_version_num":150000,"wal_segment_size":16777216}\n' >"$REPO/walvault.json"
chmod 0700 "$REPO"
chmod 0600 "$REPO/walvault.json"
chown -R "$WV_PG_USER:" "$REPO"

mkdir -p "$SRC"/data/media/public/{application-icons,flow-backgrounds,empty} \
  "$SRC"/data/media/public/uploads/2026/12 "$SRC"/certs "$SRC"/custom-templates \
  "$SRC"/blueprints/custom
head -c 40000 /dev/urandom >"$SRC/data/media/public/application-icons/grafana.png"
head -c 300000 /dev/urandom >"$SRC/data/media/public/flow-backgrounds/background.jpg"
printf 'user,login\nakadmin,2026-12-03\n' >"$SRC/data/media/public/uploads/2026/12/report.csv"
head -c 20971520 /dev/urandom >"$SRC/data/media/public/uploads/2026/12/export.bin"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=authentik -days 1 \
  -keyout "$SRC/certs/authentik.key" -out "$SRC/certs/authentik.pem" 2>/dev/null
chmod 0600 "$SRC/certs/authentik.key"
printf '{%% extends "login/base.html" %%}\n' >"$SRC/custom-templates/login.html"
printf 'version: 1\nmetadata:\n  name: custom\nentries: []\n' >"$SRC/blueprints/custom/flows.yaml"
ln -s ../../certs/authentik.pem "$SRC/data/media/current.pem"
# authentik runs as uid 1000 in its container: a uid with no name here.
chown -R 1000:1000 "$SRC/data"
chown -h 0:0 "$SRC/data/media/current.pem"
chown "$WV_PG_USER:" "$SRC/blueprints/custom/flows.yaml"
chmod 2750 "$SRC/data/media/public/uploads"
touch -h -d '2026-11-01 10:00:00.123456789' "$SRC/data/media/current.pem"
touch -d '2026-11-02 11:00:00.5' "$SRC/certs/authentik.pem"

wv_step "moment 1"
listing "$SRC" >"$T/moment1"
wv_capture "$T/s1" snap --dir "authentik=$SRC"
wv_assert_eq 0 "$WV_RC" "snapshot exits 0"
S1=$(json_field id <"$T/s1.out")
wv_assert_eq "8 14 1" "$(wv_json '$j->[0]{files}." ".$j->[0]{dirs}." ".$j->[0]{symlinks}' <"$T/s1.out")" \
  "snapshot 1 counts 8 files, 14 directories (the root too), 1 symlink"
wv_assert_eq "" "$(find "$REPO" ! -user "$WV_PG_USER")" "the repository stays owned by $WV_PG_USER"
wv_assert_eq "" "$(find "$REPO/store" -type f ! -perm 0600)" "objects are 0600"

wv_capture "$T/s1b" snap --dir "authentik=$SRC"
wv_assert_eq 0 "$(json_field new_objects <"$T/s1b.out")" "an unchanged tree adds no content objects"
wv_assert_eq "$(json_field objects <"$T/s1.out")" "$(json_field objects <"$T/s1b.out")" \
  "and uses the same objects"

wv_step "moment 2: a changed byte, a new upload, a new template, new modes and owners"
OBJECTS_BEFORE=$(find "$REPO/store" -type f | wc -l)
printf '\x01' | dd of="$SRC/data/media/public/uploads/2026/12/export.bin" bs=1 seek=10485760 conv=notrunc status=none
printf '<svg/>\n' >"$SRC/data/media/public/uploads/2026/12/icon.svg"
chown 1000:1000 "$SRC/data/media/public/uploads/2026/12/icon.svg"
printf '{%% block title %%}Hello{%% endblock %%}\n' >"$SRC/custom-templates/login.html"
chmod 0640 "$SRC/blueprints/custom/flows.yaml"
chown 0:1000 "$SRC/custom-templates"
listing "$SRC" >"$T/moment2"
wv_capture "$T/s2" snap --dir "authentik=$SRC"
S2=$(json_field id <"$T/s2.out")
NEW=$(json_field new_objects <"$T/s2.out")
wv_assert_match '^[34]$' "$NEW" "moment 2 adds 3 or 4 objects: svg, template, 1-2 chunks of the 20 MiB file"
wv_assert_eq "$((OBJECTS_BEFORE + NEW))" "$(find "$REPO/store" -type f | wc -l)" \
  "the store grew by exactly the new objects"

wv_step "moment 3: deletions"
rm -r "$SRC/data/media/public/uploads/2026"
rm "$SRC/data/media/current.pem"
listing "$SRC" >"$T/moment3"
wv_capture "$T/s3" snap --dir "authentik=$SRC"
S3=$(json_field id <"$T/s3.out")
wv_assert_eq 0 "$(json_field new_objects <"$T/s3.out")" "deleting files adds no objects"

wv_step "restore every moment"
for m in 1 2 3; do
  id_var=S$m
  wv_capture "$T/r$m" "$WALVAULT" snapshot --repo "$REPO" --restore "authentik=$T/restored$m" \
    --snapshot-id "${!id_var}"
  wv_assert_eq 0 "$WV_RC" "restore of moment $m exits 0"
  listing "$T/restored$m" >"$T/restored$m.list"
  wv_assert "moment $m restored byte for byte, metadata for metadata" \
    diff "$T/moment$m" "$T/restored$m.list"
done
# By time: a target between snapshot 2 and 3 picks 2; the newest without a target is 3.
T2=$(json_field time <"$T/s2.out")
wv_capture "$T/rt" "$WALVAULT" snapshot --repo "$REPO" --restore "authentik=$T/by-time" --target-time "$T2"
wv_assert_match "from snapshot $S2 \\(.*, 0 s before the target\\)" "$(cat "$T/rt.out")" \
  "--target-time at snapshot 2's time picks snapshot 2 and says how far it is"
wv_capture "$T/rn" "$WALVAULT" snapshot --repo "$REPO" --restore "authentik=$T/newest"
wv_assert_match "from snapshot $S3 \\([^,]*, the newest\\)" "$(cat "$T/rn.out")" \
  "no target: the newest snapshot"

wv_step "a file rewritten while it is read"
mkdir -p "$T/busy"
head -c 8388608 /dev/zero | tr '\0' 'a' >"$T/busy/log.bin"
(
  v=0
  while :; do
    v=$(((v + 1) % 26))
    c=$(printf '%b' "\\$(printf '%03o' $((97 + v)))")
    # In place, same size: only mtime/ctime (and the content) tell the versions apart.
    head -c 8388608 /dev/zero | tr '\0' "$c" | dd of="$T/busy/log.bin" bs=1M conv=notrunc status=none
  done
) &
WRITER=$!
sleep 0.5
wv_capture "$T/sb" snap --dir "busy=$T/busy"
kill "$WRITER"
wait "$WRITER" 2>/dev/null || true
wv_assert_eq 0 "$WV_RC" "a snapshot of a busy file still completes"
"$WALVAULT" snapshot --repo "$REPO" --restore "busy=$T/busy-restored" >/dev/null
if [[ $(json_field 'inconsistent}[0]{path' <"$T/sb.out") == log.bin ]]; then
  wv_assert_match "log.bin.*kept changing while it was read" "$(cat "$T/sb.err")" \
    "the busy file is recorded as inconsistent, with a warning"
else
  wv_assert_eq "8388608 1" "$(stat -c %s "$T/busy-restored/log.bin") $(fold -w 1 <"$T/busy-restored/log.bin" | sort -u | wc -l)" \
    "the busy file was recorded as one whole version"
fi

wv_step "SIGINT during a snapshot"
mkdir -p "$T/large"
head -c 400000000 /dev/urandom >"$T/large/blob.bin"
SNAPS_BEFORE=$(find "$REPO/snapshots" -mindepth 1 -maxdepth 1 | wc -l)
"$WALVAULT" snapshot --repo "$REPO" --dir "large=$T/large" >"$T/int.out" 2>"$T/int.err" &
SNAP_PID=$!
sleep 0.5
kill -INT "$SNAP_PID"
INT_RC=0
wait "$SNAP_PID" || INT_RC=$?
wv_assert_eq 1 "$INT_RC" "an interrupted snapshot exits 1"
wv_assert_eq "walvault: error: snapshot of large interrupted; nothing of it was kept" \
  "$(cat "$T/int.err")" "and says so"
wv_assert_eq "$SNAPS_BEFORE" "$(find "$REPO/snapshots" -mindepth 1 -maxdepth 1 | wc -l)" \
  "no snapshot directory is left"
wv_assert_eq "" "$(find "$REPO" -name '.tmp*' -o -name '*.tmp')" "no temporary file is left"
rm -r "$T/large"

wv_step "verify and a damaged object"
wv_capture "$T/v" "$WALVAULT" verify --repo "$REPO"
wv_assert_eq 0 "$WV_RC" "verify of an intact repository exits 0"
KEYSUM=$(sha256sum <"$SRC/certs/authentik.key" | cut -d' ' -f1)
OBJ=$REPO/store/${KEYSUM:0:2}/$KEYSUM.lz4
wv_assert "the key's object exists under its SHA-256" test -f "$OBJ"
if command -v lz4 >/dev/null; then
  wv_assert "objects are standard lz4 frames (lz4 -t)" lz4 -t "$OBJ"
fi
SIZE=$(stat -c %s "$OBJ")
printf 'X' | dd of="$OBJ" bs=1 seek=$((SIZE / 2)) conv=notrunc status=none
wv_capture "$T/v2" "$WALVAULT" verify --repo "$REPO"
wv_assert_eq 1 "$WV_RC" "verify exits 1 on a damaged object"
wv_assert_match "DAMAGED snapshot $S1, file \"certs/authentik.key\": object $OBJ is damaged" \
  "$(cat "$T/v2.out")" "verify names the snapshot, the file and the object"
wv_assert_walvault_error "$T/v2.err" "verify's failure follows the error contract"
wv_capture "$T/rd" "$WALVAULT" snapshot --repo "$REPO" --restore "authentik=$T/damaged" --snapshot-id "$S1"
wv_assert_eq 1 "$WV_RC" "restore of a snapshot with a damaged object exits 1"
wv_assert_match "^walvault: error: snapshot $S1 cannot be restored: \"certs/authentik.key\" \\(object $OBJ is damaged" \
  "$(head -n 1 "$T/rd.err")" "restore refuses and names the file"
wv_assert_walvault_error "$T/rd.err" "restore's refusal follows the error contract"
wv_assert_eq absent "$(wv_fingerprint "$T/damaged")" "nothing was written"

wv_step "bad input"
wv_capture "$T/b1" "$WALVAULT" snapshot --repo "$REPO"
wv_assert_eq 2 "$WV_RC" "no --dir: usage error"
wv_assert_walvault_error "$T/b1.err" "usage error follows the contract"
wv_capture "$T/b2" "$WALVAULT" snapshot --repo "$REPO" --dir "data=$T/absent"
wv_assert_eq 1 "$WV_RC" "an absent directory: exit 1"
wv_assert_walvault_error "$T/b2.err" "absent directory error follows the contract"
wv_capture "$T/b3" "$WALVAULT" snapshot --repo "$REPO" --dir "no/slash=$SRC"
wv_assert_eq 2 "$WV_RC" "an invalid name: exit 2"
BEFORE=$(wv_fingerprint "$T/restored3")
wv_capture "$T/b4" "$WALVAULT" snapshot --repo "$REPO" --restore "authentik=$T/restored3"
wv_assert_eq 1 "$WV_RC" "restore into a non-empty directory: exit 1"
wv_assert_eq "$BEFORE" "$(wv_fingerprint "$T/restored3")" "and it is left as it was"
wv_capture "$T/b5" "$WALVAULT" snapshot --repo "$REPO" --restore "authentik=$T/early" --target-time '2000-01-01 00:00:00+00'
wv_assert_eq 3 "$WV_RC" "no snapshot at or before the target: exit 3"
wv_assert_walvault_error "$T/b5.err" "exit 3 follows the error contract"
wv_assert_eq absent "$(wv_fingerprint "$T/early")" "nothing was written"
wv_capture "$T/b6" "$WALVAULT" snapshot --repo "$REPO" --restore "certs=$T/early"
wv_assert_eq 3 "$WV_RC" "a name without snapshots: exit 3"
wv_assert_eq "" "$(find "$REPO" -name '*.tmp*')" "no temporary file is left in the repository"

wv_summary snapshot_basic
