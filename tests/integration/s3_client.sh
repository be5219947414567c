#!/usr/bin/env bash
# walvault's S3 client against a real S3-compatible server: s3rver (npm, pinned), once over
# http and once over https with a self-signed CA. s3rver does not check SigV4 signatures
# (only V2): the signing is proven by AWS's published vectors (tests/unit/sigv4_test.cpp).
# Runs tests/s3/s3_client_test.cpp (walvault_s3_tests) against both.
#
# Run: bash tests/integration/s3_client.sh. Prints `s3_client: N passed, M failed` last.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

wv_test_begin s3_client
wv_init_tmp
wv_require_walvault
S3_TESTS=$(dirname "$WALVAULT")/tests/walvault_s3_tests
wv_assert "the S3 client test program is built ($S3_TESTS)" test -x "$S3_TESTS"

wv_step "s3rver over http and https"
S3RVER=$("$WV_SOURCE_DIR/scripts/fetch-s3rver.sh") || wv_fail "scripts/fetch-s3rver.sh failed"
mkdir -p "$WV_TMP/s3-http" "$WV_TMP/s3-https" "$WV_TMP/tls"
# A CA and a server certificate for 127.0.0.1 signed by it.
(
  cd "$WV_TMP/tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=walvault test CA" \
    -keyout ca.key -out ca.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\n' >ext.cnf
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile ext.cnf -out server.crt 2>/dev/null
)
chmod -R a+rX "$WV_TMP/tls"
wv_chown_pg "$WV_TMP/s3-http"
wv_chown_pg "$WV_TMP/s3-https"
# s3rver makes continuation tokens with a cipher OpenSSL 3 keeps in its legacy provider.
export NODE_OPTIONS=--openssl-legacy-provider
HTTP_PORT=$(wv_free_port)
TLS_PORT=$(wv_free_port)
wv_start_bg "$WV_TMP/s3rver-http.log" "$S3RVER" -d "$WV_TMP/s3-http" -a 127.0.0.1 -p "$HTTP_PORT" --silent
wv_start_bg "$WV_TMP/s3rver-https.log" "$S3RVER" -d "$WV_TMP/s3-https" -a 127.0.0.1 -p "$TLS_PORT" --silent \
  --key "$WV_TMP/tls/server.key" --cert "$WV_TMP/tls/server.crt"
listening() { ss -Hlnt "sport = :$1" | grep -q .; }
wv_wait_for -t 60 -m "s3rver (http) did not listen on $HTTP_PORT" listening "$HTTP_PORT"
wv_wait_for -t 60 -m "s3rver (https) did not listen on $TLS_PORT" listening "$TLS_PORT"

wv_step "walvault_s3_tests"
# s3rver's own access key pair.
wv_capture "$WV_TMP/gtest" env WV_S3_ENDPOINT="http://127.0.0.1:$HTTP_PORT" \
  WV_S3_TLS_ENDPOINT="https://127.0.0.1:$TLS_PORT" WV_S3_CA_FILE="$WV_TMP/tls/ca.crt" \
  WV_S3_ACCESS_KEY=S3RVER WV_S3_SECRET_KEY=S3RVER "$S3_TESTS"
[[ $WV_RC -eq 0 ]] || sed 's/^/    | /' "$WV_TMP/gtest.out" "$WV_TMP/gtest.err" | grep -v '^    | \[ *\(RUN\|OK\) ' >&2
wv_assert_eq 0 "$WV_RC" "every S3 client test passes against s3rver"
wv_assert_match 'PASSED.* 9 tests' "$(cat "$WV_TMP/gtest.out")" "all nine ran"
wv_assert "the multipart object is stored whole by the server" \
  test -n "$(find "$WV_TMP/s3-http/walvault-test" -path '*multipart*' -size +12M 2>/dev/null | head -1)"

echo
wv_summary s3_client
