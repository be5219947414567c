#!/usr/bin/env bash
# walvault's S3 client against a real object store: Ceph's RADOS Gateway (Debian packages,
# one monitor + one memstore OSD + the gateway, scripts/rgw.sh), over http and over https
# with a throwaway CA. RGW checks SigV4 signatures, payload hashes and the request time like
# AWS. Runs tests/s3/s3_client_test.cpp (walvault_s3_tests): round trips, odd keys,
# create-only puts, paged listing, delete, multipart, a wrong secret, a missing bucket,
# TLS verified and refused, and (under faketime, two hours back) a skewed clock.
#
# Run: bash tests/integration/s3_client.sh. Prints `s3_client: N passed, M failed` last.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

wv_test_begin s3_client
wv_init_tmp
wv_require_walvault
S3_TESTS=$(dirname "$WALVAULT")/tests/walvault_s3_tests
wv_assert "the S3 client test program is built ($S3_TESTS)" test -x "$S3_TESTS"

wv_step "a CA and a certificate for 127.0.0.1"
mkdir -p "$WV_TMP/tls"
(
  cd "$WV_TMP/tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=walvault test CA" \
    -keyout ca.key -out ca.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\n' >ext.cnf
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile ext.cnf -out server.crt 2>/dev/null
)

wv_step "Ceph monitor, memstore OSD and RADOS Gateway"
RGW=$WV_TMP/rgw
HTTP_PORT=$(wv_free_port)
TLS_PORT=$(wv_free_port)
stop_rgw() { "$WV_SOURCE_DIR/scripts/rgw.sh" stop "$RGW" || true; }
trap 'stop_rgw; wv__on_exit' EXIT
KEYS=$(WALVAULT_RGW_TLS_PORT=$TLS_PORT WALVAULT_RGW_CERT=$WV_TMP/tls/server.crt \
  WALVAULT_RGW_KEY=$WV_TMP/tls/server.key "$WV_SOURCE_DIR/scripts/rgw.sh" start "$RGW" "$HTTP_PORT" | tail -1) ||
  wv_fail "scripts/rgw.sh could not start the gateway"
read -r ACCESS SECRET <<<"$KEYS"
wv_assert_match '^WALVAULTTEST' "$ACCESS" "a test user was created"

run_tests() { # OUTPREFIX [env assignments / wrappers...] -- gtest args
  local out=$1
  shift
  wv_capture "$out" env WV_S3_ENDPOINT="http://127.0.0.1:$HTTP_PORT" \
    WV_S3_TLS_ENDPOINT="https://127.0.0.1:$TLS_PORT" WV_S3_CA_FILE="$WV_TMP/tls/ca.crt" \
    WV_S3_ACCESS_KEY="$ACCESS" WV_S3_SECRET_KEY="$SECRET" "$@"
  [[ $WV_RC -eq 0 ]] || sed 's/^/    | /' "$out.out" "$out.err" | grep -v '^    | \[ *\(RUN\|OK\) ' >&2
}

wv_step "walvault_s3_tests"
run_tests "$WV_TMP/gtest" "$S3_TESTS" --gtest_filter='-S3Clock.*'
wv_assert_eq 0 "$WV_RC" "every S3 client test passes against the RADOS Gateway"
wv_assert_match 'PASSED.* 10 tests' "$(cat "$WV_TMP/gtest.out")" "all ten ran"

wv_step "a clock two hours behind (faketime)"
run_tests "$WV_TMP/skew" env WV_S3_EXPECT_SKEW=1 faketime -f -2h "$S3_TESTS" --gtest_filter='S3Clock.*'
wv_assert_eq 0 "$WV_RC" "the skew is refused and named"
wv_assert_match 'PASSED.* 1 test' "$(cat "$WV_TMP/skew.out")" "the skew test ran (not skipped)"
wv_assert_not "... and was not skipped" grep -q SKIPPED "$WV_TMP/skew.out"

stop_rgw
echo
wv_summary s3_client
