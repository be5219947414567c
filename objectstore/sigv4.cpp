#include "objectstore/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <ctime>
#include <map>

#include "core/error.h"
#include "core/hash.h"

namespace walvault::s3 {
namespace {

std::string to_hex(const unsigned char* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[p[i] >> 4]);
    out.push_back(kDigits[p[i] & 0xf]);
  }
  return out;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len)) {
    throw Error("HMAC-SHA256 failed (OpenSSL)");
  }
  return std::string(reinterpret_cast<const char*>(out.data()), len);
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Leading and trailing blanks removed, inner runs of blanks reduced to one space.
std::string trim_collapse(std::string_view v) {
  std::string out;
  bool blank = false;
  for (char c : v) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      blank = !out.empty();
      continue;
    }
    if (blank) out.push_back(' ');
    blank = false;
    out.push_back(c);
  }
  return out;
}

std::string scope_string(std::string_view amz_date, const SigningScope& scope) {
  return std::string(amz_date.substr(0, 8)) + "/" + scope.region + "/" + scope.service +
         "/aws4_request";
}

}  // namespace

std::string uri_encode(std::string_view s, bool keep_slash) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kDigits[c >> 4]);
      out.push_back(kDigits[c & 0xf]);
    }
  }
  return out;
}

std::string canonical_request(const RequestToSign& r, std::string* signed_headers) {
  std::vector<std::pair<std::string, std::string>> query;
  query.reserve(r.query.size());
  for (const auto& [k, v] : r.query) query.emplace_back(uri_encode(k, false), uri_encode(v, false));
  std::sort(query.begin(), query.end());

  // Header names are case-insensitive; repeated headers join in the order sent.
  std::map<std::string, std::string> headers;
  for (const auto& [k, v] : r.headers) {
    auto& slot = headers[lower(k)];
    if (!slot.empty()) slot += ',';
    slot += trim_collapse(v);
  }

  std::string out = r.method + "\n" + uri_encode(r.path.empty() ? "/" : r.path, true) + "\n";
  for (size_t i = 0; i < query.size(); ++i) {
    if (i) out += '&';
    out += query[i].first + "=" + query[i].second;
  }
  out += '\n';
  std::string names;
  for (const auto& [k, v] : headers) {
    out += k + ":" + v + "\n";
    if (!names.empty()) names += ';';
    names += k;
  }
  out += "\n" + names + "\n" + r.payload_sha256;
  if (signed_headers) *signed_headers = names;
  return out;
}

std::string string_to_sign(std::string_view amz_date, const SigningScope& scope,
                           std::string_view canonical) {
  return "AWS4-HMAC-SHA256\n" + std::string(amz_date) + "\n" + scope_string(amz_date, scope) +
         "\n" + sha256_hex(canonical);
}

std::string signature(const Credentials& creds, std::string_view amz_date,
                      const SigningScope& scope, std::string_view to_sign) {
  std::string key = hmac_sha256("AWS4" + creds.secret_access_key, amz_date.substr(0, 8));
  key = hmac_sha256(key, scope.region);
  key = hmac_sha256(key, scope.service);
  key = hmac_sha256(key, "aws4_request");
  const std::string sig = hmac_sha256(key, to_sign);
  return to_hex(reinterpret_cast<const unsigned char*>(sig.data()), sig.size());
}

std::string sign(RequestToSign& r, const Credentials& creds, const SigningScope& scope,
                 std::string_view amz_date) {
  r.headers.emplace_back("x-amz-date", std::string(amz_date));
  if (!creds.session_token.empty())
    r.headers.emplace_back("x-amz-security-token", creds.session_token);
  std::string names;
  const std::string creq = canonical_request(r, &names);
  const std::string sig = signature(creds, amz_date, scope, string_to_sign(amz_date, scope, creq));
  return "AWS4-HMAC-SHA256 Credential=" + creds.access_key_id + "/" +
         scope_string(amz_date, scope) + ", SignedHeaders=" + names + ", Signature=" + sig;
}

std::string amz_date_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

}  // namespace walvault::s3
