#!/usr/bin/env bash
# authentik's database and its four directories put back to the same moment (real PostgreSQL
# 15, 1 MB WAL segments):
#
#   schema + seed -> archive (background) -> walvault backup --dir (x4: data, certs,
#   custom-templates, blueprints; moment 0) -> moment 1: rows + files changed, walvault
#   snapshot, the server's clock T1 -> moment 2: rows + files changed and deleted, a cert
#   rotated, snapshot, T2 -> a new directory snapshotted only now (media-cache).
#
#   * restore --target-time T1 / T2 / --target immediate with --restore-dir for all four:
#     the database holds exactly the rows of that moment (--verify) and every directory is the
#     moment's tree byte for byte, metadata for metadata; the plan names the snapshots used and
#     how long before the target they were taken;
#   * info --json lists the snapshots; backup.json records the backup's snapshots;
#   * refusals before anything is written: a name without a snapshot before the target
#     (exit 3), a restore directory inside the data directory (exit 2), a damaged object
#     (exit 1, naming the file); verify names the damaged object.
#
# Run as root (the directories hold files of several owners). Prints `snapshot_pitr: N passed,
# M failed` last.
# SC2016: Perl snippets are single-quoted on purpose.
# shellcheck disable=SC2016
set -euo pipefail

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! wv_is_root; then
  echo "snapshot_pitr: skipped (needs root to create files of several owners)"
  exit 0
fi
wv_test_begin snapshot_pitr
wv_init_tmp
wv_require_walvault
PG=$WV_TMP/source
REPO=$WV_TMP/repo
OUT=$WV_TMP/out
SRC=$WV_TMP/authentik
FIXTURES=$WV_REPO_ROOT/tests/fixtures
DIRS=(data certs custom-templates blueprints)
mkdir -p "$OUT"
wv_chown_pg "$OUT"
Q() { wv_psql "$PG" "$1"; }
show_output() { sed 's/^/    | /' "$1.out" "$1.err" | head -n 60 >&2; }
server_now() { Q "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '+00:00'"; }
past() { [[ $(Q "select clock_timestamp() > timestamptz '$1' + interval '300 ms'") == t ]]; }
FP_SQL="select md5(concat_ws('|',
  (select md5(coalesce(string_agg(x::text, ',' order by id), '')) from authentik_core_user x),
  (select md5(coalesce(string_agg(x::text, ',' order by token_uuid), '')) from authentik_core_token x)))"
fingerprint() { Q "$FP_SQL"; }
# listing DIR — every entry with type, mode, owner, mtime (ns), size, link target, content.
listing() {
  (
    cd "$1"
    find . -printf '%p|%y|%m|%U|%G|%T@|%s|%l\n' | LC_ALL=C sort
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
  )
}
save_moment() {
  local d
  for d in "${DIRS[@]}"; do listing "$SRC/$d" >"$OUT/moment$1.$d"; done
}
restore_dir_args() {
  local d
  for d in "${DIRS[@]}"; do printf -- '--restore-dir\n%s=%s\n' "$d" "$1/$d"; done
}

wv_step "source cluster, archive, authentik's directories"
wv_pg_init "$PG" --wal-segsize=1
wv_pg_start "$PG"
CONN=$(wv_connstr "$PG")
wv_psql_file "$PG" "$FIXTURES/authentik_schema.sql" >/dev/null
wv_psql_file "$PG" "$FIXTURES/authentik_seed.sql" -v users=100 -v events=500 -v groups=5 >/dev/null
wv_start_bg "$WV_TMP/archive.log" "$WALVAULT" archive --repo "$REPO" --dbname "$CONN"
ARCHIVER=$WV_LAST_BG_PID
wv_wait_for -m "archive did not create the repository" test -f "$REPO/walvault.json"

mkdir -p "$SRC"/data/media/public/{application-icons,flow-backgrounds,empty} \
  "$SRC"/data/media/public/uploads "$SRC"/certs "$SRC"/custom-templates "$SRC"/blueprints/custom
head -c 30000 /dev/urandom >"$SRC/data/media/public/application-icons/gitea.png"
head -c 200000 /dev/urandom >"$SRC/data/media/public/flow-backgrounds/bg.jpg"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=authentik -days 1 \
  -keyout "$SRC/certs/tls.key" -out "$SRC/certs/tls.pem" 2>/dev/null
printf '<h1>{{ title }}</h1>\n' >"$SRC/custom-templates/email.html"
printf 'version: 1\nentries: []\n' >"$SRC/blueprints/custom/tenant.yaml"
ln -s ../../certs/tls.pem "$SRC/data/media/tls.pem"
# walvault backup runs as postgres: everything it snapshots must be readable by postgres.
chown -R "$WV_PG_USER:" "$SRC"
chown 1000:1000 "$SRC/data/media/public/flow-backgrounds/bg.jpg"
chmod 0600 "$SRC/certs/tls.key"
chmod 0750 "$SRC/certs"

wv_step "moment 0: backup --dir"
wv_capture "$OUT/backup" wv_walvault backup --repo "$REPO" --dbname "$CONN" --checkpoint fast \
  --dir "data=$SRC/data" --dir "certs=$SRC/certs" --dir "custom-templates=$SRC/custom-templates" \
  --dir "blueprints=$SRC/blueprints" --exclude '*.swp'
[[ $WV_RC -eq 0 ]] || show_output "$OUT/backup"
wv_assert_eq 0 "$WV_RC" "backup --dir exits 0"
BID=$(find "$REPO/backups" -mindepth 1 -maxdepth 1 -printf '%f\n' | LC_ALL=C sort | tail -n 1)
BJSON=$REPO/backups/$BID/backup.json
wv_assert_eq 4 "$(wv_json 'scalar @{$j->{snapshots}}' <"$BJSON")" "backup.json records its 4 snapshots"
for id in $(wv_json '@{$j->{snapshots}}' <"$BJSON"); do
  wv_assert_eq "$BID" "$(wv_json '$j->{backup}' <"$REPO/snapshots/$id/snapshot.json")" \
    "snapshot $id names backup $BID"
done
FP0=$(fingerprint)
save_moment 0

wv_step "moment 1: rows and files change"
Q "insert into authentik_core_user (uuid, username, name, email, password)
     values (md5('user:alice')::uuid, 'alice', 'Alice', 'alice@example.org', 'x')" >/dev/null
head -c 5000 /dev/urandom >"$SRC/data/media/public/application-icons/alice.png"
printf '<h1>{{ title }} (v2)</h1>\n' >"$SRC/custom-templates/email.html"
chown -R "$WV_PG_USER:" "$SRC/data/media/public/application-icons" "$SRC/custom-templates"
wv_capture "$OUT/snap1" "$WALVAULT" snapshot --repo "$REPO" --json \
  --dir "data=$SRC/data" --dir "certs=$SRC/certs" --dir "custom-templates=$SRC/custom-templates" \
  --dir "blueprints=$SRC/blueprints"
wv_assert_eq 0 "$WV_RC" "snapshot (as root) exits 0"
wv_assert_eq "0 0" "$(wv_json '$j->[1]{new_objects}." ".$j->[3]{new_objects}' <"$OUT/snap1.out")" \
  "unchanged certs and blueprints add no objects"
S1_DATA=$(wv_json '$j->[0]{id}' <"$OUT/snap1.out")
FP1=$(fingerprint)
save_moment 1
T1=$(server_now)
wv_wait_for -t 10 past "$T1"

wv_step "moment 2: more rows, a deleted upload, a rotated certificate"
Q "insert into authentik_core_token (token_uuid, identifier, key, intent, user_id)
     select md5('token:alice')::uuid, 'alice-api', 'k', 'api', id from authentik_core_user where username = 'alice'" >/dev/null
rm "$SRC/data/media/public/application-icons/gitea.png"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=authentik2 -days 1 \
  -keyout "$SRC/certs/tls.key" -out "$SRC/certs/tls.pem" 2>/dev/null
chown "$WV_PG_USER:" "$SRC/certs/tls.key" "$SRC/certs/tls.pem"
chmod 0600 "$SRC/certs/tls.key"
wv_capture "$OUT/snap2" "$WALVAULT" snapshot --repo "$REPO" --json \
  --dir "data=$SRC/data" --dir "certs=$SRC/certs" --dir "custom-templates=$SRC/custom-templates" \
  --dir "blueprints=$SRC/blueprints"
wv_assert_eq 0 "$WV_RC" "snapshot 2 exits 0"
S2_CERTS=$(wv_json '$j->[1]{id}' <"$OUT/snap2.out")
FP2=$(fingerprint)
save_moment 2
T2=$(server_now)
wv_wait_for -t 10 past "$T2"
mkdir -p "$WV_TMP/media-cache"
echo cached >"$WV_TMP/media-cache/x"
"$WALVAULT" snapshot --repo "$REPO" --dir "media-cache=$WV_TMP/media-cache" >/dev/null
# A time target needs a commit after it in the archive.
Q "insert into authentik_core_user (uuid, username, name, email, password)
     values (md5('user:later')::uuid, 'later', 'Later', 'later@example.org', 'x')" >/dev/null
Q "select pg_switch_wal()" >/dev/null
END_LSN=$(Q "select pg_current_wal_lsn()")
caught_up() {
  local to
  to=$(wv_walvault info --repo "$REPO" --json 2>/dev/null | wv_json '$j->{recoverable}{to_lsn}' || true)
  [[ -n $to && $to != null ]] && wv_lsn_ge "$to" "$END_LSN"
}
wv_wait_for -t 60 -m "the archive never reached $END_LSN" caught_up
wv_stop_bg "$ARCHIVER" INT 30 || true

wv_step "info lists the snapshots"
wv_capture "$OUT/info" wv_walvault info --repo "$REPO" --json
wv_assert_eq 13 "$(wv_json 'scalar @{$j->{snapshots}}' <"$OUT/info.out")" "info --json lists 13 snapshots"
wv_assert_eq "id name time files bytes stored_bytes" \
  "$(wv_json 'join " ", grep { exists $j->{snapshots}[0]{$_} } qw(id name time files bytes stored_bytes)' <"$OUT/info.out")" \
  "each with id, name, time, files, bytes, stored_bytes"
wv_assert_eq "$BID" "$(wv_json '$j->{snapshots}[0]{backup}' <"$OUT/info.out")" \
  "the backup's snapshots say so"
wv_capture "$OUT/info-text" wv_walvault info --repo "$REPO"
wv_assert_match "certs: 3 snapshots, [^;]+; newest $S2_CERTS \\(" "$(cat "$OUT/info-text.out")" \
  "info's text sums them up per name"

# restored NAME MOMENT FINGERPRINT RESTORE_ARGS... — restore --verify with --restore-dir for
# the four directories; the rows must be FINGERPRINT and the trees those of MOMENT.
N=0
restored() {
  local name=$1 moment=$2 want=$3 dir d
  shift 3
  N=$((N + 1))
  dir=$WV_TMP/r$N
  printf '%s\n' "select ($FP_SQL) = '$want';" >"$OUT/$name.sql"
  wv_chown_pg "$OUT/$name.sql"
  mapfile -t dir_args < <(restore_dir_args "$dir/files")
  wv_capture "$OUT/$name" "$WALVAULT" restore --repo "$REPO" --target-dir "$dir/pg" "$@" \
    "${dir_args[@]}" --verify --verify-sql "$OUT/$name.sql" --json
  [[ $WV_RC -eq 0 ]] || show_output "$OUT/$name"
  wv_assert_eq 0 "$WV_RC" "$name: restore --verify passes: the rows of moment $moment"
  for d in "${DIRS[@]}"; do
    listing "$dir/files/$d" >"$OUT/$name.$d.restored"
    wv_assert "$name: $d is moment $moment's tree, byte for byte and metadata for metadata" \
      diff "$OUT/moment$moment.$d" "$OUT/$name.$d.restored"
  done
}
J() { wv_json "$2" <"$OUT/$1.out"; }

wv_step "restore the database and the directories to each moment"
restored at-T1 1 "$FP1" --target-time "$T1"
wv_assert_eq "$S1_DATA" "$(J at-T1 '(grep { $_->{name} eq "data" } @{$j->{snapshots}})[0]{snapshot}')" \
  "at-T1: the plan names data's snapshot of moment 1"
wv_assert_eq 1 "$(J at-T1 '(grep { $_->{before_target_seconds} >= 0 && $_->{before_target_seconds} < 60 } @{$j->{snapshots}}) == 4 ? 1 : 0')" \
  "at-T1: and says how long before the target each was taken"
restored at-T2 2 "$FP2" --target-time "$T2"
wv_assert_eq "$S2_CERTS" "$(J at-T2 '(grep { $_->{name} eq "certs" } @{$j->{snapshots}})[0]{snapshot}')" \
  "at-T2: the rotated certificate's snapshot"
restored immediate 0 "$FP0" --target immediate
wv_assert_eq "$(wv_json 'join " ", sort @{$j->{snapshots}}' <"$BJSON")" \
  "$(J immediate 'join " ", sort map { $_->{snapshot} } @{$j->{snapshots}}')" \
  "--target immediate: the backup's own snapshots"

wv_step "dry run, text output"
wv_capture "$OUT/dry" "$WALVAULT" restore --repo "$REPO" --target-dir "$WV_TMP/dry/pg" \
  --target-time "$T1" --restore-dir "certs=$WV_TMP/dry/certs" --dry-run
wv_assert_eq 0 "$WV_RC" "dry run exits 0"
wv_assert_match "directory +certs -> $WV_TMP/dry/certs: snapshot [^ ]+-certs \\([^,]+, [0-9]+ s before the target\\)" \
  "$(cat "$OUT/dry.out")" "the dry run names the snapshot and its distance from the target"
wv_assert_eq absent "$(wv_fingerprint "$WV_TMP/dry")" "and writes nothing"

wv_step "refusals before anything is written"
wv_capture "$OUT/no-snap" "$WALVAULT" restore --repo "$REPO" --target-dir "$WV_TMP/x/pg" \
  --target-time "$T2" --restore-dir "media-cache=$WV_TMP/x/cache" --restore-dir "data=$WV_TMP/x/data"
wv_assert_eq 3 "$WV_RC" "a name with no snapshot at or before the target: exit 3"
wv_assert_match "^walvault: error: no snapshot of \"media-cache\" was taken at or before" \
  "$(head -n 1 "$OUT/no-snap.err")" "and the error says which"
wv_assert_walvault_error "$OUT/no-snap.err" "exit 3 follows the error contract"
wv_assert_eq absent "$(wv_fingerprint "$WV_TMP/x")" "nothing was written"
wv_capture "$OUT/inside" "$WALVAULT" restore --repo "$REPO" --target-dir "$WV_TMP/x/pg" \
  --restore-dir "data=$WV_TMP/x/pg/data"
wv_assert_eq 2 "$WV_RC" "a restore directory inside the data directory: exit 2"
wv_assert_eq absent "$(wv_fingerprint "$WV_TMP/x")" "nothing was written"

KEYSUM=$(sha256sum <"$SRC/certs/tls.key" | cut -d' ' -f1)
OBJ=$REPO/store/${KEYSUM:0:2}/$KEYSUM.lz4
wv_assert "the rotated key's object is in the store" test -f "$OBJ"
SIZE=$(stat -c %s "$OBJ")
printf 'X' | dd of="$OBJ" bs=1 seek=$((SIZE / 2)) conv=notrunc status=none
mapfile -t dir_args < <(restore_dir_args "$WV_TMP/x/files")
wv_capture "$OUT/damaged" "$WALVAULT" restore --repo "$REPO" --target-dir "$WV_TMP/x/pg" \
  --target-time "$T2" "${dir_args[@]}"
wv_assert_eq 1 "$WV_RC" "a damaged object: exit 1"
wv_assert_match "^walvault: error: snapshot $S2_CERTS cannot be restored: \"tls.key\" \\(object $OBJ is damaged" \
  "$(head -n 1 "$OUT/damaged.err")" "the refusal names the file and the object"
wv_assert_eq absent "$(wv_fingerprint "$WV_TMP/x")" "nothing was written, not even the database"
wv_capture "$OUT/verify" wv_walvault verify --repo "$REPO"
wv_assert_eq 1 "$WV_RC" "verify exits 1"
wv_assert_match "DAMAGED snapshot $S2_CERTS, file \"tls.key\": object $OBJ" "$(cat "$OUT/verify.out")" \
  "verify names the snapshot, the file and the object"

echo
wv_summary snapshot_pitr
