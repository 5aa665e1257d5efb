#include "system.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <fmt/format.h>

namespace trapeze::arbiter {
namespace {

std::runtime_error system_error(const std::string& what) {
  return std::runtime_error(fmt::format("{}: {}", what, std::strerror(errno)));
}

// The write end of the pipe to the waiting first process, in the daemon.
int report_fd = -1;

}  // namespace

std::optional<PidfileLock> PidfileLock::acquire(const std::string& path, pid_t& holder) {
  holder = 0;
  loop::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd) throw system_error(fmt::format("cannot open pidfile '{}'", path));
  if (flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
    if (errno != EWOULDBLOCK) throw system_error(fmt::format("cannot lock pidfile '{}'", path));
    char buf[32] = {};
    if (pread(fd.get(), buf, sizeof buf - 1, 0) > 0) holder = static_cast<pid_t>(std::atol(buf));
    return std::nullopt;
  }
  PidfileLock lock;
  lock.path_ = path;
  lock.fd_ = std::move(fd);
  return lock;
}

void PidfileLock::write_pid() {
  std::string text = fmt::format("{}\n", getpid());
  if (ftruncate(fd_.get(), 0) < 0 || pwrite(fd_.get(), text.data(), text.size(), 0) < 0)
    throw system_error(fmt::format("cannot write pidfile '{}'", path_));
}

void PidfileLock::remove() {
  if (!path_.empty()) ::unlink(path_.c_str());
  fd_.reset();
}

void daemonize(const std::string& log_file, int keep_fd) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0) throw system_error("cannot create a pipe");
  pid_t first = fork();
  if (first < 0) throw system_error("cannot fork");
  if (first > 0) {
    // The caller (an install hook, say): wait for the daemon's word, then leave.
    ::close(pipefd[1]);
    int status = 0;
    waitpid(first, &status, 0);
    std::string message;
    char buf[512];
    ssize_t n;
    while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) message.append(buf, static_cast<std::size_t>(n));
    if (message == "ok") _exit(0);
    if (message.empty()) message = "the daemon exited before it was ready";
    fmt::print(stderr, "trapeze: {}\n", message);
    _exit(1);
  }
  ::close(pipefd[0]);
  if (setsid() < 0) _exit(1);
  pid_t second = fork();
  if (second < 0) _exit(1);
  if (second > 0) _exit(0);  // the session leader goes: the daemon can never get a terminal

  report_fd = pipefd[1];
  int null_fd = ::open("/dev/null", O_RDWR);
  int out_fd = null_fd;
  if (!log_file.empty() && log_file != "-") {
    out_fd = ::open(log_file.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (out_fd < 0) {
      daemon_failed(fmt::format("cannot open log file '{}': {}", log_file, std::strerror(errno)));
      _exit(1);
    }
  }
  dup2(null_fd, 0);
  dup2(out_fd, 1);
  dup2(out_fd, 2);
  // Nothing of the caller's leaks into the daemon (a hook's pipes would keep it waiting).
  int keep[] = {std::min(keep_fd, report_fd), std::max(keep_fd, report_fd)};
  unsigned lo = 3;
  for (int k : keep) {
    if (k < 3) continue;
    if (static_cast<unsigned>(k) > lo) syscall(SYS_close_range, lo, static_cast<unsigned>(k) - 1, 0u);
    lo = static_cast<unsigned>(k) + 1;
  }
  syscall(SYS_close_range, lo, ~0u, 0u);
}

void daemon_ready() {
  if (report_fd < 0) return;
  [[maybe_unused]] auto n = ::write(report_fd, "ok", 2);
  ::close(report_fd);
  report_fd = -1;
}

void daemon_failed(const std::string& why) {
  if (report_fd < 0) return;
  [[maybe_unused]] auto n = ::write(report_fd, why.data(), why.size());
  ::close(report_fd);
  report_fd = -1;
}

void sd_notify(const std::string& state) {
  static const std::string socket_path = [] {
    const char* s = std::getenv("NOTIFY_SOCKET");
    return std::string(s ? s : "");
  }();
  if (socket_path.empty()) return;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) return;
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  loop::UniqueFd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return;
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path.size());
  [[maybe_unused]] auto n =
      sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), len);
}

}  // namespace trapeze::arbiter
