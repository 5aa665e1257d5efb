#include "trapeze/watchers/notify.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <system_error>

#include <fmt/format.h>

namespace trapeze::watchers {

NotifyHub::NotifyHub(loop::Loop& loop) {
  fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd_) throw std::system_error(errno, std::system_category(), "notify socket");
  int on = 1;
  if (::setsockopt(fd_.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on) < 0)
    throw std::system_error(errno, std::system_category(), "notify socket: SO_PASSCRED");
  std::random_device rd;
  name_ = fmt::format("@trapeze-notify-{}-{:08x}", getpid(), rd());
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // Abstract: a leading NUL, then the name without its '@'.
  std::memcpy(addr.sun_path + 1, name_.data() + 1, name_.size() - 1);
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size());
  if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), len) < 0)
    throw std::system_error(errno, std::system_category(), "notify socket: bind " + name_);
  watch_ = loop.watch(fd_.get(), EPOLLIN, [this](std::uint32_t) { on_readable(); });
}

void NotifyHub::expect(pid_t pid, std::function<void(std::string_view)> on_message) {
  listeners_[pid] = std::move(on_message);
}

void NotifyHub::forget(pid_t pid) { listeners_.erase(pid); }

void NotifyHub::on_readable() {
  for (int i = 0; i < 64; ++i) {  // then let the loop serve others; epoll says so again
    char buf[4096];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    iovec iov{buf, sizeof buf - 1};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd_.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // EAGAIN: drained
    }
    pid_t sender = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
        ucred cred{};
        std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
        sender = cred.pid;
      }
    auto it = listeners_.find(sender);
    if (it == listeners_.end()) continue;  // not a process we wait for: ignored, as systemd does
    auto fn = it->second;                  // it may forget itself
    fn(std::string_view(buf, static_cast<std::size_t>(n)));
  }
}

bool says_ready(std::string_view message) {
  while (!message.empty()) {
    auto eol = message.find('\n');
    std::string_view line = message.substr(0, eol);
    if (line == "READY=1") return true;
    if (eol == std::string_view::npos) break;
    message.remove_prefix(eol + 1);
  }
  return false;
}

}  // namespace trapeze::watchers
