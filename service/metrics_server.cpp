#include "service/metrics_server.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/error.h"
#include "core/log.h"

namespace walvault {
namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return int(std::max<int64_t>(0, left.count()));
}

std::string reply(int status, const char* reason, const std::string& content_type,
                  const std::string& body, bool head_only, const std::string& extra = {}) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n";
  out += "Content-Type: " + content_type + "\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  out += extra;
  out += "Connection: close\r\n\r\n";
  if (!head_only) out += body;
  return out;
}

}  // namespace

std::string http_response(const std::string& head, const std::function<std::string()>& render) {
  const auto line_end = head.find("\r\n");
  const std::string line = head.substr(0, line_end);
  const auto sp1 = line.find(' ');
  const auto sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
  if (sp2 == std::string::npos || line.compare(sp2 + 1, 5, "HTTP/") != 0) {
    return reply(400, "Bad Request", "text/plain; charset=utf-8", "bad request\n", false);
  }
  const std::string method = line.substr(0, sp1);
  std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  target = target.substr(0, target.find('?'));
  const bool head_only = method == "HEAD";
  if (method != "GET" && !head_only) {
    return reply(405, "Method Not Allowed", "text/plain; charset=utf-8", "use GET /metrics\n",
                 false, "Allow: GET, HEAD\r\n");
  }
  if (target != "/metrics") {
    return reply(404, "Not Found", "text/plain; charset=utf-8",
                 "walvault: the metrics are at /metrics\n", head_only);
  }
  return reply(200, "OK", "text/plain; version=0.0.4; charset=utf-8", render(), head_only);
}

MetricsServer::MetricsServer(const ListenAddress& address, std::function<std::string()> render,
                             MetricsServerLimits limits)
    : address_(address), render_(std::move(render)), limits_(limits) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(address.host.c_str(), address.port.c_str(), &hints, &found);
  if (rc != 0) {
    throw Error(
        "could not resolve metrics-listen \"" + address.describe() + "\": " + ::gai_strerror(rc),
        "give an IP address or a resolvable host name");
  }
  std::string why = "no address";
  for (addrinfo* ai = found; ai; ai = ai->ai_next) {
    UniqueFd fd(
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
    if (!fd.valid()) {
      why = std::strerror(errno);
      continue;
    }
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd.get(), 16) != 0) {
      why = std::strerror(errno);
      continue;
    }
    listener_ = std::move(fd);
    break;
  }
  ::freeaddrinfo(found);
  if (!listener_.valid()) {
    throw Error("could not listen on " + address.describe() + " for metrics: " + why,
                "is the port in use by another process, or the address not on this host?");
  }
  thread_ = std::thread([this] { serve(); });
}

MetricsServer::~MetricsServer() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void MetricsServer::serve() {
  while (!stop_) {
    pollfd pfd{listener_.get(), POLLIN, 0};
    const int r = ::poll(&pfd, 1, 200);
    if (r <= 0) continue;
    UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!client.valid()) continue;  // the client went away, or EMFILE: try again later
    try {
      answer(client.get());
    } catch (const std::exception& e) {
      log::debug(std::string("metrics request failed: ") + e.what());
    }
  }
}

void MetricsServer::answer(int fd) {
  std::string head;
  const auto read_deadline = Clock::now() + std::chrono::milliseconds(limits_.request_timeout_ms);
  char buf[1024];
  while (head.find("\r\n\r\n") == std::string::npos) {
    if (head.size() > limits_.max_request_bytes) {
      head.clear();
      break;
    }
    pollfd pfd{fd, POLLIN, 0};
    const int left = remaining_ms(read_deadline);
    if (left == 0 || stop_) return;  // too slow: close without an answer
    if (::poll(&pfd, 1, left) <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) return;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return;
    }
    head.append(buf, size_t(n));
  }
  const std::string out = head.empty()
                              ? reply(431, "Request Header Fields Too Large",
                                      "text/plain; charset=utf-8", "request too large\n", false)
                              : http_response(head, render_);
  size_t sent = 0;
  const auto write_deadline = Clock::now() + std::chrono::milliseconds(limits_.response_timeout_ms);
  while (sent < out.size()) {
    pollfd pfd{fd, POLLOUT, 0};
    const int left = remaining_ms(write_deadline);
    if (left == 0 || stop_) return;
    if (::poll(&pfd, 1, left) <= 0) continue;
    const ssize_t n = ::send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return;
    }
    sent += size_t(n);
  }
  ::shutdown(fd, SHUT_WR);
}

}  // namespace walvault
