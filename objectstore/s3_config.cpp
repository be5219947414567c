#include "objectstore/s3_config.h"

#include <cctype>

#include "core/error.h"
#include "objectstore/sigv4.h"

namespace walvault::s3 {
namespace {

constexpr std::string_view kScheme = "s3://";

// S3's rules for bucket names (3-63 characters of [a-z0-9.-], starting and ending with a
// letter or digit).
bool valid_bucket(std::string_view b) {
  if (b.size() < 3 || b.size() > 63) return false;
  for (char c : b) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-')) {
      return false;
    }
  }
  auto alnum = [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c));
  };
  return alnum(b.front()) && alnum(b.back());
}

std::string_view host_of(std::string_view endpoint) {
  auto at = endpoint.find("://");
  std::string_view rest = at == std::string_view::npos ? endpoint : endpoint.substr(at + 3);
  return rest.substr(0, rest.find('/'));
}

std::string_view scheme_of(std::string_view endpoint) {
  auto at = endpoint.find("://");
  return at == std::string_view::npos ? std::string_view("https") : endpoint.substr(0, at);
}

bool is_aws(std::string_view host) {
  auto name = host.substr(0, host.find(':'));
  return name.ends_with(".amazonaws.com");
}

}  // namespace

bool is_s3_url(std::string_view repo) {
  return repo.starts_with(kScheme);
}

S3Config parse_s3_url(std::string_view repo) {
  if (!is_s3_url(repo)) {
    throw usage_error("\"" + std::string(repo) + "\" is not an S3 location",
                      "write s3://BUCKET/PREFIX");
  }
  std::string_view rest = repo.substr(kScheme.size());
  const auto slash = rest.find('/');
  S3Config cfg;
  cfg.bucket = std::string(rest.substr(0, slash));
  if (!valid_bucket(cfg.bucket)) {
    throw usage_error("\"" + std::string(repo) + "\" does not name a valid S3 bucket",
                      "bucket names are 3 to 63 characters of a-z, 0-9, '.' and '-'");
  }
  std::string_view prefix = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
  while (prefix.ends_with('/')) prefix.remove_suffix(1);
  std::string clean;
  size_t start = 0;
  while (start <= prefix.size() && !prefix.empty()) {
    const auto end = std::min(prefix.find('/', start), prefix.size());
    const std::string_view part = prefix.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") {
      throw usage_error("\"" + std::string(repo) + "\" has an empty, \".\" or \"..\" path part",
                        "write s3://BUCKET/PREFIX with plain names between the slashes");
    }
    if (!clean.empty()) clean += '/';
    clean += part;
    start = end + 1;
  }
  cfg.prefix = clean;
  return cfg;
}

UriStyle parse_uri_style(std::string_view s) {
  if (s == "auto") return UriStyle::automatic;
  if (s == "path") return UriStyle::path;
  if (s == "host") return UriStyle::host;
  throw usage_error("invalid S3 URI style \"" + std::string(s) + "\"", "use auto, path or host");
}

std::string full_key(const S3Config& cfg, std::string_view key) {
  if (cfg.prefix.empty()) return std::string(key);
  if (key.empty()) return cfg.prefix + "/";
  return cfg.prefix + "/" + std::string(key);
}

RequestTarget request_target(const S3Config& cfg, std::string_view key) {
  const std::string endpoint =
      cfg.endpoint.empty() ? "https://s3." + cfg.region + ".amazonaws.com" : cfg.endpoint;
  const std::string scheme(scheme_of(endpoint));
  const std::string host(host_of(endpoint));
  bool host_style = cfg.uri_style == UriStyle::host;
  if (cfg.uri_style == UriStyle::automatic) {
    // Dotted bucket names break the TLS wildcard certificate of virtual hosts.
    host_style = is_aws(host) && cfg.bucket.find('.') == std::string::npos;
  }
  RequestTarget t;
  const std::string object = key.empty() ? std::string() : full_key(cfg, key);
  if (host_style) {
    t.host = cfg.bucket + "." + host;
    t.path = "/" + object;
  } else {
    t.host = host;
    t.path = "/" + cfg.bucket + (object.empty() ? "" : "/" + object);
  }
  t.url = scheme + "://" + t.host + uri_encode(t.path, true);
  return t;
}

}  // namespace walvault::s3
