#pragma once
// AWS Signature Version 4 for S3 requests, written here rather than taken from libcurl:
// curl 7.88's CURLOPT_AWS_SIGV4 leaves query parameters unsorted, does not encode '/' in query
// values and sends no x-amz-content-sha256, and S3-compatible stores refuse all three.
// Tested against AWS's published SigV4 test suite (tests/unit/sigv4_test.cpp).

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace walvault::s3 {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty unless temporary credentials
};

struct SigningScope {
  std::string region;   // "us-east-1"
  std::string service;  // "s3"
};

using NameValues = std::vector<std::pair<std::string, std::string>>;

// What the signature covers. Paths and query values are given decoded; the canonical form
// encodes them (S3 style: a path is encoded once and never normalised, since "a//b" and
// "a/./b" are distinct keys).
struct RequestToSign {
  std::string method;          // "GET", "PUT", ...
  std::string path = "/";      // "/bucket/key" (path style) or "/key" (virtual host style)
  NameValues query;            // decoded names and values; "" for a name without value
  NameValues headers;          // as sent; must include "host"
  std::string payload_sha256;  // lower-case hex of the body, or "UNSIGNED-PAYLOAD"
};

// RFC 3986 percent-encoding of everything but unreserved characters (and '/' when
// keep_slash), upper-case hex, as SigV4 requires.
std::string uri_encode(std::string_view s, bool keep_slash);

// The canonical request; signed_headers receives "host;x-amz-date;...".
std::string canonical_request(const RequestToSign& r, std::string* signed_headers = nullptr);

// "AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<hex sha256 of canonical request>"
std::string string_to_sign(std::string_view amz_date, const SigningScope& scope,
                           std::string_view canonical);

// Lower-case hex HMAC-SHA256 signature of string_to_sign with the derived key.
std::string signature(const Credentials& creds, std::string_view amz_date,
                      const SigningScope& scope, std::string_view to_sign);

// Adds x-amz-date (and x-amz-security-token with a session token) to r.headers, signs, and
// returns the Authorization header value.
std::string sign(RequestToSign& r, const Credentials& creds, const SigningScope& scope,
                 std::string_view amz_date);

// "YYYYMMDDTHHMMSSZ" of now (UTC).
std::string amz_date_now();

}  // namespace walvault::s3
