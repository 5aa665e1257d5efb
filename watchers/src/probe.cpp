#include "trapeze/watchers/probe.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "trapeze/watchers/exit_status.hpp"
#include "trapeze/watchers/spawn.hpp"

namespace trapeze::watchers {
namespace {

constexpr std::size_t kMaxHttpResponse = 64 * 1024;

class ExecProbe;
std::map<pid_t, ExecProbe*>& probe_children() {
  static std::map<pid_t, ExecProbe*> pids;  // loop thread only
  return pids;
}

std::string duration_text(std::chrono::milliseconds d) {
  if (d.count() % 1000 == 0) return fmt::format("{}s", d.count() / 1000);
  return fmt::format("{}ms", d.count());
}

// Resolves without blocking when the host is an address or localhost; other names are resolved
// on a short-lived thread (getaddrinfo blocks).
bool resolve_now(const std::string& host, const std::string& port, sockaddr_storage& out, socklen_t& length) {
  out = {};
  auto port_number = htons(static_cast<std::uint16_t>(std::stoi(port)));
  auto* in = reinterpret_cast<sockaddr_in*>(&out);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&out);
  if (host == "localhost") {
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  } else if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = port_number;
    length = sizeof(sockaddr_in6);
    return true;
  } else if (inet_pton(AF_INET, host.c_str(), &in->sin_addr) != 1) {
    return false;
  }
  in->sin_family = AF_INET;
  in->sin_port = port_number;
  length = sizeof(sockaddr_in);
  return true;
}

// tcp and http: connect, then (http) one request and its answer.
class NetProbe final : public Probe {
 public:
  NetProbe(loop::Loop& loop, const ProbeSpec& spec, ProbeDone done)
      : loop_(loop), spec_(spec), done_(std::move(done)) {}

  ~NetProbe() override { *alive_ = false; }

  void start() {
    if (spec_.kind == conf::ReadyKind::http) {
      auto url = parse_http_url(spec_.target);
      if (!url) return finish_later(fmt::format("'{}' is not an http:// URL", spec_.target));
      host_ = url->host;
      port_ = url->port;
      path_ = url->path;
    } else if (!split_host_port(spec_.target, host_, port_)) {
      return finish_later(fmt::format("'{}' is not host:port", spec_.target));
    }
    timer_ = loop_.after(spec_.timeout, [this] { finish("timed out after " + duration_text(spec_.timeout)); });
    sockaddr_storage addr{};
    socklen_t length = 0;
    if (resolve_now(host_, port_, addr, length)) return connect_to(addr, length);
    // A name: resolved on a thread; the answer comes back through the loop.
    std::weak_ptr<bool> alive = alive_;
    std::thread([&loop = loop_, alive, host = host_, port = port_, this] {
      addrinfo hints{};
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* res = nullptr;
      int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
      sockaddr_storage ss{};
      socklen_t len = 0;
      if (rc == 0 && res) {
        std::memcpy(&ss, res->ai_addr, res->ai_addrlen);
        len = res->ai_addrlen;
      }
      if (res) freeaddrinfo(res);
      std::string why = rc == 0 ? "" : gai_strerror(rc);
      loop.post([alive, ss, len, why, this] {
        if (alive.expired() || !*alive.lock()) return;
        if (len == 0) return finish(fmt::format("cannot resolve {}: {}", host_, why));
        connect_to(ss, len);
      });
    }).detach();
  }

 private:
  void connect_to(const sockaddr_storage& addr, socklen_t len) {
    fd_.reset(::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd_) return finish(fmt::format("cannot create a socket: {}", std::strerror(errno)));
    if (::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), len) == 0) return connected();
    if (errno != EINPROGRESS) return finish(connect_error(errno));
    watch_ = loop_.watch(fd_.get(), EPOLLOUT, [this](std::uint32_t) {
      int err = 0;
      socklen_t n = sizeof err;
      ::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &n);
      if (err != 0) return finish(connect_error(err));
      connected();
    });
  }

  std::string connect_error(int err) const {
    return fmt::format("connect to {}:{}: {}", host_, port_, std::strerror(err));
  }

  void connected() {
    if (spec_.kind != conf::ReadyKind::http) return finish(std::nullopt);
    request_ = fmt::format("GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: trapeze\r\nConnection: close\r\n\r\n", path_,
                           host_);
    watch_.reset();  // the connect's watch of the same fd goes first
    watch_ = loop_.watch(fd_.get(), EPOLLOUT | EPOLLIN, [this](std::uint32_t events) { on_http(events); });
  }

  void on_http(std::uint32_t events) {
    if (sent_ < request_.size() && (events & EPOLLOUT)) {
      ssize_t n = ::send(fd_.get(), request_.data() + sent_, request_.size() - sent_, MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN) return finish(fmt::format("{}: {}", spec_.target, std::strerror(errno)));
      if (n > 0) sent_ += static_cast<std::size_t>(n);
      if (sent_ == request_.size()) watch_.modify(EPOLLIN);
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
    char buf[8192];
    for (;;) {
      ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
      if (n > 0) {
        response_.append(buf, static_cast<std::size_t>(n));
        if (response_.size() >= kMaxHttpResponse) return judge_http();
        continue;
      }
      if (n == 0) return judge_http();  // the server closed: the whole answer is here
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      return finish(fmt::format("{}: {}", spec_.target, std::strerror(errno)));
    }
    // Without a body to look for, the status line is enough.
    if (spec_.http_body.empty() && response_.find("\r\n") != std::string::npos) judge_http();
  }

  void judge_http() {
    auto eol = response_.find("\r\n");
    std::string status_line = response_.substr(0, eol == std::string::npos ? response_.size() : eol);
    int status = 0;
    if (status_line.rfind("HTTP/", 0) == 0) {
      auto sp = status_line.find(' ');
      if (sp != std::string::npos) status = std::atoi(status_line.c_str() + sp + 1);
    }
    if (status == 0) return finish(fmt::format("{}: not an HTTP response", spec_.target));
    if (status < 200 || status > 299) return finish(fmt::format("{}: status {}", spec_.target, status));
    if (!spec_.http_body.empty()) {
      auto body_at = response_.find("\r\n\r\n");
      std::string_view body =
          body_at == std::string::npos ? std::string_view{} : std::string_view(response_).substr(body_at + 4);
      if (body.find(spec_.http_body) == std::string_view::npos)
        return finish(fmt::format("{}: the body does not contain '{}'", spec_.target, spec_.http_body));
    }
    finish(std::nullopt);
  }

  // A failure found before any fd exists: reported from the loop, not from start().
  void finish_later(std::string why) {
    std::weak_ptr<bool> alive = alive_;
    loop_.defer([alive, why, this] {
      if (!alive.expired() && *alive.lock()) finish(why);
    });
  }

  void finish(std::optional<std::string> error) {
    if (finished_) return;
    finished_ = true;
    watch_.reset();
    fd_.reset();
    timer_.reset();
    auto done = std::move(done_);
    done(std::move(error));  // may destroy this probe: nothing after
  }

  loop::Loop& loop_;
  ProbeSpec spec_;
  ProbeDone done_;
  std::string host_, port_, path_;
  loop::UniqueFd fd_;
  loop::FdWatch watch_;
  loop::Timer timer_;
  std::string request_, response_;
  std::size_t sent_ = 0;
  bool finished_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// exec: /bin/sh -c COMMAND in its own process group; exit 0 passes.
class ExecProbe final : public Probe {
 public:
  ExecProbe(loop::Loop& loop, const ProbeSpec& spec, ProbeDone done)
      : loop_(loop), spec_(spec), done_(std::move(done)) {}

  ~ExecProbe() override {
    *alive_ = false;
    if (pid_ > 0 && !exited_) {
      ::kill(-pid_, SIGKILL);  // reaped by the arbiter's SIGCHLD handler once it is gone
      probe_children().erase(pid_);
    }
  }

  void start() {
    SpawnRequest req;
    req.path = "/bin/sh";
    req.argv = {"/bin/sh", "-c", spec_.target};
    req.env = spec_.env;
    req.working_dir = spec_.working_dir;
    devnull_.reset(::open("/dev/null", O_RDWR | O_CLOEXEC));
    req.fds = {{0, devnull_.get()}, {1, devnull_.get()}, {2, devnull_.get()}};
    auto result = spawn(req);
    devnull_.reset();
    if (auto* failure = std::get_if<SpawnFailure>(&result)) {
      std::weak_ptr<bool> alive = alive_;
      std::string why = failure->what;
      loop_.defer([alive, why, this] {
        if (!alive.expired() && *alive.lock()) finish(why);
      });
      return;
    }
    auto& child = std::get<Spawned>(result);
    pid_ = child.pid;
    pidfd_ = std::move(child.pidfd);
    probe_children()[pid_] = this;
    watch_ = loop_.watch(pidfd_.get(), EPOLLIN, [this](std::uint32_t) { on_exit(); });
    timer_ = loop_.after(spec_.timeout, [this] {
      timed_out_ = true;
      ::kill(-pid_, SIGKILL);  // the exit comes through the pidfd
    });
  }

 // Called when its pidfd is readable, or by the SIGCHLD handler that saw it exit.
  void on_exit() {
    siginfo_t info{};
    if (waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED | WNOHANG) < 0 || info.si_pid == 0) return;
    exited_ = true;
    probe_children().erase(pid_);
    ::kill(-pid_, SIGKILL);  // anything the command left behind in its group
    ExitStatus status = ExitStatus::from_siginfo(info);
    if (timed_out_) return finish("timed out after " + duration_text(spec_.timeout));
    if (status.bus_code() == 0) return finish(std::nullopt);
    finish(fmt::format("'{}' {}", spec_.target, status.to_string()));
  }

 private:

  void finish(std::optional<std::string> error) {
    watch_.reset();
    timer_.reset();
    auto done = std::move(done_);
    done(std::move(error));  // may destroy this probe: nothing after
  }

  loop::Loop& loop_;
  ProbeSpec spec_;
  ProbeDone done_;
  loop::UniqueFd devnull_, pidfd_;
  loop::FdWatch watch_;
  loop::Timer timer_;
  pid_t pid_ = -1;
  bool exited_ = false, timed_out_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace

bool split_host_port(const std::string& text, std::string& host, std::string& port) {
  std::size_t colon;
  if (!text.empty() && text[0] == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') return false;
    host = text.substr(1, close - 1);
    colon = close + 1;
  } else {
    colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) return false;
    host = text.substr(0, colon);
  }
  port = text.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) return false;
  int n = std::stoi(port);
  return n > 0 && n < 65536;
}

std::optional<HttpUrl> parse_http_url(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) return std::nullopt;
  std::string rest = url.substr(scheme.size());
  HttpUrl out;
  auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  if (slash != std::string::npos) out.path = rest.substr(slash);
  if (authority.empty()) return std::nullopt;
  std::string host, port;
  if (split_host_port(authority, host, port)) {
    out.host = host;
    out.port = port;
  } else if (authority.find(':') == std::string::npos || authority[0] == '[') {
    out.host = authority[0] == '[' && authority.back() == ']' ? authority.substr(1, authority.size() - 2) : authority;
  } else {
    return std::nullopt;
  }
  return out;
}

ProbeSpec probe_spec(conf::ReadyKind kind, const std::string& target, const std::string& http_body,
                     conf::Duration timeout, const std::vector<std::string>& env, const std::string& working_dir) {
  ProbeSpec spec;
  spec.kind = kind;
  spec.target = target;
  spec.http_body = http_body;
  spec.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
  if (kind == conf::ReadyKind::exec) {
    spec.env = env;
    spec.working_dir = working_dir;
  }
  return spec;
}

bool reap_probe_child(pid_t pid) {
  auto it = probe_children().find(pid);
  if (it == probe_children().end()) return false;
  it->second->on_exit();
  return true;
}

std::unique_ptr<Probe> start_probe(loop::Loop& loop, const ProbeSpec& spec, ProbeDone done) {
  if (spec.kind == conf::ReadyKind::exec) {
    auto p = std::make_unique<ExecProbe>(loop, spec, std::move(done));
    p->start();
    return p;
  }
  auto p = std::make_unique<NetProbe>(loop, spec, std::move(done));
  p->start();
  return p;
}

}  // namespace trapeze::watchers
