#include "trapeze/watchers/sockets.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <utility>

#include <fmt/format.h>

namespace trapeze::watchers {
namespace {

int family_of(const std::string& name) {
  static const std::map<std::string, int> table = {{"AF_INET", AF_INET}, {"AF_INET6", AF_INET6}, {"AF_UNIX", AF_UNIX}};
  return table.at(name);
}

int type_of(const std::string& name) {
  static const std::map<std::string, int> table = {{"SOCK_STREAM", SOCK_STREAM},
                                                   {"SOCK_DGRAM", SOCK_DGRAM},
                                                   {"SOCK_SEQPACKET", SOCK_SEQPACKET},
                                                   {"SOCK_RAW", SOCK_RAW},
                                                   {"SOCK_RDM", SOCK_RDM}};
  return table.at(name);
}

std::string address_text(const sockaddr_storage& addr) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (addr.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(addr);
    inet_ntop(AF_INET, &a.sin_addr, host, sizeof host);
    return fmt::format("{}:{}", host, ntohs(a.sin_port));
  }
  const auto& a = reinterpret_cast<const sockaddr_in6&>(addr);
  inet_ntop(AF_INET6, &a.sin6_addr, host, sizeof host);
  return fmt::format("[{}]:{}", host, ntohs(a.sin6_port));
}

}  // namespace

BoundSocket::BoundSocket(BoundSocket&& other) noexcept
    : name(std::move(other.name)),
      fd(std::move(other.fd)),
      location(std::move(other.location)),
      path(std::exchange(other.path, {})) {}

BoundSocket& BoundSocket::operator=(BoundSocket&& other) noexcept {
  if (this != &other) {
    if (!path.empty()) ::unlink(path.c_str());
    name = std::move(other.name);
    fd = std::move(other.fd);
    location = std::move(other.location);
    path = std::exchange(other.path, {});
  }
  return *this;
}

BoundSocket::~BoundSocket() {
  if (!path.empty() && fd) ::unlink(path.c_str());
}

BoundSocket bind_socket(const conf::SocketConfig& cfg) {
  const int family = family_of(cfg.family);
  const int type = type_of(cfg.type);
  auto fail = [&](const std::string& what, int err) {
    return SocketError(fmt::format("socket {}: {}: {}", cfg.name, what, std::strerror(err)));
  };

  BoundSocket out;
  out.name = cfg.name;
  out.fd.reset(::socket(family, type | SOCK_CLOEXEC, 0));
  if (!out.fd) throw fail("cannot create it", errno);
  const int fd = out.fd.get();
  int one = 1;
  if (family != AF_UNIX) {
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (cfg.so_reuseport && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
      throw fail("cannot set SO_REUSEPORT", errno);
    if (!cfg.interface.empty() &&
        ::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, cfg.interface.c_str(),
                     static_cast<socklen_t>(cfg.interface.size() + 1)) < 0)
      throw fail(fmt::format("cannot bind to device {}", cfg.interface), errno);
  }

  if (family == AF_UNIX) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (cfg.path.size() >= sizeof addr.sun_path)
      throw SocketError(fmt::format("socket {}: path {} is longer than {} bytes", cfg.name, cfg.path,
                                    sizeof addr.sun_path - 1));
    std::memcpy(addr.sun_path, cfg.path.c_str(), cfg.path.size() + 1);
    struct stat st {};
    if (::lstat(cfg.path.c_str(), &st) == 0) {
      if (!cfg.replace)
        throw SocketError(fmt::format("socket {}: {} already exists (set replace = true to remove it first)",
                                      cfg.name, cfg.path));
      ::unlink(cfg.path.c_str());
    }
    mode_t old = cfg.umask ? ::umask(*cfg.umask) : 0;
    int rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    int err = errno;
    if (cfg.umask) ::umask(old);
    if (rc < 0) throw fail(fmt::format("cannot bind {}", cfg.path), err);
    out.path = cfg.path;
    out.location = cfg.path;
  } else {
    addrinfo hints{};
    hints.ai_family = family;
    hints.ai_socktype = type;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* found = nullptr;
    std::string port = std::to_string(cfg.port);
    int rc = ::getaddrinfo(cfg.host.empty() ? nullptr : cfg.host.c_str(), port.c_str(), &hints, &found);
    if (rc != 0 || !found)
      throw SocketError(fmt::format("socket {}: cannot resolve {}: {}", cfg.name, cfg.host, ::gai_strerror(rc)));
    rc = ::bind(fd, found->ai_addr, found->ai_addrlen);
    int err = errno;
    ::freeaddrinfo(found);
    if (rc < 0) throw fail(fmt::format("cannot bind {}:{}", cfg.host, cfg.port), err);
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
    out.location = address_text(bound);
  }

  if (!cfg.blocking) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  if ((type == SOCK_STREAM || type == SOCK_SEQPACKET) && ::listen(fd, cfg.backlog) < 0)
    throw fail(fmt::format("cannot listen on {}", out.location), errno);
  return out;
}

std::string describe(const BoundSocket& s) {
  return fmt::format("socket '{}' at {}", s.name, s.location);
}

}  // namespace trapeze::watchers
