// Isolated hooks: starting a hook host, talking to it, reaping it (the arbiter's side), and
// the host itself (`trapeze hook-host`).
#include "trapeze/hooks/host.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <map>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "outcome.hpp"
#include "trapeze/hooks/plugin.hpp"
#include "trapeze/hooks/wire.hpp"

extern char** environ;

namespace trapeze::hooks {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kHostFd = 3;  // the host's end of the socketpair, in the host

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.release();
    }
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// ---- the arbiter's side ------------------------------------------------------------------

// clone3's argument, version 0 (Linux 5.3): declared here so that <linux/sched.h> and glibc's
// <sched.h> need not meet.
struct CloneArgs {
  std::uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

// Hosts not yet reaped by their hook thread. Arbiter::reap_strays asks claim_host_child about
// every exited child it finds: for a host it reaps it on the spot and keeps its status here for
// the hook thread (leaving it unreaped would make waitid(P_ALL) return it again and again, and
// hide the children behind it). The mutex is held from clone3 to the insertion, so no one can
// see a host's exit before it is registered.
struct HostEntry {
  bool reaped = false;  // by claim_host_child: `info` is its exit
  siginfo_t info{};
};
std::mutex registry_mu;
std::map<pid_t, HostEntry>& registry() {
  static std::map<pid_t, HostEntry> hosts;
  return hosts;
}

// The exit of our host, whoever reaped it. Call once its pidfd is readable (it has exited).
siginfo_t reap_own(pid_t pid, int pidfd) {
  std::lock_guard lock(registry_mu);
  siginfo_t info{};
  auto it = registry().find(pid);
  if (it != registry().end() && it->second.reaped) {
    info = it->second.info;
  } else {
    while (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED) < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      if (it != registry().end()) registry().erase(it);
      throw std::system_error(err, std::generic_category(), "waitid");
    }
  }
  if (it != registry().end()) registry().erase(it);
  return info;
}

struct Host {
  pid_t pid = 0;
  Fd pidfd, sock;
  bool reaped = false;

  Host() = default;
  Host(Host&& o) noexcept : pid(o.pid), pidfd(std::move(o.pidfd)), sock(std::move(o.sock)), reaped(o.reaped) {
    o.pid = 0;
  }
  Host& operator=(Host&&) = delete;
  // A host left behind by an exception is killed and reaped: no zombie, no stray.
  ~Host() {
    if (pid == 0 || reaped) return;
    ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0);
    pollfd p{pidfd.get(), POLLIN, 0};
    while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
    }
    try {
      reap_own(pid, pidfd.get());
    } catch (const std::system_error&) {
    }
  }
};

// The arbiter's environment, less what tells a process it is the one systemd started.
std::vector<std::string> host_environment() {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view v(*e);
    if (v.starts_with("NOTIFY_SOCKET=") || v.starts_with("LISTEN_FDS=") || v.starts_with("LISTEN_PID=") ||
        v.starts_with("LISTEN_FDNAMES="))
      continue;
    out.emplace_back(v);
  }
  return out;
}

// In the child of clone3, until execve. The child is a copy of one thread of a multi-threaded
// process: another thread may have held any lock, so only raw system calls here, no libc
// state, no allocation.
[[noreturn]] void exec_host(int sock, pid_t parent, const char* path, char* const* argv, char* const* envp) {
  if (sock == kHostFd) {
    if (::syscall(SYS_fcntl, kHostFd, F_SETFD, 0) < 0) ::syscall(SYS_exit_group, 127);
  } else if (::syscall(SYS_dup3, sock, kHostFd, 0) < 0) {  // without O_CLOEXEC: it is inherited
    ::syscall(SYS_exit_group, 127);
  }
  // Everything else the arbiter has open (ZMQ, the loop, pidfds, pipes) is close-on-exec
  // already; close it now anyway, so a missing flag anywhere cannot leak into a host.
  ::syscall(SYS_close_range, kHostFd + 1, ~0u, 0);
  // The thread that started us waits for us; if it dies (the arbiter died), so do we.
  ::syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (::syscall(SYS_getppid) != parent) ::syscall(SYS_exit_group, 127);
  std::uint64_t none = 0;  // hook threads block every signal; the host starts with none blocked
  ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, nullptr, sizeof none);
  ::syscall(SYS_execve, path, argv, envp);
  ::syscall(SYS_exit_group, 127);
  __builtin_unreachable();
}

// Starts a host. Throws std::system_error.
Host start_host(const std::string& binary) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    throw std::system_error(errno, std::generic_category(), "socketpair");
  Fd ours(sv[0]), theirs(sv[1]);
  // Everything the child needs is made here, before clone3.
  std::string arg0 = "trapeze", arg1 = "hook-host";
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  std::vector<std::string> env = host_environment();
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t parent = ::getpid();

  int pidfd = -1;
  CloneArgs args{};
  // CLONE_PIDFD: the pidfd comes with the process, so it cannot name a recycled pid.
  args.flags = CLONE_PIDFD;
  args.pidfd = reinterpret_cast<std::uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  Host host;
  {
    std::lock_guard lock(registry_mu);
    long r = ::syscall(SYS_clone3, &args, sizeof args);
    if (r == 0) exec_host(theirs.get(), parent, binary.c_str(), argv, envp.data());
    if (r < 0) throw std::system_error(errno, std::generic_category(), "clone3");
    registry()[static_cast<pid_t>(r)] = HostEntry{};
    host.pid = static_cast<pid_t>(r);
    host.pidfd = Fd(pidfd);
  }
  host.sock = std::move(ours);
  if (::fcntl(host.sock.get(), F_SETFL, O_NONBLOCK) != 0)
    throw std::system_error(errno, std::generic_category(), "fcntl");
  return host;
}

spdlog::level::level_enum spd_level(int level) {
  return level == TRAPEZE_LOG_DEBUG     ? spdlog::level::debug
         : level == TRAPEZE_LOG_INFO    ? spdlog::level::info
         : level == TRAPEZE_LOG_WARNING ? spdlog::level::warn
                                        : spdlog::level::err;
}

struct HostOutcome {
  std::optional<HookResult> answer;  // what the host said, if it said it in time
  bool load_error = false;           // the answer is a LoadError
  bool timed_out = false;
  std::optional<std::string> broken;  // the host broke the protocol
  siginfo_t exit{};
};

// Runs `req` in a new host; blocks until the host is reaped.
HostOutcome run_host(const wire::HostRequest& req, const std::string& binary, Clock::time_point deadline,
                     const std::atomic<int>* cancelled, int wake_fd) {
  HostOutcome out;
  Host host = start_host(binary);
  std::string pending = wire::encode(wire::ToHost{req});
  wire::FrameReader reader;
  bool sock_open = true, cancel_sent = false, exited = false, killed = false;

  auto handle = [&](const std::string& body) {
    wire::FromHost m = wire::decode_from_host(body);
    if (auto* log = std::get_if<wire::LogRecord>(&m)) {
      spdlog::log(spd_level(log->level), "watcher {}: hook {}: {}", req.watcher_name, req.hook_name,
                  log->message);
    } else if (out.timed_out || out.answer) {
      // late, or a second answer: the first one counts
    } else if (auto* answer = std::get_if<wire::Answer>(&m)) {
      out.answer = HookResult{answer->outcome, answer->error, 0};
    } else {
      out.answer = HookResult{HookOutcome::error, std::get<wire::LoadError>(m).message, 0};
      out.load_error = true;
    }
  };
  // Reads what is there; false at EOF or error.
  auto drain = [&]() {
    char buf[16384];
    for (;;) {
      ssize_t n = ::recv(host.sock.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        reader.feed({buf, static_cast<std::size_t>(n)});
        while (auto body = reader.next()) handle(*body);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
  };
  auto kill_host = [&] { ::syscall(SYS_pidfd_send_signal, host.pidfd.get(), SIGKILL, nullptr, 0); };

  while (!exited) {
    int timeout_ms = -1;
    if (!killed) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) {
        out.timed_out = !out.answer.has_value();  // an answer in time stands, however slow the exit
        kill_host();
        killed = true;
        if (out.timed_out && !req.check_only)
          spdlog::warn("watcher {}: hook {} timed out after {}; its host (pid {}) is killed",
                       req.watcher_name, req.hook_name, timeout_text(req.timeout), host.pid);
        continue;
      }
      timeout_ms = static_cast<int>(std::min<long long>(left, 1 << 30));
    }
    if (cancelled != nullptr && cancelled->load() && !cancel_sent) {
      pending += wire::encode(wire::ToHost{wire::Cancel{}});
      cancel_sent = true;
    }
    pollfd fds[3] = {
        {host.pidfd.get(), POLLIN, 0},
        {sock_open ? host.sock.get() : -1, static_cast<short>(POLLIN | (pending.empty() ? 0 : POLLOUT)), 0},
        {wake_fd, POLLIN, 0}};
    if (::poll(fds, 3, timeout_ms) < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "poll");
    }
    if (fds[2].revents & POLLIN) {
      std::uint64_t v;
      [[maybe_unused]] auto n = ::read(wake_fd, &v, sizeof v);
    }
    try {
      if (sock_open && (fds[1].revents & POLLOUT) && !pending.empty()) {
        ssize_t n = ::send(host.sock.get(), pending.data(), pending.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0)
          pending.erase(0, static_cast<std::size_t>(n));
        else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
          pending.clear();  // the host is gone: its exit tells the rest
      }
      if (sock_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) sock_open = drain();
      if (fds[0].revents & POLLIN) {
        out.exit = reap_own(host.pid, host.pidfd.get());
        host.reaped = exited = true;
        // What it wrote before it died is in the socket; a grandchild holding its end open
        // gives EAGAIN instead of EOF, which ends the read too.
        if (sock_open) drain();
      }
    } catch (const wire::WireError& e) {
      if (!out.broken) out.broken = e.what();
      kill_host();
      killed = true;
      sock_open = false;
    }
  }
  return out;
}

wire::HostRequest to_wire(const HookRequest& req, bool check_only) {
  wire::HostRequest r;
  r.library = req.library;
  r.symbol = req.symbol;
  r.hook_name = req.hook_name;
  r.watcher_name = req.watcher_name;
  r.pid = req.pid;
  r.signum = req.signum;
  r.exit_status = req.exit_status;
  if (req.watcher_options) r.watcher_options = *req.watcher_options;
  r.hook_options = req.hook_options;
  r.timeout = req.timeout;
  r.check_only = check_only;
  return r;
}

std::string crash_text(const siginfo_t& exit) {
  if (exit.si_code == CLD_KILLED || exit.si_code == CLD_DUMPED)
    return "crashed: " + signal_name(exit.si_status);
  return fmt::format("crashed: exit status {}", exit.si_status);
}

// ---- the host's side ---------------------------------------------------------------------

struct HostCall {
  wire::HostRequest req;
  std::string error;
  std::atomic<int> cancelled{0};
  std::mutex send_mu;
};

HostCall& host_call(const trapeze_hook_call* call) {
  return *static_cast<HostCall*>(call->host);
}

// Blocking: the arbiter reads as it waits. A failure means the arbiter is gone; nothing to do.
void send_all(HostCall& hc, const std::string& frame) {
  std::lock_guard lock(hc.send_mu);
  std::size_t done = 0;
  while (done < frame.size()) {
    ssize_t n = ::send(kHostFd, frame.data() + done, frame.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

const char* find_option(const Options& options, const char* key) {
  if (key == nullptr) return nullptr;
  auto it = options.find(key);
  return it == options.end() ? nullptr : it->second.c_str();
}

const char* host_watcher_option(const trapeze_hook_call* call, const char* key) {
  return find_option(host_call(call).req.watcher_options, key);
}
const char* host_hook_option(const trapeze_hook_call* call, const char* key) {
  return find_option(host_call(call).req.hook_options, key);
}
void host_log(const trapeze_hook_call* call, trapeze_log_level level, const char* message) {
  try {
    send_all(host_call(call), wire::encode(wire::FromHost{wire::LogRecord{level, message ? message : ""}}));
  } catch (...) {  // never through the C ABI
  }
}
void host_set_error(const trapeze_hook_call* call, const char* message) {
  host_call(call).error = message ? message : "";
}
int host_cancelled(const trapeze_hook_call* call) {
  return host_call(call).cancelled.load(std::memory_order_relaxed);
}

// Reads frames from the arbiter until one whole frame is in `reader`; false at EOF or error.
bool read_frame(wire::FrameReader& reader, std::string& body) {
  char buf[16384];
  for (;;) {
    if (auto b = reader.next()) {
      body = std::move(*b);
      return true;
    }
    ssize_t n = ::read(kHostFd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    reader.feed({buf, static_cast<std::size_t>(n)});
  }
}

[[noreturn]] void host_exit(int code) {
  std::fflush(nullptr);
  ::_exit(code);  // no static destructors or atexit handlers of the plugin: its answer is sent
}

}  // namespace

bool claim_host_child(pid_t pid) {
  std::lock_guard lock(registry_mu);
  auto it = registry().find(pid);
  // Already reaped: this is a new process that got the same pid.
  if (it == registry().end() || it->second.reaped) return false;
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG) == 0 && info.si_pid == pid) {
    it->second.info = info;
    it->second.reaped = true;
  }
  return true;
}

HookResult call_in_host(const HookRequest& req, const std::string& binary, Clock::time_point deadline,
                        const std::atomic<int>& cancelled, int wake_fd) {
  HostOutcome o;
  try {
    o = run_host(to_wire(req, false), binary, deadline, &cancelled, wake_fd);
  } catch (const std::exception& e) {
    return {HookOutcome::error, fmt::format("cannot run the hook host: {}", e.what()), 0};
  }
  if (o.timed_out && !o.answer)
    return {HookOutcome::timed_out, "timed out after " + timeout_text(req.timeout), 0};
  if (o.broken)
    return {HookOutcome::error, fmt::format("the hook host broke the protocol: {}", *o.broken), 0};
  if (o.answer) return *o.answer;
  return {HookOutcome::error, crash_text(o.exit), 0};
}

std::optional<std::string> check_in_host(const std::string& library, const std::string& symbol,
                                         const std::string& binary, std::chrono::milliseconds timeout) {
  HookRequest req;
  req.library = library;
  req.symbol = symbol;
  req.timeout = timeout;
  HostOutcome o;
  try {
    o = run_host(to_wire(req, true), binary, Clock::now() + timeout, nullptr, -1);
  } catch (const std::exception& e) {
    return fmt::format("cannot check plugin '{}' in a hook host: {}", library, e.what());
  }
  if (o.answer) {
    if (o.answer->outcome == HookOutcome::proceed) return std::nullopt;
    return o.answer->error;
  }
  std::string why = o.timed_out ? "timed out after " + timeout_text(timeout)
                    : o.broken  ? "the hook host broke the protocol: " + *o.broken
                                : crash_text(o.exit);
  return fmt::format("cannot load plugin '{}' in a hook host: {}", library, why);
}

std::string signal_name(int signum) {
  if (signum >= SIGRTMIN && signum <= SIGRTMAX) {
    if (signum == SIGRTMIN) return "SIGRTMIN";
    return fmt::format("SIGRTMIN+{}", signum - SIGRTMIN);
  }
  if (const char* abbrev = ::sigabbrev_np(signum)) return fmt::format("SIG{}", abbrev);
  return fmt::format("signal {}", signum);
}

int host_main() {
  // A hook runs as in a process of its own: default dispositions (an ignored one survives
  // exec) and no signal blocked.
  for (int s = 1; s < NSIG; ++s)
    if (s != SIGKILL && s != SIGSTOP) ::signal(s, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  struct stat st {};
  if (::fstat(kHostFd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
    std::fprintf(stderr,
                 "trapeze hook-host: fd 3 is not a socket: trapeze starts this itself, for isolated hooks\n");
    return 2;
  }
  HostCall hc;
  wire::FrameReader reader;
  std::string body;
  if (!read_frame(reader, body)) host_exit(3);
  try {
    auto m = wire::decode_to_host(body);
    if (!std::holds_alternative<wire::HostRequest>(m)) host_exit(3);
    hc.req = std::get<wire::HostRequest>(std::move(m));
  } catch (const wire::WireError& e) {
    std::fprintf(stderr, "trapeze hook-host: %s\n", e.what());
    host_exit(3);
  }
  // Cancellation: a cancel message, or the arbiter's end closing.
  std::thread([&hc, reader = std::move(reader)]() mutable {
    std::string frame;
    while (read_frame(reader, frame)) {
      try {
        if (std::holds_alternative<wire::Cancel>(wire::decode_to_host(frame))) break;
      } catch (const wire::WireError&) {
        break;
      }
    }
    hc.cancelled.store(1);
  }).detach();

  trapeze_hook_fn fn = nullptr;
  try {
    PluginLoader loader;  // never dlclosed, as in the arbiter; the process ends soon anyway
    fn = loader.load(hc.req.library, hc.req.symbol);
  } catch (const PluginError& e) {
    send_all(hc, wire::encode(wire::FromHost{wire::LoadError{e.what()}}));
    host_exit(0);
  }
  if (hc.req.check_only) {
    send_all(hc, wire::encode(wire::FromHost{wire::Answer{HookOutcome::proceed, ""}}));
    host_exit(0);
  }
  trapeze_hook_call call = detail::call_for(hc.req, &hc);
  call.watcher_option = host_watcher_option;
  call.hook_option = host_hook_option;
  call.log = host_log;
  call.set_error = host_set_error;
  call.cancelled = host_cancelled;
  HookResult r = detail::outcome_of(fn(&call), hc.error);
  send_all(hc, wire::encode(wire::FromHost{wire::Answer{r.outcome, r.error}}));
  host_exit(0);
}

}  // namespace trapeze::hooks
