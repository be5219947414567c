#pragma once
// One HTTP(S) connection to an object store, kept open across requests (libcurl easy handle:
// it reuses the TCP and TLS session, which matters when every WAL segment is a request).

#include <curl/curl.h>

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace walvault::s3 {

struct HttpRequest {
  std::string method;  // GET, PUT, HEAD, DELETE, POST
  std::string url;     // with its query string
  std::vector<std::pair<std::string, std::string>> headers;
  std::span<const std::byte> body;  // PUT/POST payload (must outlive perform)
};

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lower-case
  std::string body;
};

struct TlsOptions {
  std::string ca_file;
  bool verify = true;
};

class HttpClient {
 public:
  explicit HttpClient(TlsOptions tls, long timeout_s = 300);
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Throws TransportError when no HTTP response arrived (connection refused, reset, TLS
  // failure, timeout); an HTTP error status is a normal response.
  HttpResponse perform(const HttpRequest& req);

 private:
  struct CurlDeleter {
    void operator()(CURL* c) const { curl_easy_cleanup(c); }
  };
  std::unique_ptr<CURL, CurlDeleter> curl_;
  TlsOptions tls_;
  long timeout_s_;
};

// No response at all (as opposed to an HTTP error status); may be worth a retry.
class TransportError : public std::runtime_error {
 public:
  TransportError(const std::string& what, bool retryable)
      : std::runtime_error(what), retryable_(retryable) {}
  // False for what a retry cannot fix (a certificate that does not verify, a bad URL).
  bool retryable() const { return retryable_; }

 private:
  bool retryable_;
};

}  // namespace walvault::s3
