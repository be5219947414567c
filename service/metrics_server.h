#pragma once
// A deliberately tiny HTTP/1.1 responder for Prometheus: GET (or HEAD) /metrics answers the
// exposition text, anything else a short error; every connection is closed after one
// answer. One thread, one connection at a time, and limits on everything a client controls
// (request size, time to send it, time to read the answer), so that a slow or hostile
// client delays a scrape by at most a couple of seconds and can never grow memory or stop
// the service.

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "core/unique_fd.h"
#include "service/service_config.h"

namespace walvault {

struct MetricsServerLimits {
  size_t max_request_bytes = 8192;
  int request_timeout_ms = 2000;   // to receive the request head
  int response_timeout_ms = 5000;  // to send the answer
};

class MetricsServer {
 public:
  // Binds and listens at once (an Error names the address when it cannot), then serves
  // from its own thread until destroyed.
  MetricsServer(const ListenAddress& address, std::function<std::string()> render,
                MetricsServerLimits limits = {});
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  const ListenAddress& address() const { return address_; }

 private:
  void serve();
  void answer(int fd);

  ListenAddress address_;
  std::function<std::string()> render_;
  MetricsServerLimits limits_;
  UniqueFd listener_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The answer to one request head (what MetricsServer sends; separate for unit tests).
std::string http_response(const std::string& request_head,
                          const std::function<std::string()>& render);

}  // namespace walvault
