#pragma once
// Where an S3 repository lives: `--repo s3://BUCKET/PREFIX` plus endpoint, region, URI style
// and TLS settings, and how a key becomes a URL. AWS itself wants virtual-host style
// (bucket.s3.region.amazonaws.com); most self-hosted stores (MinIO, Garage, Ceph RGW behind
// one host name) want path style; "auto" picks host style only for AWS endpoints.

#include <string>
#include <string_view>

namespace walvault::s3 {

enum class UriStyle { automatic, path, host };

struct S3Config {
  std::string bucket;
  std::string prefix;    // without leading or trailing '/'; "" = the bucket's root
  std::string endpoint;  // "https://host[:port]"; "" = AWS for the region
  std::string region = "us-east-1";
  UriStyle uri_style = UriStyle::automatic;
  std::string ca_file;     // extra CA bundle (self-signed stores)
  bool verify_tls = true;  // off only when asked for, never silently
};

bool is_s3_url(std::string_view repo);

// "s3://bucket/some/prefix/" -> bucket "bucket", prefix "some/prefix". Throws a usage
// error for anything else (no bucket, a bucket name S3 refuses, "..").
S3Config parse_s3_url(std::string_view repo);

UriStyle parse_uri_style(std::string_view s);  // "auto" | "path" | "host"

// What one request addresses: the URL to send, the Host header and the path that is signed.
struct RequestTarget {
  std::string url;   // without query string
  std::string host;  // "host[:port]"
  std::string path;  // decoded, starting with '/'
};

// key is relative to the configured prefix ("" addresses the bucket itself).
RequestTarget request_target(const S3Config& cfg, std::string_view key);

// The full object key for a key relative to the prefix.
std::string full_key(const S3Config& cfg, std::string_view key);

}  // namespace walvault::s3
