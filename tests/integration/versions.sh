#!/usr/bin/env bash
# The main job and a timeline switch against a real server of one PostgreSQL major (14 to
# 18): ctest registers it once per major as integration.versions_<major>
# (tests/CMakeLists.txt). 1 MB WAL segments:
#
#   initdb with that major's binaries, a tablespace; archive (with a replication slot) in the
#   background; backup; phase A; T1; phase B (rows in the main directory and the tablespace);
#   restore to T1 with --verify (walvault finds the same major's server by itself), start
#   the result: exactly phase A; it is on timeline 2 now;
#   archive the restored server into the same repository (00000002.history, timeline 2);
#   phase D; T2; phase E; restore to T2 across the switch with --verify, start: A and D,
#   neither B (timeline 1 only) nor E;
#   refusals: --pg-bindir of another major, a cluster of another major archived into the
#   repository (what pg_upgrade leaves: a new system identifier and a new major).
#
# Server binaries: Debian's postgresql-15 for 15, scripts/fetch-pg-versions.sh's cache for
# the others (scripts/test.sh fetches them). Client tools (psql) are Debian's 15 for all.
#
# Run: bash tests/integration/versions.sh MAJOR   (WALVAULT=..., WV_KEEP_TMP=1 as usual).
# SC2016: Perl snippets are single-quoted on purpose.
# shellcheck disable=SC2016
set -euo pipefail

MAJOR=${1:-}
[[ $MAJOR =~ ^[0-9]+$ ]] || {
  echo "usage: $0 MAJOR (14 to 18)" >&2
  exit 2
}
WV_SELF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ $MAJOR == 15 ]]; then
  PGBIN=/usr/lib/postgresql/15/bin
else
  PGBIN=$(bash "$WV_SELF_DIR/../../scripts/fetch-pg-versions.sh" --print-dir)/$MAJOR/bin
fi
export PGBIN
# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAME=versions_$MAJOR
wv_test_begin "$NAME"
wv_init_tmp
if [[ ! -x $PGBIN/postgres ]]; then
  wv_fail "no PostgreSQL $MAJOR server binaries in $PGBIN; run scripts/fetch-pg-versions.sh $MAJOR (scripts/test.sh does) or install postgresql-$MAJOR"
fi
wv_require_walvault
PG=$WV_TMP/source
REPO=$WV_TMP/repo
OUT=$WV_TMP/out
mkdir -p "$OUT"
wv_chown_pg "$OUT"

require() {
  local msg=$1
  shift
  if ! "$@"; then
    wv__failed "$msg" "command failed: $*"
    exit 1 # the EXIT trap prints the summary
  fi
  wv__pass "$msg"
}
show_output() { sed 's/^/    | /' "$1.out" "$1.err" | head -n 60 >&2; }
now_utc() { wv_psql "$1" "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '+00:00'"; }
wait_past() { # DATADIR TIME: the server's clock is past TIME (by a margin)
  local i
  for ((i = 0; i < 100; i++)); do
    [[ $(wv_psql "$1" "select clock_timestamp() > timestamptz '$2' + interval '300 ms'") == t ]] && return 0
    sleep 0.05
  done
  wv_fail "the server clock did not pass $2"
}
insert_phase() { # DATADIR PHASE FROM TO: rows in t (main directory) and tt (tablespace ts1)
  wv_psql "$1" "insert into t select i, '$2' from generate_series($3, $4) as i;
    insert into tt select i, '$2' from generate_series($3, $4) as i" >/dev/null
}
archived_to() { # LSN TIMELINE
  local end
  end=$(wv_info_end_lsn "$REPO" "$2" || true)
  [[ -n $end ]] && wv_lsn_ge "$end" "$1"
}
phases() { # DATADIR [TABLE=t]
  wv_psql "$1" "select string_agg(phase || ':' || n, ' ' order by phase) from (select phase, count(*) n from ${2:-t} group by phase) s"
}
# restore --verify into DIR, then start it as an ordinary cluster.
restore_verify_start() { # NAME DIR ARGS...
  local name=$1 dir=$2
  shift 2
  wv_capture "$OUT/$name" wv_walvault restore --repo "$REPO" --target-dir "$dir" \
    --target-action promote --verify "$@"
  [[ $WV_RC -eq 0 ]] || show_output "$OUT/$name"
  require "$name: restore --verify exits 0" test "$WV_RC" -eq 0
  wv_assert_match "verify +PASSED" "$(cat "$OUT/$name.out")" "$name: the verifier reports success"
  wv_assert_match "server binaries +$PGBIN" "$(cat "$OUT/$name.out")" "$name: verified with PostgreSQL $MAJOR's server ($PGBIN)"
  wv_assert_eq "$MAJOR" "$(cat "$dir/PG_VERSION")" "$name: the restored directory is PostgreSQL $MAJOR"
  wv_pg_register "$dir"
  wv_pg_start "$dir"
  wv_wait_for -t 60 -m "$name: the restored cluster does not accept queries" \
    wv_psql "$dir" "select 1"
}

# ---------------------------------------------------------------- timeline 1
wv_step "PostgreSQL $MAJOR ($("$PGBIN/postgres" --version)): initdb, archive, backup"
wv_pg_init "$PG" --wal-segsize=1
wv_pg_start "$PG"
wv_assert_eq "$MAJOR" "$(wv_psql "$PG" "select current_setting('server_version_num')::int / 10000")" \
  "the source server runs PostgreSQL $MAJOR"
# A tablespace: PostgreSQL 14 sends it as a COPY stream of its own, 15+ as a second archive.
mkdir -p "$WV_TMP/ts_src"
wv_chown_pg "$WV_TMP/ts_src"
wv_psql "$PG" "create tablespace ts1 location '$WV_TMP/ts_src'" >/dev/null
TS_OID=$(wv_psql "$PG" "select oid from pg_tablespace where spcname = 'ts1'")
wv_psql "$PG" "create table t (id int primary key, phase text not null)" >/dev/null
wv_psql "$PG" "create table tt (id int primary key, phase text not null) tablespace ts1" >/dev/null
SYSID=$(wv_psql "$PG" "select system_identifier from pg_control_system()")
# initdb turns data checksums on by default from PostgreSQL 18 (wv_pg_init passes neither
# --data-checksums nor --no-data-checksums): the server then verifies every page it sends
# for BASE_BACKUP, and the restored cluster keeps the setting (pg_control comes with it).
CHECKSUMS=off
((MAJOR >= 18)) && CHECKSUMS=on
wv_assert_eq "$CHECKSUMS" "$(wv_psql "$PG" "show data_checksums")" \
  "PostgreSQL $MAJOR's initdb default: data checksums $CHECKSUMS"
wv_start_bg "$WV_TMP/archive1.log" "$WALVAULT" archive --repo "$REPO" --dbname "$(wv_connstr "$PG")" \
  --slot walvault --create-slot
ARCH1=$WV_LAST_BG_PID
repo_created() {
  wv_bg_alive "$ARCH1" || { cat "$WV_TMP/archive1.log" >&2; wv_fail "walvault archive exited early"; }
  [[ -f $REPO/walvault.json ]]
}
wv_wait_for -m "archive did not create the repository" repo_created
# The repository comes first, the slot right after it: wait for the slot, then check it.
slot_created() {
  wv_bg_alive "$ARCH1" || { cat "$WV_TMP/archive1.log" >&2; wv_fail "walvault archive exited early"; }
  [[ $(wv_psql "$PG" "select count(*) from pg_replication_slots where slot_name = 'walvault'") == 1 ]]
}
wv_wait_for -m "archive --create-slot did not create slot walvault" slot_created
wv_assert_eq physical "$(wv_psql "$PG" "select slot_type from pg_replication_slots where slot_name = 'walvault'")" \
  "archive --create-slot made a physical slot"
wv_capture "$OUT/backup" wv_walvault backup --repo "$REPO" --dbname "$(wv_connstr "$PG")" --checkpoint fast
[[ $WV_RC -eq 0 ]] || show_output "$OUT/backup"
require "backup exits 0" test "$WV_RC" -eq 0
wv_capture "$OUT/info" wv_walvault info --repo "$REPO" --json
require "info --json exits 0" test "$WV_RC" -eq 0
wv_assert_match "^$MAJOR\\." "$(wv_json '$j->{pg_version}' <"$OUT/info.out")" "info: pg_version is PostgreSQL $MAJOR"
wv_assert_eq "$SYSID" "$(wv_json '$j->{system_identifier}' <"$OUT/info.out")" "info: the server's system identifier"
wv_assert_eq complete "$(wv_json '$j->{backups}[0]{status}' <"$OUT/info.out")" "info: the backup is complete"
wv_assert_eq "$TS_OID" "$(wv_json '$j->{tablespaces}[0]{oid} // "none"' <"$REPO/backups/$(wv_json '$j->{backups}[0]{id}' <"$OUT/info.out")/backup.json")" \
  "the backup holds tablespace $TS_OID"
BACKUP_ID=$(wv_json '$j->{backups}[0]{id}' <"$OUT/info.out")
# Manifest version 2 (17 and later) carries the system identifier; walvault keeps either as sent.
MANIFEST_HEAD=$(head -c 200 "$REPO/backups/$BACKUP_ID/backup_manifest")
if ((MAJOR >= 17)); then
  wv_assert_match '"PostgreSQL-Backup-Manifest-Version": 2,' "$MANIFEST_HEAD" "the server's manifest (version 2) is kept"
  wv_assert_match "\"System-Identifier\": $SYSID," "$MANIFEST_HEAD" "manifest version 2 names the server's system identifier"
else
  wv_assert_match '"PostgreSQL-Backup-Manifest-Version": 1,' "$MANIFEST_HEAD" "the server's manifest (version 1) is kept"
fi

wv_step "phase A, T1, phase B"
insert_phase "$PG" A 1 100
T1=$(now_utc "$PG")
wait_past "$PG" "$T1"
insert_phase "$PG" B 101 200
END1=$(wv_psql "$PG" "select pg_current_wal_lsn()")
wv_psql "$PG" "select pg_switch_wal()" >/dev/null
wv_wait_for -t 60 -m "timeline 1 was not archived up to $END1" archived_to "$END1" 1
wv__pass "timeline 1 archived up to $END1"
wv_stop_bg "$ARCH1" INT 30 || true
wv_pg_stop "$PG"

# ---------------------------------------------------------------- refusals before writing
wv_step "refusals that write nothing"
OTHER=15
[[ $MAJOR == 15 ]] && OTHER=16
OTHER_BIN=/usr/lib/postgresql/15/bin
[[ $OTHER == 15 ]] || OTHER_BIN=$(bash "$WV_SELF_DIR/../../scripts/fetch-pg-versions.sh" --print-dir)/$OTHER/bin
if [[ -x $OTHER_BIN/postgres ]]; then
  wv_capture "$OUT/wrong-bindir" wv_walvault restore --repo "$REPO" --target-dir "$WV_TMP/wrong" \
    --target-time "$T1" --tablespace-dir "$TS_OID=$WV_TMP/ts_wrong" --verify --pg-bindir "$OTHER_BIN"
  wv_assert_eq 2 "$WV_RC" "--pg-bindir of PostgreSQL $OTHER: usage error (exit 2)"
  wv_assert_walvault_error "$OUT/wrong-bindir.err" "--pg-bindir of another major: one error line + HINT"
  wv_assert_match "holds PostgreSQL $OTHER, but the restored cluster is PostgreSQL $MAJOR" \
    "$(cat "$OUT/wrong-bindir.err")" "--pg-bindir of another major: the message names both majors"
  wv_assert_eq absent "$(wv_fingerprint "$WV_TMP/wrong")" "--pg-bindir of another major: nothing written"
else
  wv__failed "PostgreSQL $OTHER binaries for the wrong --pg-bindir case" "none in $OTHER_BIN"
fi

# No server binaries of the repository's major anywhere (a copy that claims major 99):
# refused before the target directory is created.
NOBIN_REPO=$WV_TMP/repo-99
cp -a "$REPO" "$NOBIN_REPO"
perl -0pi -e 's/"pg_version_num": *\d+/"pg_version_num": 990001/' "$NOBIN_REPO/walvault.json"
wv_capture "$OUT/no-bindir" wv_walvault restore --repo "$NOBIN_REPO" --target-dir "$WV_TMP/nobin" \
  --target-time "$T1" --tablespace-dir "$TS_OID=$WV_TMP/ts_nobin" --verify
wv_assert_eq 1 "$WV_RC" "no server binaries of the cluster's major: exit 1"
wv_assert_walvault_error "$OUT/no-bindir.err" "no server binaries: one error line + HINT"
wv_assert_match "no PostgreSQL 99 server binaries found" "$(cat "$OUT/no-bindir.err")" "no server binaries: the message names the major"
wv_assert_match "HINT: install PostgreSQL 99's server" "$(cat "$OUT/no-bindir.err")" "no server binaries: the hint says what to install"
wv_assert_eq absent "$(wv_fingerprint "$WV_TMP/nobin")" "no server binaries: nothing written"
rm -rf "$NOBIN_REPO"

# ---------------------------------------------------------------- restore to T1
wv_step "restore to T1 (--verify), start"
R1=$WV_TMP/r1
restore_verify_start r1 "$R1" --target-time "$T1" --tablespace-dir "$TS_OID=$WV_TMP/ts_r1"
wv_assert_eq "A:100" "$(phases "$R1")" "restored to T1: exactly phase A"
wv_assert_eq "A:100" "$(phases "$R1" tt)" "restored to T1: exactly phase A in the tablespace"
wv_assert_eq "$WV_TMP/ts_r1" "$(readlink "$R1/pg_tblspc/$TS_OID")" "the tablespace was restored to its new directory"
wv_assert_eq 2 "$(wv_psql "$R1" "select timeline_id from pg_control_checkpoint()")" "the restored cluster is on timeline 2"
wv_assert_eq "$SYSID" "$(wv_psql "$R1" "select system_identifier from pg_control_system()")" \
  "the restored cluster keeps the system identifier"
wv_assert_eq "$CHECKSUMS" "$(wv_psql "$R1" "show data_checksums")" \
  "the restored cluster keeps data checksums $CHECKSUMS"

# ---------------------------------------------------------------- timeline 2
wv_step "timeline 2: archive the restored server into the same repository, phase D, T2, phase E"
wv_start_bg "$WV_TMP/archive2.log" "$WALVAULT" archive --repo "$REPO" --dbname "$(wv_connstr "$R1")" \
  --slot walvault --create-slot
ARCH2=$WV_LAST_BG_PID
insert_phase "$R1" D 301 400
T2=$(now_utc "$R1")
wait_past "$R1" "$T2"
insert_phase "$R1" E 401 500
END2=$(wv_psql "$R1" "select pg_current_wal_lsn()")
wv_psql "$R1" "select pg_switch_wal()" >/dev/null
archived2() {
  wv_bg_alive "$ARCH2" || { cat "$WV_TMP/archive2.log" >&2; wv_fail "walvault archive (timeline 2) exited early"; }
  archived_to "$END2" 2
}
wv_wait_for -t 60 -m "timeline 2 was not archived up to $END2" archived2
wv__pass "timeline 2 archived up to $END2"
wv_stop_bg "$ARCH2" INT 30 || true
wv_pg_stop "$R1"
wv_assert "00000002.history archived" test -f "$REPO/wal/00000002.history"
wv_capture "$OUT/info2" wv_walvault info --repo "$REPO" --json
wv_assert_eq 1 "$(wv_json '(grep { $_->{timeline} == 2 } @{$j->{timelines}})[0]{parent}' <"$OUT/info2.out")" \
  "info: timeline 2's parent is timeline 1"

wv_step "restore to T2 across the switch (--verify), start"
R2=$WV_TMP/r2
restore_verify_start r2 "$R2" --target-time "$T2" --tablespace-dir "$TS_OID=$WV_TMP/ts_r2"
wv_assert_eq "A:100 D:100" "$(phases "$R2")" "restored to T2: phases A and D, not B (timeline 1 only), not E"
wv_assert_eq "A:100 D:100" "$(phases "$R2" tt)" "restored to T2: the same in the tablespace"
wv_assert_eq 3 "$(wv_psql "$R2" "select timeline_id from pg_control_checkpoint()")" "promoted to timeline 3"
wv_pg_stop "$R2"

# ---------------------------------------------------------------- another major, same repo
# What pg_upgrade leaves behind: a cluster of another major with a new system identifier.
wv_step "a PostgreSQL $OTHER cluster archived into this PostgreSQL $MAJOR repository is refused"
if [[ -x $OTHER_BIN/postgres ]]; then
  UP=$WV_TMP/upgraded
  PGBIN=$OTHER_BIN wv_pg_init "$UP" --wal-segsize=1
  PGBIN=$OTHER_BIN wv_pg_start "$UP"
  FP=$(wv_fingerprint "$REPO")
  wv_capture "$OUT/mix" wv_walvault archive --repo "$REPO" --dbname "$(wv_connstr "$UP")" --no-loop
  wv_assert_eq 1 "$WV_RC" "archive of a PostgreSQL $OTHER server into the repository exits 1"
  wv_assert_walvault_error "$OUT/mix.err" "mixed majors: one error line + HINT"
  sed 's/^/    | /' "$OUT/mix.err"
  wv_assert_match "holds PostgreSQL $MAJOR \\(database system $SYSID\\), but the server runs PostgreSQL $OTHER" \
    "$(cat "$OUT/mix.err")" "mixed majors: the message names both majors and the system identifier"
  wv_assert_match "HINT: .*pg_upgrade.*new repository" "$(cat "$OUT/mix.err")" "mixed majors: the hint says to start a new repository"
  wv_capture "$OUT/mix-backup" wv_walvault backup --repo "$REPO" --dbname "$(wv_connstr "$UP")"
  wv_assert_eq 1 "$WV_RC" "backup of a PostgreSQL $OTHER server into the repository exits 1"
  wv_assert_eq "$FP" "$(wv_fingerprint "$REPO")" "mixed majors: the repository is unchanged"
  PGBIN=$OTHER_BIN wv_pg_stop "$UP"
fi

echo
wv_summary "$NAME"
