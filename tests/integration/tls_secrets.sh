#!/usr/bin/env bash
# Connections and secrets against a real PostgreSQL 15 server on a TCP loopback port, with TLS
# from a certificate authority this test makes (openssl) and scram-sha-256 passwords:
#
#   1. every libpq sslmode (disable, allow, prefer, require, verify-ca, verify-full) archives
#      WAL; the server log shows which connections used TLS;
#   2. verify-full against the wrong host name, and verify-ca with another CA, fail with one
#      clear `walvault: error:` line that says why;
#   3. the password comes from PGPASSWORD, PGPASSFILE (a .pgpass file) or --dbname; it never
#      appears in walvault's output, errors (a wrong password, a malformed connection
#      string), the repository (backup.json, ...), `info`, or the archiver's process title
#      (/proc/<pid>/cmdline).
#
# Run: bash tests/integration/tls_secrets.sh. Prints `tls_secrets: N passed, M failed` last.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

wv_test_begin tls_secrets
wv_init_tmp
wv_require_walvault
PG=$WV_TMP/pg
REPO=$WV_TMP/repo
OUT=$WV_TMP/out
CERTS=$WV_TMP/certs
mkdir -p "$OUT" "$CERTS"
PASSWORD="Pw-$RANDOM-s3cret-$RANDOM"
WRONG_PASSWORD="Wrong-$RANDOM-guess"

# ---------------------------------------------------------------- certificates
wv_step "a CA, a server certificate for localhost (not 127.0.0.1), and a second CA"
(
  cd "$CERTS"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=walvault test CA" \
    -keyout ca.key -out ca.crt 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=another CA" \
    -keyout other.key -out other.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key \
    -out server.csr 2>/dev/null
  printf 'subjectAltName=DNS:localhost\n' >server.ext
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile server.ext -out server.crt 2>/dev/null
)
wv_chown_pg "$CERTS"
chmod 0600 "$CERTS"/*.key

# ---------------------------------------------------------------- cluster
wv_step "cluster: TLS on, scram-sha-256 over TCP for role wv (REPLICATION only)"
wv_pg_init "$PG" --wal-segsize=1
cat >>"$PG/postgresql.conf" <<CONF
ssl = on
ssl_cert_file = '$CERTS/server.crt'
ssl_key_file = '$CERTS/server.key'
password_encryption = 'scram-sha-256'
log_connections = on
CONF
cat >>"$PG/pg_hba.conf" <<HBA
host    replication     wv      127.0.0.1/32    scram-sha-256
host    postgres        wv      127.0.0.1/32    scram-sha-256
HBA
WV_PG_LISTEN=127.0.0.1 wv_pg_start "$PG"
PORT=$(wv_pg_port "$PG")
wv_psql "$PG" "create role wv login replication password '$PASSWORD'" >/dev/null
wv_psql "$PG" "create table t as select g from generate_series(1, 1000) g" >/dev/null
TCP="hostaddr=127.0.0.1 host=localhost port=$PORT user=wv dbname=postgres sslrootcert=$CERTS/ca.crt"

# archive_to_now NAME CONNSTR [ENV...]: archives up to the server's current LSN and exits.
archive_to_now() {
  local name=$1 conn=$2
  shift 2
  local lsn
  lsn=$(wv_psql "$PG" "select pg_current_wal_insert_lsn()")
  wv_capture "$OUT/$name" env "$@" timeout 120 runuser -u "$WV_PG_USER" -- "$WALVAULT" archive --repo "$REPO" \
    --dbname "$conn" --endpos "$lsn" --no-loop
}

# ---------------------------------------------------------------- 1. every sslmode
wv_step "every sslmode archives WAL (password from PGPASSWORD)"
for mode in disable allow prefer require verify-ca verify-full; do
  wv_psql "$PG" "insert into t select g from generate_series(1, 100) g" >/dev/null
  before=$(grep -c 'replication connection authorized: user=wv' "$(wv_pg_logfile "$PG")" || true)
  archive_to_now "mode-$mode" "$TCP sslmode=$mode application_name=wv_$mode" PGPASSWORD="$PASSWORD"
  wv_assert_eq 0 "$WV_RC" "sslmode=$mode: archive --endpos exits 0"
  [[ $WV_RC == 0 ]] || sed 's/^/    | /' "$OUT/mode-$mode.err" | head -n 10 >&2
  line=$(grep 'replication connection authorized: user=wv' "$(wv_pg_logfile "$PG")" | tail -n +$((before + 1)) | head -n 1)
  case $mode in
    disable | allow) wv_assert_not "sslmode=$mode: the server saw a connection without TLS" grep -q 'SSL enabled' <<<"$line" ;;
    *) wv_assert_match 'SSL enabled' "$line" "sslmode=$mode: the server saw a TLS connection" ;;
  esac
done

# ---------------------------------------------------------------- 2. certificate checks fail clearly
wv_step "verify-full against the wrong host name, verify-ca with another CA: clear errors"
archive_to_now wrong-host "host=127.0.0.1 port=$PORT user=wv dbname=postgres sslrootcert=$CERTS/ca.crt sslmode=verify-full" PGPASSWORD="$PASSWORD"
wv_assert_eq 1 "$WV_RC" "verify-full, wrong host name: exit 1"
wv_assert_walvault_error "$OUT/wrong-host.err" "verify-full, wrong host name: one error line (+ HINT)"
wv_assert_match 'does not match host name "127.0.0.1"' "$(cat "$OUT/wrong-host.err")" \
  "verify-full, wrong host name: the error says the certificate does not match the host"
archive_to_now wrong-ca "$TCP sslmode=verify-ca sslrootcert=$CERTS/other.crt" PGPASSWORD="$PASSWORD"
wv_assert_eq 1 "$WV_RC" "verify-ca, another CA: exit 1"
wv_assert_match 'certificate verify failed' "$(cat "$OUT/wrong-ca.err")" \
  "verify-ca, another CA: the error says the certificate could not be verified"

# ---------------------------------------------------------------- 3. where passwords come from
wv_step "passwords: PGPASSFILE, --dbname; never shown"
printf 'localhost:%s:*:wv:%s\n' "$PORT" "$PASSWORD" >"$WV_TMP/pgpass"
wv_chown_pg "$WV_TMP/pgpass"
chmod 0600 "$WV_TMP/pgpass"
archive_to_now pgpassfile "$TCP sslmode=verify-full" PGPASSFILE="$WV_TMP/pgpass"
wv_assert_eq 0 "$WV_RC" "PGPASSFILE (a .pgpass file): archive exits 0"
archive_to_now passfile-kw "$TCP sslmode=verify-full passfile=$WV_TMP/pgpass"
wv_assert_eq 0 "$WV_RC" "passfile= in the connection string: archive exits 0"

archive_to_now argv-pw "$TCP sslmode=verify-full password=$PASSWORD"
wv_assert_eq 0 "$WV_RC" "password= in --dbname: archive exits 0"
wv_assert_match 'password on the command line' "$(cat "$OUT/argv-pw.err")" \
  "password= in --dbname: a warning says where passwords belong"
archive_to_now uri-pw "postgresql://wv:$PASSWORD@localhost:$PORT/postgres?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert=$CERTS/ca.crt"
wv_assert_eq 0 "$WV_RC" "a URI with the password: archive exits 0"

archive_to_now wrong-pw "$TCP sslmode=verify-full password=$WRONG_PASSWORD"
wv_assert_eq 1 "$WV_RC" "a wrong password: exit 1"
wv_assert_match 'password authentication failed for user "wv"' "$(cat "$OUT/wrong-pw.err")" \
  "a wrong password: the error says so"
wv_capture "$OUT/malformed" runuser -u "$WV_PG_USER" -- "$WALVAULT" archive --repo "$REPO" \
  --dbname "postgresql://wv:$WRONG_PASSWORD@localhost:$PORT/postgres?password=$WRONG_PASSWORD&bogus_option=1" --no-loop
wv_assert_eq 1 "$WV_RC" "a malformed connection string with passwords: exit 1"
wv_assert_match 'walvault: error: .*bogus_option' "$(cat "$OUT/malformed.err")" \
  "a malformed connection string: the error names the bad option"

wv_step "the archiver's process title does not show the password"
wv_start_bg "$OUT/bg-archiver.log" "$WALVAULT" archive --repo "$REPO" --dbname "$TCP sslmode=verify-full password=$PASSWORD"
ARCH=$WV_LAST_BG_PID
wv_wait_for -m "the archiver did not connect" \
  grep -q "replication connection authorized: user=wv application_name=walvault" "$(wv_pg_logfile "$PG")"
wv_wait_for -m "the archiver did not start streaming" \
  bash -c "ps -o comm= -g $ARCH | grep -qx walvault"
wpid=$(ps -o pid=,comm= -g "$ARCH" | awk '$2 == "walvault" {print $1}' | head -n 1)
cmdline=$(tr '\0' ' ' <"/proc/$wpid/cmdline")
wv_assert_match 'archive --repo' "$cmdline" "the archiver's /proc/<pid>/cmdline is readable"
wv_assert_not "the archiver's /proc/<pid>/cmdline does not hold the password" grep -qF "$PASSWORD" <<<"$cmdline"
wv_assert_not "ps does not show the password" bash -c "ps -o args= -p $wpid | grep -qF '$PASSWORD'"
wv_stop_bg "$ARCH" TERM || true

wv_step "a backup with the password in --dbname; info"
wv_capture "$OUT/backup" runuser -u "$WV_PG_USER" -- "$WALVAULT" backup --repo "$REPO" \
  --dbname "$TCP sslmode=verify-full password=$PASSWORD"
wv_assert_eq 0 "$WV_RC" "backup over verify-full with a password: exit 0"
wv_capture "$OUT/info" runuser -u "$WV_PG_USER" -- "$WALVAULT" info --repo "$REPO"
wv_capture "$OUT/info-json" runuser -u "$WV_PG_USER" -- "$WALVAULT" info --repo "$REPO" --json

wv_step "no password anywhere: output, errors, logs, repository"
for pw in "$PASSWORD" "$WRONG_PASSWORD"; do
  hits=$(grep -rlF -- "$pw" "$OUT" "$REPO" 2>/dev/null || true)
  wv_assert_eq "" "$hits" "no file of walvault's output or the repository holds password ${pw:0:5}..."
done

wv_pg_stop "$PG"
wv_summary tls_secrets
