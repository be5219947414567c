#include "objectstore/http_client.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <mutex>

#include "core/error.h"

namespace walvault::s3 {
namespace {

struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

struct Upload {
  std::span<const std::byte> data;
  size_t offset = 0;
};

size_t read_body(char* buf, size_t size, size_t n, void* user) {
  auto* up = static_cast<Upload*>(user);
  const size_t len = std::min(size * n, up->data.size() - up->offset);
  std::memcpy(buf, up->data.data() + up->offset, len);
  up->offset += len;
  return len;
}

size_t write_body(char* p, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(p, size * n);
  return size * n;
}

size_t write_header(char* p, size_t size, size_t n, void* user) {
  auto* headers = static_cast<std::map<std::string, std::string>*>(user);
  std::string_view line(p, size * n);
  // A new status line (after a redirect or 100 Continue) starts a new header block.
  if (line.starts_with("HTTP/")) headers->clear();
  const auto colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string name(line.substr(0, colon));
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
      value.remove_suffix(1);
    (*headers)[name] = std::string(value);
  }
  return size * n;
}

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

HttpClient::HttpClient(TlsOptions tls, long timeout_s)
    : tls_(std::move(tls)), timeout_s_(timeout_s) {
  global_init();
  curl_.reset(curl_easy_init());
  if (!curl_) throw Error("cannot initialise libcurl");
}

HttpResponse HttpClient::perform(const HttpRequest& req) {
  CURL* c = curl_.get();
  curl_easy_reset(c);  // keeps the connection cache, drops the previous request's options
  HttpResponse resp;
  Upload upload{req.body, 0};
  Slist headers;
  for (const auto& [k, v] : req.headers) {
    const std::string line = k + ": " + v;
    curl_slist* next = curl_slist_append(headers.get(), line.c_str());
    if (!next) throw Error("out of memory building HTTP headers");
    (void)headers.release();
    headers.reset(next);
  }
  // Without this curl would send "Expect: 100-continue" and wait a second for large bodies.
  {
    curl_slist* next = curl_slist_append(headers.get(), "Expect:");
    if (!next) throw Error("out of memory building HTTP headers");
    (void)headers.release();
    headers.reset(next);
  }
  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s_);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, write_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &resp.headers);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, tls_.verify ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, tls_.verify ? 2L : 0L);
  if (!tls_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, tls_.ca_file.c_str());
  if (req.method == "GET") {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else if (req.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (req.method == "PUT" || req.method == "POST") {
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read_body);
    curl_easy_setopt(c, CURLOPT_READDATA, &upload);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    if (req.method == "POST") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "POST");
  } else {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  const CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    const bool retryable = rc != CURLE_PEER_FAILED_VERIFICATION && rc != CURLE_SSL_CACERT_BADFILE &&
                           rc != CURLE_URL_MALFORMAT && rc != CURLE_UNSUPPORTED_PROTOCOL &&
                           rc != CURLE_SSL_CERTPROBLEM;
    throw TransportError(std::string(errbuf[0] ? errbuf : curl_easy_strerror(rc)), retryable);
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
  return resp;
}

}  // namespace walvault::s3
