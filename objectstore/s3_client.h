#pragma once
// The S3 operations a walvault repository needs (put, create-only put, get, head, list,
// delete, multipart upload), signed with SigV4 over one reused connection. Keys are relative
// to the configured prefix. Transient failures (no response, 500, 502, 503, 504, 429) are
// retried with backoff; everything else is an Error naming the operation, the key and S3's
// own error code and message.

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "objectstore/http_client.h"
#include "objectstore/s3_config.h"
#include "objectstore/sigv4.h"

namespace walvault::s3 {

struct ObjectInfo {
  std::string key;  // relative to the prefix
  uint64_t size = 0;
  std::string etag;
  std::string sha256;  // from x-amz-meta-sha256 (head only; "" when absent)
};

enum class CreateResult { created, identical };

class S3Client {
 public:
  S3Client(S3Config cfg, Credentials creds);

  const S3Config& config() const { return cfg_; }

  // Stores the object, recording the body's sha256 as metadata (x-amz-meta-sha256) and sending
  // it as x-amz-content-sha256 so the store rejects a body damaged on the way.
  void put(std::string_view key, std::span<const std::byte> data);

  // Create-only: an object already there with the same sha256 is success (identical), one
  // with different content is an Error naming both checksums. Sends If-None-Match: * so a
  // store that supports conditional writes also refuses a racing writer.
  CreateResult put_create_only(std::string_view key, std::span<const std::byte> data);

  std::optional<std::string> get(std::string_view key);
  std::optional<ObjectInfo> head(std::string_view key);
  // Every object whose key starts with key_prefix (relative), in key order, all pages.
  // page_size bounds each reply (S3's own limit is 1000).
  std::vector<ObjectInfo> list(std::string_view key_prefix, int page_size = 1000);
  // Deleting an absent object is not an error (S3 semantics).
  void remove(std::string_view key);

  // Multipart upload of a large object in parts of part_size bytes (>= 5 MiB except the last),
  // sha256 of the whole recorded as metadata. An upload that fails is aborted.
  void put_multipart(std::string_view key, std::span<const std::byte> data, size_t part_size);

  // Creates the bucket (tests and first-time set-up); an existing bucket of ours is fine.
  void create_bucket();

 private:
  struct Call {
    std::string method;
    std::string key;  // relative; "" = bucket
    NameValues query;
    NameValues headers;
    std::span<const std::byte> body;
    std::string body_sha256;  // computed when empty
  };
  HttpResponse execute(Call call, std::string_view what);
  [[noreturn]] void fail(const HttpResponse& r, std::string_view what);

  S3Config cfg_;
  Credentials creds_;
  HttpClient http_;
};

// An HTTP Date header ("Fri, 04 Dec 2026 08:41:00 GMT") as a time; nullopt when malformed.
std::optional<std::time_t> parse_http_date(std::string_view text);

// S3's XML error body -> "Code: Message" ("" when the body is not an S3 error).
std::string s3_error_text(std::string_view xml);

}  // namespace walvault::s3
