# shellcheck shell=bash
# SC2016: Perl snippets are single-quoted on purpose. SC2034: WV_RC, WV_LAST_BG_PID and
# friends are set here for the scripts that source this file.
# shellcheck disable=SC2016,SC2034
# Shared helpers for walvault's integration tests and scripts/demo.sh.
#
# Source it from bash (set -euo pipefail is recommended in the caller):
#
#   . "$(dirname "$0")/lib.sh"
#   wv_init_tmp                       # temp dir + cleanup trap
#   wv_pg_init "$WV_TMP/pg" --wal-segsize=1
#   wv_pg_start "$WV_TMP/pg"
#   wv_psql "$WV_TMP/pg" 'select 1'
#
# Everything PostgreSQL- or walvault-related runs as the `postgres` OS user when the
# caller is root (PostgreSQL refuses to run as root), directly otherwise. Pass absolute
# paths: commands run as postgres start in the temp dir, not in the caller's directory.
#
# Cleanup (on EXIT, INT, TERM, also after a failure halfway): every background process
# started with wv_start_bg is killed by its process group, every cluster started with
# wv_pg_start is stopped (-m immediate) by its data directory, and the temp dir is
# removed unless WV_KEEP_TMP=1. Nothing is ever killed by name.

if [[ -n ${WV_LIB_LOADED:-} ]]; then
  return 0
fi
WV_LIB_LOADED=1

WV_REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WALVAULT=${WALVAULT:-$WV_REPO_ROOT/build/walvault}
# Server binaries (initdb, pg_ctl, postgres, and for PostgreSQL 15 the client tools too).
# tests/integration/versions.sh points PGBIN at another major's server binaries; the client
# tools below stay Debian's PostgreSQL 15 ones, which talk plain SQL to servers 14 to 18.
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
WV_PG_CLIENT_BIN=${WV_PG_CLIENT_BIN:-/usr/lib/postgresql/15/bin}
WV_PG_USER=${WV_PG_USER:-postgres}
WV_WAIT_TIMEOUT=${WV_WAIT_TIMEOUT:-60}

WV_TMP=${WV_TMP:-}
WV_PASSED=0
WV_FAILED=0
WV_LAST_BG_PID=
WV_CLEANED_UP=0

# ---------------------------------------------------------------- messages, failures

wv_log() { printf '%s\n' "$*" >&2; }

# A header that stands out in the demo and test output.
wv_step() { printf '\n==> %s\n' "$*"; }

# Prints MSG to stderr and exits 1 (the EXIT trap then cleans up). Inside a subshell (a
# check polled by wv_wait_for, say) it also leaves a note so that the main shell stops
# at once instead of polling on.
wv_fail() {
  printf 'FAIL: %s\n' "$*" >&2
  if [[ $BASHPID != "$$" && -n $WV_TMP && -d $WV_TMP/.wv ]]; then
    printf '%s\n' "$*" >"$WV_TMP/.wv/subshell-failure"
  fi
  exit 1
}

# ---------------------------------------------------------------- running as postgres

wv_is_root() { [[ $(id -u) -eq 0 ]]; }

# Runs CMD... as the postgres OS user when root, else directly. The command starts in
# the temp dir (or /) so that a root-only working directory does not bother it.
wv_as_pg() {
  if wv_is_root; then
    (
      cd "${WV_TMP:-/}" 2>/dev/null || cd /
      exec runuser -u "$WV_PG_USER" -- "$@"
    )
  else
    "$@"
  fi
}

# Hands PATH... to the postgres OS user when root (no-op otherwise).
wv_chown_pg() {
  if wv_is_root; then
    chown -R "$WV_PG_USER:" "$@"
  fi
}

# Runs the walvault binary (as postgres when root).
wv_walvault() { wv_as_pg "$WALVAULT" "$@"; }

# Fails unless $WALVAULT exists. When root and the postgres user cannot execute it where
# it is (a checkout under /root, say), uses a copy inside the temp dir instead; recovery's
# restore_command then names that copy, which lives as long as the temp dir.
wv_require_walvault() {
  [[ -x $WALVAULT ]] || wv_fail "walvault binary not found at $WALVAULT (build it: cmake -S . -B build && cmake --build build)"
  if wv_is_root && ! runuser -u "$WV_PG_USER" -- test -x "$WALVAULT"; then
    [[ -n $WV_TMP ]] || wv_fail "wv_require_walvault: call wv_init_tmp first"
    mkdir -p "$WV_TMP/bin"
    cp "$WALVAULT" "$WV_TMP/bin/walvault"
    chmod 0755 "$WV_TMP/bin" "$WV_TMP/bin/walvault"
    wv_log "note: $WV_PG_USER cannot execute $WALVAULT; using a copy in $WV_TMP/bin"
    WALVAULT=$WV_TMP/bin/walvault
  fi
}

# wv_capture PREFIX CMD... — runs CMD with stdout to PREFIX.out and stderr to PREFIX.err
# (as written by this shell, so readable whoever runs CMD) and sets WV_RC to its exit
# status. Never fails by itself.
wv_capture() {
  local prefix=$1
  shift
  WV_RC=0
  "$@" >"$prefix.out" 2>"$prefix.err" || WV_RC=$?
}

# ---------------------------------------------------------------- temp dir + cleanup

# Creates WV_TMP (owned by postgres when root) and installs the cleanup trap.
wv_init_tmp() {
  local base=${TMPDIR:-/tmp}
  WV_TMP=$(mktemp -d "$base/wv.XXXXXXXX") || wv_fail "cannot create a temp dir under $base"
  mkdir -p "$WV_TMP/.wv/clusters" "$WV_TMP/.wv/bg"
  chmod 0755 "$WV_TMP"
  wv_chown_pg "$WV_TMP"
  trap 'wv__on_exit' EXIT
  trap 'wv__on_signal 130' INT
  trap 'wv__on_signal 143' TERM
  if wv_is_root && ! runuser -u "$WV_PG_USER" -- test -w "$WV_TMP"; then
    wv_fail "user $WV_PG_USER cannot write $WV_TMP (TMPDIR=$base); set TMPDIR to a directory it can reach"
  fi
}

wv__on_signal() {
  local code=$1
  trap - INT TERM
  wv_log "interrupted; cleaning up"
  exit "$code" # runs the EXIT trap
}

wv__on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n ${WV_TEST_NAME:-} && ${WV_SUMMARY_DONE:-0} != 1 ]]; then
    # The test stopped before its end (wv_fail, set -e, a signal): say so in the summary.
    WV_FAILED=$((WV_FAILED + 1))
    printf 'FAIL %s aborted before its end (exit status %s)\n' "$WV_TEST_NAME" "$rc"
    ((rc != 0)) || rc=1
  fi
  wv_cleanup
  if [[ -n ${WV_TEST_NAME:-} && ${WV_SUMMARY_DONE:-0} != 1 ]]; then
    wv_summary "$WV_TEST_NAME" || true
  fi
  exit "$rc"
}

# Stops everything this script started and removes the temp dir. Idempotent; safe to call
# before exit (then the trap has nothing left to do).
wv_cleanup() {
  [[ $WV_CLEANED_UP == 1 ]] && return 0
  WV_CLEANED_UP=1
  [[ -n $WV_TMP && -d $WV_TMP/.wv ]] || return 0
  local f pid datadir
  # Background processes first: they are the clients of the clusters.
  for f in "$WV_TMP"/.wv/bg/*; do
    [[ -e $f ]] || continue
    pid=${f##*/}
    if kill -0 -- "-$pid" 2>/dev/null; then
      wv_stop_bg "$pid" TERM 10 >/dev/null 2>&1 || true
    fi
    rm -f "$f"
  done
  for f in "$WV_TMP"/.wv/clusters/*; do
    [[ -d $f ]] || continue
    datadir=$(<"$f/datadir")
    wv__stop_cluster_hard "$datadir"
  done
  if [[ ${WV_KEEP_TMP:-0} == 1 ]]; then
    wv_log "keeping $WV_TMP (WV_KEEP_TMP=1)"
  else
    # A test may have left a directory unreadable on purpose.
    chmod -R u+rwX -- "$WV_TMP" 2>/dev/null || true
    rm -rf -- "$WV_TMP"
  fi
}

# pg_ctl stop -m immediate, then SIGKILL to the postmaster pid if it is still there.
wv__stop_cluster_hard() {
  local datadir=$1 pid
  [[ -f $datadir/postmaster.pid ]] || return 0
  pid=$(head -n 1 "$datadir/postmaster.pid" 2>/dev/null || true)
  wv_as_pg "$PGBIN/pg_ctl" stop -D "$datadir" -m immediate -w -t 30 >/dev/null 2>&1 || true
  if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null \
    && [[ $(readlink "/proc/$pid/cwd" 2>/dev/null) == "$(cd "$datadir" 2>/dev/null && pwd -P)" ]]; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
}

# ---------------------------------------------------------------- background processes

# wv_start_bg LOGFILE CMD... — starts CMD (as postgres when root) in a new session and
# process group with stdout+stderr to LOGFILE. Sets WV_LAST_BG_PID (= the process group
# id). Call it in the main shell (not inside $(...)) so wv_stop_bg can reap the status.
wv_start_bg() {
  local logfile=$1
  shift
  [[ -n $WV_TMP ]] || wv_fail "wv_start_bg: call wv_init_tmp first"
  : >"$logfile"
  wv_chown_pg "$logfile"
  # Job control is off in scripts, so the background subshell is not a group leader and
  # setsid(1) makes it a session + group leader without forking: $! is the group id.
  if wv_is_root; then
    (cd "$WV_TMP" && exec setsid runuser -u "$WV_PG_USER" -- "$@") >"$logfile" 2>&1 </dev/null &
  else
    (cd "$WV_TMP" && exec setsid "$@") >"$logfile" 2>&1 </dev/null &
  fi
  local pid=$!
  : >"$WV_TMP/.wv/bg/$pid"
  WV_LAST_BG_PID=$pid
  # Make sure the process group is really $pid before anybody relies on it.
  local i pgid
  for ((i = 0; i < 50; i++)); do
    pgid=$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ' || true)
    [[ -z $pgid || $pgid == "$pid" ]] && break
    sleep 0.02
  done
  if [[ -n $pgid && $pgid != "$pid" ]]; then
    wv_fail "wv_start_bg: process $pid did not become a group leader (job control on?)"
  fi
  return 0
}

# True while the process group PID has a member.
wv_bg_alive() { kill -0 -- "-$1" 2>/dev/null; }

# wv_stop_bg PID [SIGNAL=TERM] [TIMEOUT=30] — signals the whole process group, waits for
# it to go away (SIGKILL after TIMEOUT seconds) and returns the leader's exit status when
# it is a child of this shell (0 when it cannot be known).
wv_stop_bg() {
  local pid=$1 sig=${2:-TERM} timeout=${3:-30} i rc=0
  kill "-$sig" -- "-$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 10; i++)); do
    wv_bg_alive "$pid" || break
    sleep 0.1
  done
  if wv_bg_alive "$pid"; then
    wv_log "process group $pid ignored SIG$sig for ${timeout}s; sending SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || rc=$?
  [[ -n $WV_TMP ]] && rm -f "$WV_TMP/.wv/bg/$pid"
  return "$rc"
}

# wv_wait_bg PID [TIMEOUT=60] — waits for a background process to exit by itself and
# returns its exit status; fails loudly on timeout.
wv_wait_bg() {
  local pid=$1 timeout=${2:-$WV_WAIT_TIMEOUT} i rc=0
  for ((i = 0; i < timeout * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && wv_fail "process $pid still running after ${timeout}s"
  wait "$pid" 2>/dev/null || rc=$?
  [[ -n $WV_TMP ]] && rm -f "$WV_TMP/.wv/bg/$pid"
  return "$rc"
}

# ---------------------------------------------------------------- polling

# wv_sleep SECONDS — like sleep, but a TERM/INT sent to the script runs the cleanup trap at
# once instead of after the sleep (bash defers traps until a foreground child exits).
wv_sleep() {
  sleep "$1" &
  local pid=$!
  wait "$pid" || true
}

# wv_wait_for [-t SECONDS] [-m MESSAGE] CMD... — runs CMD every 0.2 s until it succeeds.
# After the timeout (default WV_WAIT_TIMEOUT=60) it prints MESSAGE and CMD's last output
# and exits 1.
wv_wait_for() {
  local timeout=$WV_WAIT_TIMEOUT msg=""
  while [[ $# -gt 0 ]]; do
    case $1 in
      -t) timeout=$2; shift 2 ;;
      -m) msg=$2; shift 2 ;;
      --) shift; break ;;
      *) break ;;
    esac
  done
  local deadline=$((SECONDS + timeout)) out
  while true; do
    if out=$("$@" 2>&1); then
      return 0
    fi
    if [[ -n $WV_TMP && -f $WV_TMP/.wv/subshell-failure ]]; then
      [[ -n $out ]] && wv_log "$out"
      local why
      why=$(<"$WV_TMP/.wv/subshell-failure")
      rm -f "$WV_TMP/.wv/subshell-failure"
      wv_fail "$why"
    fi
    if ((SECONDS >= deadline)); then
      wv_log "timed out after ${timeout}s waiting for: $*"
      [[ -n $out ]] && wv_log "last output: $out"
      wv_fail "${msg:-timeout waiting for: $*}"
    fi
    sleep 0.2
  done
}

# ---------------------------------------------------------------- clusters

wv__cluster_key() {
  local d=$1
  d=${d%/}
  d=${d//\//_}
  printf '%s' "${d//[^A-Za-z0-9_.-]/-}"
}

wv__meta_dir() {
  [[ -n $WV_TMP ]] || wv_fail "call wv_init_tmp first"
  printf '%s/.wv/clusters/%s' "$WV_TMP" "$(wv__cluster_key "$1")"
}

wv__meta() {
  local m
  m=$(wv__meta_dir "$1")
  [[ -f $m/$2 ]] || wv_fail "cluster $1 is not known to lib.sh (wv_pg_init or wv_pg_register it)"
  cat "$m/$2"
}

wv_pg_port() { wv__meta "$1" port; }
wv_pg_sockdir() { wv__meta "$1" sockdir; }
wv_pg_logfile() { wv__meta "$1" logfile; }

# A libpq connection string for the cluster: usable as walvault's --dbname and by psql.
wv_connstr() {
  printf 'host=%s port=%s dbname=%s' "$(wv_pg_sockdir "$1")" "$(wv_pg_port "$1")" "${2:-postgres}"
}

# Prints a port no cluster of ours and no listening socket on this machine uses.
wv_free_port() {
  local port i
  for ((i = 0; i < 200; i++)); do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    grep -qx "$port" "$WV_TMP"/.wv/clusters/*/port 2>/dev/null && continue
    ss -Hlntx 2>/dev/null | grep -Eq "[:.]$port([^0-9]|\$)" && continue
    printf '%s\n' "$port"
    return 0
  done
  wv_fail "no free port found"
}

# wv_pg_register DATADIR — gives an existing data directory (e.g. a restored one) its own
# port, socket dir and log file without touching the directory's files: wv_pg_start
# passes them on the command line.
wv_pg_register() {
  local datadir=$1 m n sockdir port
  [[ $datadir == /* ]] || wv_fail "wv_pg_register: $datadir is not an absolute path"
  m=$(wv__meta_dir "$datadir")
  if [[ -f $m/port ]]; then
    return 0
  fi
  mkdir -p "$m"
  n=$(find "$WV_TMP/.wv/clusters" -mindepth 1 -maxdepth 1 | wc -l)
  sockdir=$WV_TMP/s$n
  mkdir -p "$sockdir"
  wv_chown_pg "$sockdir"
  ((${#sockdir} < 90)) || wv_fail "socket dir path too long for a Unix socket: $sockdir"
  port=$(wv_free_port)
  printf '%s\n' "$datadir" >"$m/datadir"
  printf '%s\n' "$sockdir" >"$m/sockdir"
  printf '%s\n' "$port" >"$m/port"
  printf '%s\n' "${datadir%/}.log" >"$m/logfile"
}

# wv_pg_init DATADIR [INITDB ARGS...] — initdb (trust auth, --no-sync) and a test config:
# Unix socket only in a private dir, a free port, wal_level=replica, replication allowed.
# The server log goes next to the data dir (DATADIR.log), not inside it, so that base
# backups do not carry a growing log file.
wv_pg_init() {
  local datadir=$1
  shift
  wv_pg_register "$datadir"
  mkdir -p "$(dirname "$datadir")"
  wv_as_pg "$PGBIN/initdb" -D "$datadir" -A trust --no-sync --no-instructions -E UTF8 \
    --locale=C "$@" >"${datadir%/}.initdb.log" 2>&1 \
    || { cat "${datadir%/}.initdb.log" >&2; wv_fail "initdb failed for $datadir"; }
  cat >>"$datadir/postgresql.conf" <<EOF

# --- walvault test settings (tests/integration/lib.sh) ---
listen_addresses = ''
unix_socket_directories = '$(wv_pg_sockdir "$datadir")'
port = $(wv_pg_port "$datadir")
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = '16MB'
max_connections = 30
shared_buffers = '64MB'
logging_collector = off
log_line_prefix = '%m [%p] %q%a '
log_checkpoints = on
timezone = 'UTC'
EOF
  cat >"$datadir/pg_hba.conf" <<EOF
# walvault tests: local connections only, trusted, replication included
local   all             all                                     trust
local   replication     all                                     trust
EOF
}

# wv_pg_start DATADIR — starts the cluster on its private socket and port; on failure
# prints the server log and exits. WV_PG_LISTEN=127.0.0.1 also listens on TCP (loopback).
wv_pg_start() {
  local datadir=$1 logfile
  wv_pg_register "$datadir"
  logfile=$(wv_pg_logfile "$datadir")
  if [[ ! -e $logfile ]]; then
    : >"$logfile"
    wv_chown_pg "$logfile"
  fi
  if ! wv_as_pg "$PGBIN/pg_ctl" start -D "$datadir" -l "$logfile" -w -t "${WV_PG_START_TIMEOUT:-120}" \
    -o "-p $(wv_pg_port "$datadir") -k $(wv_pg_sockdir "$datadir") -c listen_addresses='${WV_PG_LISTEN:-}'" >/dev/null; then
    wv_log "---- server log $logfile (last 40 lines) ----"
    tail -n 40 "$logfile" >&2 || true
    wv_fail "could not start PostgreSQL on $datadir"
  fi
}

# wv_pg_stop DATADIR [MODE=fast]
wv_pg_stop() {
  local datadir=$1 mode=${2:-fast}
  wv_as_pg "$PGBIN/pg_ctl" stop -D "$datadir" -m "$mode" -w -t 60 >/dev/null \
    || wv_fail "could not stop PostgreSQL on $datadir"
}

# True when the cluster's postmaster is running.
wv_pg_running() {
  wv_as_pg "$PGBIN/pg_ctl" status -D "$1" >/dev/null 2>&1
}

# wv_psql DATADIR SQL [PSQL ARGS...] — unaligned, tuples only, stops on the first error.
wv_psql() {
  local datadir=$1 sql=$2
  shift 2
  wv_as_pg "$WV_PG_CLIENT_BIN/psql" -X -At -v ON_ERROR_STOP=1 -d "$(wv_connstr "$datadir")" -c "$sql" "$@"
}

# wv_psql_file DATADIR FILE [PSQL ARGS...] — runs a SQL file (read by this shell, so the
# file need not be readable by postgres).
wv_psql_file() {
  local datadir=$1 file=$2
  shift 2
  wv_as_pg "$WV_PG_CLIENT_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$(wv_connstr "$datadir")" "$@" -f - <"$file"
}

# wv_pg_wait_ready DATADIR — waits until the server accepts connections.
wv_pg_wait_ready() {
  wv_wait_for -m "PostgreSQL on $1 does not accept connections" \
    wv_as_pg "$WV_PG_CLIENT_BIN/pg_isready" -q -h "$(wv_pg_sockdir "$1")" -p "$(wv_pg_port "$1")"
}

# ---------------------------------------------------------------- LSNs and JSON

# Prints an LSN (X/Y) as a decimal number, for comparisons.
wv_lsn_to_num() {
  local lsn=$1
  [[ $lsn =~ ^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$ ]] || wv_fail "not an LSN: '$lsn'"
  printf '%d\n' $(((16#${BASH_REMATCH[1]} << 32) | 16#${BASH_REMATCH[2]}))
}

# wv_lsn_ge A B — true when LSN A >= LSN B.
wv_lsn_ge() { (($(wv_lsn_to_num "$1") >= $(wv_lsn_to_num "$2"))); }

# wv_segment_name LSN TIMELINE SEGMENT_BYTES [prev] — the WAL file name holding the byte
# at LSN; with "prev", the one holding the byte before it (what pg_walfile_name does:
# right for an end position that falls on a segment boundary).
wv_segment_name() {
  local n seg per_id
  n=$(wv_lsn_to_num "$1")
  [[ ${4:-} == prev ]] && n=$((n - 1))
  seg=$((n / $3))
  per_id=$((0x100000000 / $3))
  printf '%08X%08X%08X\n' "$2" $((seg / per_id)) $((seg % per_id))
}

# wv_json PERL_EXPR < JSON — evaluates PERL_EXPR with $j bound to the decoded document and
# prints the result (lists one item per line). Uses Perl's core JSON::PP, which Debian
# always has, so no extra package is needed.
wv_json() {
  perl -MJSON::PP -e '
    local $/; my $j = JSON::PP->new->decode(<STDIN>);
    my @r = eval $ARGV[0]; die $@ if $@;
    print map { (defined $_ ? $_ : "null") . "\n" } @r;' "$1"
}

# wv_info_end_lsn REPO [TIMELINE] — the highest end_lsn walvault info --json reports
# (for TIMELINE, default: any); prints nothing when there is none yet.
wv_info_end_lsn() {
  local repo=$1 tli=${2:-0}
  wv_walvault info --repo "$repo" --json 2>/dev/null | wv_json '
    my ($best, $bn) = (undef, -1);
    for my $t (@{ $j->{timelines} || [] }) {
      next if '"$tli"' && $t->{timeline} != '"$tli"';
      for my $r (@{ $t->{ranges} || [] }) {
        my ($h, $l) = split m{/}, $r->{end_lsn};
        my $n = hex($h) * 4294967296 + hex($l);
        ($best, $bn) = ($r->{end_lsn}, $n) if $n > $bn;
      }
    }
    defined $best ? ($best) : ()'
}

# ---------------------------------------------------------------- assertions

wv__pass() {
  WV_PASSED=$((WV_PASSED + 1))
  printf 'ok   %s\n' "$1"
}

wv__failed() {
  WV_FAILED=$((WV_FAILED + 1))
  printf 'FAIL %s\n' "$1"
  shift
  local line
  for line in "$@"; do
    printf '       %s\n' "$line"
  done
  if [[ ${WV_ASSERT_FATAL:-0} == 1 ]]; then
    wv_fail "$1"
  fi
}

# wv_assert_eq EXPECTED ACTUAL MESSAGE — counts a pass or a failure (and goes on, unless
# WV_ASSERT_FATAL=1).
wv_assert_eq() {
  if [[ $1 == "$2" ]]; then
    wv__pass "$3"
  else
    wv__failed "$3" "expected: $1" "actual:   $2"
  fi
}

wv_assert_ne() {
  if [[ $1 != "$2" ]]; then
    wv__pass "$3"
  else
    wv__failed "$3" "expected anything but: $1"
  fi
}

# wv_assert_match REGEX ACTUAL MESSAGE
wv_assert_match() {
  if [[ $2 =~ $1 ]]; then
    wv__pass "$3"
  else
    wv__failed "$3" "expected to match: $1" "actual: $2"
  fi
}

# wv_assert MESSAGE CMD... — passes when CMD succeeds.
wv_assert() {
  local msg=$1 out
  shift
  if out=$("$@" 2>&1); then
    wv__pass "$msg"
  else
    wv__failed "$msg" "command failed: $*" "${out:0:2000}"
  fi
}

# wv_assert_not MESSAGE CMD... — passes when CMD fails.
wv_assert_not() {
  local msg=$1
  shift
  if "$@" >/dev/null 2>&1; then
    wv__failed "$msg" "command succeeded: $*"
  else
    wv__pass "$msg"
  fi
}

# wv_assert_walvault_error ERRFILE MESSAGE — the error contract: exactly one line starting
# `walvault: error:`, optionally followed by exactly one `HINT:` line, nothing else.
wv_assert_walvault_error() {
  local errfile=$1 msg=$2 n first second
  n=$(wc -l <"$errfile")
  first=$(sed -n 1p "$errfile")
  second=$(sed -n 2p "$errfile")
  if [[ $first == "walvault: error: "* ]] \
    && { [[ $n -eq 1 ]] || [[ $n -eq 2 && $second == "HINT: "* ]]; }; then
    wv__pass "$msg"
  else
    wv__failed "$msg" "stderr ($n lines):" "$(head -c 2000 "$errfile")"
  fi
}

# wv_fingerprint PATH — one line summing up every entry under PATH (names, types, sizes,
# modes, mtimes) or "absent": compare it before and after to prove nothing changed.
wv_fingerprint() {
  if [[ ! -e $1 ]]; then
    echo absent
    return 0
  fi
  # Directory mtimes are left out: a lock file created and removed again is no change.
  # An unreadable directory contributes what can be seen of it (find's error is no failure).
  { find "$1" \( -type d -printf '%P|d|%m|%u\n' \) -o -printf '%P|%y|%s|%m|%u|%T@\n' 2>/dev/null || true; } \
    | LC_ALL=C sort | md5sum | cut -d' ' -f1
}

# wv_test_begin NAME — marks the script as a test: if it exits before wv_summary (a
# wv_fail, set -e, a signal), the exit counts one failure and still prints the summary.
wv_test_begin() { WV_TEST_NAME=$1; }

# wv_summary NAME — prints "NAME: N passed, M failed" and returns non-zero on failures.
wv_summary() {
  WV_SUMMARY_DONE=1
  printf '%s: %d passed, %d failed\n' "$1" "$WV_PASSED" "$WV_FAILED"
  ((WV_FAILED == 0))
}
