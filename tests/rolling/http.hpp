// A tiny HTTP/1.0 client for the rolling tests: one GET per connection, bounded in time.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

namespace trapeze::testing {

struct HttpAnswer {
  bool refused = false;  // ECONNREFUSED: nobody listened
  bool ok = false;       // a whole "200 OK" answer came
  std::string body;
  std::string error;
};

/// GET / on 127.0.0.1:PORT; every step waits at most `timeout`.
inline HttpAnswer http_get(int port, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  HttpAnswer a;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    a.refused = errno == ECONNREFUSED;
    a.error = std::strerror(errno);
    ::close(fd);
    return a;
  }
  const char request[] = "GET / HTTP/1.0\r\n\r\n";
  if (::send(fd, request, sizeof request - 1, MSG_NOSIGNAL) < 0) a.error = std::strerror(errno);
  std::string got;
  char buf[1024];
  for (ssize_t n; a.error.empty() && (n = ::recv(fd, buf, sizeof buf, 0)) != 0;) {
    if (n < 0) {
      a.error = std::strerror(errno);
      break;
    }
    got.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  auto head_end = got.find("\r\n\r\n");
  if (a.error.empty() && got.starts_with("HTTP/1.0 200 OK") && head_end != std::string::npos) {
    a.ok = true;
    a.body = got.substr(head_end + 4);
    while (!a.body.empty() && a.body.back() == '\n') a.body.pop_back();
  } else if (a.error.empty()) {
    a.error = "bad answer: '" + got + "'";
  }
  return a;
}

}  // namespace trapeze::testing
