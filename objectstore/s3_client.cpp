#include "objectstore/s3_client.h"

#include <tinyxml2.h>

#include <chrono>
#include <ctime>
#include <thread>

#include "core/error.h"
#include "core/hash.h"
#include "core/log.h"

namespace walvault::s3 {
namespace {

constexpr int kAttempts = 5;

bool transient(long status) {
  return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

std::string query_string(const NameValues& q) {
  std::string out;
  for (const auto& [k, v] : q) {
    out += out.empty() ? '?' : '&';
    out += uri_encode(k, false) + "=" + uri_encode(v, false);
  }
  return out;
}

std::string text_of(const tinyxml2::XMLElement* parent, const char* name) {
  const tinyxml2::XMLElement* e = parent ? parent->FirstChildElement(name) : nullptr;
  return e && e->GetText() ? e->GetText() : "";
}

std::string unquote(std::string s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') return s.substr(1, s.size() - 2);
  return s;
}

std::span<const std::byte> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::string sha256_of(std::span<const std::byte> d) {
  Sha256 h;
  h.update(d);
  return h.hex_digest();
}

}  // namespace

std::optional<std::time_t> parse_http_date(std::string_view text) {
  std::tm tm{};
  const std::string s(text);
  const char* end = strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (!end || *end != '\0') return std::nullopt;
  return timegm(&tm);
}

std::string s3_error_text(std::string_view xml) {
  tinyxml2::XMLDocument doc;
  if (doc.Parse(xml.data(), xml.size()) != tinyxml2::XML_SUCCESS) return {};
  const auto* root = doc.FirstChildElement("Error");
  if (!root) return {};
  const std::string code = text_of(root, "Code");
  const std::string message = text_of(root, "Message");
  if (code.empty()) return message;
  return message.empty() ? code : code + ": " + message;
}

S3Client::S3Client(S3Config cfg, Credentials creds)
    : cfg_(std::move(cfg)),
      creds_(std::move(creds)),
      http_(TlsOptions{cfg_.ca_file, cfg_.verify_tls}) {}

HttpResponse S3Client::execute(Call call, std::string_view what) {
  if (call.body_sha256.empty()) call.body_sha256 = sha256_of(call.body);
  const RequestTarget target = request_target(cfg_, call.key);
  for (int attempt = 1;; ++attempt) {
    RequestToSign r{call.method, target.path, call.query, call.headers, call.body_sha256};
    r.headers.emplace_back("host", target.host);
    r.headers.emplace_back("x-amz-content-sha256", call.body_sha256);
    // Signed anew each attempt: the date is part of the signature and a retry may come late.
    const std::string auth = sign(r, creds_, {cfg_.region, "s3"}, amz_date_now());
    HttpRequest req{call.method, target.url + query_string(call.query), {}, call.body};
    for (const auto& [k, v] : r.headers)
      if (k != "host") req.headers.emplace_back(k, v);
    req.headers.emplace_back("Authorization", auth);
    std::string problem;
    try {
      HttpResponse resp = http_.perform(req);
      if (!transient(resp.status)) return resp;
      problem = "HTTP " + std::to_string(resp.status);
      if (auto t = s3_error_text(resp.body); !t.empty()) problem += " (" + t + ")";
      if (attempt == kAttempts) fail(resp, what);
    } catch (const TransportError& e) {
      problem = e.what();
      if (attempt == kAttempts || !e.retryable()) {
        throw Error(std::string(what) + ": " + problem + " (" + target.url + ")",
                    "check the endpoint, the network and the TLS settings (--s3-ca-file)");
      }
    }
    log::warning(std::string(what) + ": " + problem + "; retrying (" + std::to_string(attempt) +
                 "/" + std::to_string(kAttempts - 1) + ")");
    std::this_thread::sleep_for(std::chrono::milliseconds(100 << attempt));
  }
}

void S3Client::fail(const HttpResponse& r, std::string_view what) {
  std::string text = s3_error_text(r.body);
  std::string hint;
  if (text.starts_with("RequestTimeTooSkewed")) {
    // Say by how much: the store's Date header against our clock.
    if (auto d = r.headers.find("date"); d != r.headers.end()) {
      if (auto store = parse_http_date(d->second)) {
        const long long skew_s = static_cast<long long>(std::time(nullptr) - *store);
        throw Error(std::string(what) +
                        ": the store refuses the request time: this machine's "
                        "clock is " +
                        std::to_string(skew_s < 0 ? -skew_s : skew_s) + " s " +
                        (skew_s < 0 ? "behind" : "ahead of") + " the store's",
                    "synchronise the clock (NTP); S3 refuses requests more than 15 minutes off");
      }
    }
    hint = "synchronise the clock (NTP); S3 refuses requests more than 15 minutes off";
  }
  if (r.status == 403)
    hint = "check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and the region";
  if (text.find("NoSuchBucket") != std::string::npos)
    hint = "create the bucket first, or check its name";
  throw Error(
      std::string(what) + ": HTTP " + std::to_string(r.status) + (text.empty() ? "" : " " + text),
      hint);
}

void S3Client::put(std::string_view key, std::span<const std::byte> data) {
  const std::string sha = sha256_of(data);
  Call c{"PUT", std::string(key), {}, {{"x-amz-meta-sha256", sha}}, data, sha};
  const std::string what = "S3 put of " + full_key(cfg_, key);
  auto r = execute(std::move(c), what);
  if (r.status != 200) fail(r, what);
}

CreateResult S3Client::put_create_only(std::string_view key, std::span<const std::byte> data) {
  const std::string sha = sha256_of(data);
  const std::string name = full_key(cfg_, key);
  auto compare = [&](const ObjectInfo& existing) {
    if (existing.sha256 == sha) return CreateResult::identical;
    throw Error("S3 object " + name + " already exists with different content (sha256 " +
                    (existing.sha256.empty() ? std::string("unknown") : existing.sha256) +
                    ", new " + sha + ")",
                "a stored object is never replaced; check that only one walvault writes to "
                "this repository");
  };
  if (auto existing = head(key)) return compare(*existing);
  Call c{"PUT", std::string(key), {}, {{"x-amz-meta-sha256", sha}, {"If-None-Match", "*"}}, data,
         sha};
  const std::string what = "S3 put of " + name;
  auto r = execute(std::move(c), what);
  if (r.status == 412 || r.status == 409) {
    // Someone else wrote it between our HEAD and PUT.
    if (auto existing = head(key)) return compare(*existing);
  }
  if (r.status != 200) fail(r, what);
  return CreateResult::created;
}

std::optional<std::string> S3Client::get(std::string_view key) {
  const std::string what = "S3 get of " + full_key(cfg_, key);
  auto r = execute(Call{"GET", std::string(key), {}, {}, {}, {}}, what);
  if (r.status == 404) return std::nullopt;
  if (r.status != 200) fail(r, what);
  return std::move(r.body);
}

std::optional<ObjectInfo> S3Client::head(std::string_view key) {
  const std::string what = "S3 head of " + full_key(cfg_, key);
  auto r = execute(Call{"HEAD", std::string(key), {}, {}, {}, {}}, what);
  if (r.status == 404) return std::nullopt;
  if (r.status != 200) fail(r, what);
  ObjectInfo info;
  info.key = std::string(key);
  if (auto it = r.headers.find("content-length"); it != r.headers.end())
    info.size = std::stoull(it->second);
  if (auto it = r.headers.find("etag"); it != r.headers.end()) info.etag = unquote(it->second);
  if (auto it = r.headers.find("x-amz-meta-sha256"); it != r.headers.end())
    info.sha256 = it->second;
  return info;
}

std::vector<ObjectInfo> S3Client::list(std::string_view key_prefix, int page_size) {
  std::vector<ObjectInfo> out;
  const std::string base = cfg_.prefix.empty() ? "" : cfg_.prefix + "/";
  std::string token;
  const std::string what = "S3 list of " + base + std::string(key_prefix);
  while (true) {
    NameValues q{{"list-type", "2"},
                 {"max-keys", std::to_string(page_size)},
                 {"prefix", base + std::string(key_prefix)}};
    if (!token.empty()) q.emplace_back("continuation-token", token);
    auto r = execute(Call{"GET", "", q, {}, {}, {}}, what);
    if (r.status != 200) fail(r, what);
    tinyxml2::XMLDocument doc;
    if (doc.Parse(r.body.data(), r.body.size()) != tinyxml2::XML_SUCCESS) {
      throw Error(what + ": the reply is not XML");
    }
    const auto* root = doc.FirstChildElement("ListBucketResult");
    if (!root) throw Error(what + ": the reply is not a ListBucketResult");
    for (const auto* e = root->FirstChildElement("Contents"); e;
         e = e->NextSiblingElement("Contents")) {
      ObjectInfo info;
      const std::string key = text_of(e, "Key");
      if (!key.starts_with(base)) continue;
      info.key = key.substr(base.size());
      try {
        info.size = std::stoull(text_of(e, "Size"));
      } catch (const std::exception&) {
        throw Error(what + ": object " + key + " has no valid size in the listing");
      }
      info.etag = unquote(text_of(e, "ETag"));
      out.push_back(std::move(info));
    }
    if (text_of(root, "IsTruncated") != "true") break;
    token = text_of(root, "NextContinuationToken");
    if (token.empty()) throw Error(what + ": a truncated listing without a continuation token");
  }
  return out;
}

void S3Client::remove(std::string_view key) {
  const std::string what = "S3 delete of " + full_key(cfg_, key);
  auto r = execute(Call{"DELETE", std::string(key), {}, {}, {}, {}}, what);
  if (r.status != 204 && r.status != 200 && r.status != 404) fail(r, what);
}

void S3Client::put_multipart(std::string_view key, std::span<const std::byte> data,
                             size_t part_size) {
  const std::string name = full_key(cfg_, key);
  const std::string sha = sha256_of(data);
  const std::string what = "S3 multipart upload of " + name;
  auto r = execute(
      Call{"POST", std::string(key), {{"uploads", ""}}, {{"x-amz-meta-sha256", sha}}, {}, {}},
      what);
  if (r.status != 200) fail(r, what);
  tinyxml2::XMLDocument doc;
  doc.Parse(r.body.data(), r.body.size());
  const std::string upload_id =
      text_of(doc.FirstChildElement("InitiateMultipartUploadResult"), "UploadId");
  if (upload_id.empty()) throw Error(what + ": the store returned no upload id");
  try {
    std::string complete = "<CompleteMultipartUpload>";
    int part = 1;
    for (size_t off = 0; off < data.size() || part == 1; off += part_size, ++part) {
      const auto chunk = data.subspan(off, std::min(part_size, data.size() - off));
      auto pr = execute(Call{"PUT",
                             std::string(key),
                             {{"partNumber", std::to_string(part)}, {"uploadId", upload_id}},
                             {},
                             chunk,
                             {}},
                        what + " (part " + std::to_string(part) + ")");
      if (pr.status != 200) fail(pr, what);
      auto etag = pr.headers.find("etag");
      if (etag == pr.headers.end())
        throw Error(what + ": part " + std::to_string(part) + " has no ETag");
      complete += "<Part><PartNumber>" + std::to_string(part) + "</PartNumber><ETag>" +
                  etag->second + "</ETag></Part>";
      if (data.empty()) break;
    }
    complete += "</CompleteMultipartUpload>";
    auto cr = execute(
        Call{"POST", std::string(key), {{"uploadId", upload_id}}, {}, bytes_of(complete), {}},
        what + " (complete)");
    // A 200 can still carry an <Error> body when completion failed late.
    if (cr.status != 200 || !s3_error_text(cr.body).empty()) fail(cr, what);
  } catch (...) {
    try {
      execute(Call{"DELETE", std::string(key), {{"uploadId", upload_id}}, {}, {}, {}},
              what + " (abort)");
    } catch (const std::exception& e) {
      log::warning(what + ": could not abort the upload: " + e.what());
    }
    throw;
  }
}

void S3Client::create_bucket() {
  const std::string what = "S3 create of bucket " + cfg_.bucket;
  auto r = execute(Call{"PUT", "", {}, {}, {}, {}}, what);
  if (r.status == 200) return;
  if (s3_error_text(r.body).starts_with("BucketAlreadyOwnedByYou")) return;
  // Some stores answer BucketAlreadyExists even to the owner: what counts is that we can
  // read it.
  if (r.status == 409 &&
      execute(Call{"HEAD", "", {}, {}, {}, {}}, what + " (head)").status == 200) {
    return;
  }
  fail(r, what);
}

}  // namespace walvault::s3
