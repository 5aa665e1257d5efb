#include "waker.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "trapeze/watchers/exit_status.hpp"
#include "trapeze/watchers/spawn.hpp"

namespace trapeze::arbiter {
namespace {

constexpr std::size_t kStderrTail = 4096;

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

Waker::Waker(loop::Loop& loop, const conf::JujuConfig& cfg, std::string queue_file,
             std::map<std::string, std::string> arbiter_env, Publish publish)
    : loop_(loop), cfg_(cfg), environ_(std::move(arbiter_env)), publish_(std::move(publish)), queue_(std::move(queue_file)) {
  // A hook context must not leak into any dispatch: juju-exec refuses to run inside one, and
  // a leaked OPERATOR_DISPATCH makes ops's dispatch a no-op.
  environ_.erase("JUJU_CONTEXT_ID");
  environ_.erase("OPERATOR_DISPATCH");
  environ_.erase("JUJU_DISPATCH_PATH");
  environ_.erase("JUJU_HOOK_NAME");
  environ_.erase("NOTIFY_SOCKET");
}

Waker::~Waker() { stop(); }

void Waker::start() {
  started_ = true;
  if (!queue_.entries().empty())
    spdlog::info("juju: {} dispatch{} left by the previous arbiter", queue_.entries().size(),
                 queue_.entries().size() == 1 ? "" : "es");
  run_next();
}

bool Waker::request(const std::string& event, const std::string& workload, std::map<std::string, std::string> env) {
  bool queued = queue_.push(event, workload, std::move(env), juju::Clock::now());
  if (queued)
    spdlog::info("juju: {} queued for {}", event, workload);
  else
    spdlog::debug("juju: {} for {} equals the last queued request: dropped", event, workload);
  run_next();
  return queued;
}

void Waker::stop() {
  stopping_ = true;
  retry_.reset();
  if (pid_ > 0) {
    // It stays at the head of the queue: the next arbiter dispatches it again.
    ::kill(-pid_, SIGTERM);  // reaped by the arbiter's SIGCHLD handler
    exit_watch_.reset();
    stderr_watch_.reset();
    pid_ = -1;
  }
  running_ = false;
}

nlohmann::json Waker::entries() const {
  nlohmann::json out = nlohmann::json::array();
  bool first = true;
  for (const auto& d : queue_.entries()) {
    out.push_back({{"id", d.id},
                   {"event", d.event},
                   {"workload", d.workload},
                   {"env", d.env},
                   {"requested_at", d.requested_at},
                   {"executed_at", d.executed_at},
                   {"attempt", d.attempt},
                   {"max_retry", cfg_.max_retry},
                   {"state", first && running_                ? "running"
                             : first && retry_.pending() ? "retrying"
                                                         : "queued"}});
    first = false;
  }
  return out;
}

void Waker::run_next() {
  if (!started_ || stopping_ || running_ || retry_.pending() || !queue_.head()) return;
  launch();
}

// Runs the head of the queue: juju-exec (or juju-run) in exec mode, the charm's dispatch
// itself in direct mode.
void Waker::launch() {
  const juju::Dispatch& d = *queue_.head();
  queue_.start_head(juju::Clock::now());
  running_ = true;
  std::map<std::string, std::string> vars = d.env;
  vars["JUJU_DISPATCH_PATH"] = "hooks/" + d.event;
  vars["JUJU_WORKLOAD_NAME"] = d.workload;

  watchers::SpawnRequest req;
  std::map<std::string, std::string> env = environ_;
  std::string path_list = env.count("PATH") ? env["PATH"] : "/usr/local/bin:/usr/bin:/bin";
  if (cfg_.mode == conf::JujuMode::direct) {
    if (!cfg_.unit.empty()) vars["JUJU_UNIT_NAME"] = cfg_.unit;
    if (!cfg_.charm_dir.empty()) vars["JUJU_CHARM_DIR"] = cfg_.charm_dir;
    if (!cfg_.model.empty()) vars["JUJU_MODEL_NAME"] = cfg_.model;
    for (auto& [k, v] : vars) env[k] = v;
    req.path = cfg_.charm_dir + "/dispatch";
    req.argv = {req.path};
    req.working_dir = cfg_.charm_dir;
  } else {
    // juju-exec runs the command in the unit's hook context; the variables ride in it.
    auto tool = watchers::find_executable("juju-exec", path_list);
    if (!tool) tool = watchers::find_executable("juju-run", path_list);
    std::string command;
    for (auto& [k, v] : vars) command += k + "=" + shell_quote(v) + " ";
    command += "./dispatch";
    req.path = tool ? *tool : "juju-exec";
    req.argv = {req.path, cfg_.unit, command};
  }
  for (auto& [k, v] : env) req.env.push_back(k + "=" + v);

  int err_pipe[2];
  loop::UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (pipe2(err_pipe, O_CLOEXEC) < 0) {
    spdlog::error("juju: cannot create a pipe: {}", std::strerror(errno));
    return;
  }
  loop::UniqueFd err_read(err_pipe[0]), err_write(err_pipe[1]);
  req.fds = {{0, devnull.get()}, {1, devnull.get()}, {2, err_write.get()}};
  began_ = std::chrono::steady_clock::now();
  stderr_tail_.clear();
  spdlog::info("juju: dispatching {} for {} (attempt {})", d.event, d.workload, queue_.head()->attempt);
  auto result = watchers::spawn(req);
  if (auto* failure = std::get_if<watchers::SpawnFailure>(&result)) {
    stderr_tail_ = failure->what;
    // Counted as a failed attempt, retried like one.
    loop_.defer([this] {
      if (!stopping_) on_exit();
    });
    return;
  }
  auto& child = std::get<watchers::Spawned>(result);
  pid_ = child.pid;
  pidfd_ = std::move(child.pidfd);
  err_write.reset();
  stderr_ = std::move(err_read);
  fcntl(stderr_.get(), F_SETFL, fcntl(stderr_.get(), F_GETFL) | O_NONBLOCK);
  stderr_watch_ = loop_.watch(stderr_.get(), EPOLLIN, [this](std::uint32_t) { on_stderr(); });
  exit_watch_ = loop_.watch(pidfd_.get(), EPOLLIN, [this](std::uint32_t) { on_exit(); });
}

void Waker::on_stderr() {
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(stderr_.get(), buf, sizeof buf);
    if (n > 0) {
      stderr_tail_.append(buf, static_cast<std::size_t>(n));
      if (stderr_tail_.size() > kStderrTail) stderr_tail_.erase(0, stderr_tail_.size() - kStderrTail);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) stderr_watch_.reset();
    return;
  }
}

void Waker::on_exit() {
  int code = 127;
  if (pid_ > 0) {
    siginfo_t info{};
    if (waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED | WNOHANG) < 0 || info.si_pid == 0)
      return;
    code = watchers::ExitStatus::from_siginfo(info).bus_code();
    if (stderr_watch_) on_stderr();
  }
  exit_watch_.reset();
  stderr_watch_.reset();
  stderr_.reset();
  pidfd_.reset();
  pid_ = -1;
  running_ = false;
  const juju::Dispatch& d = *queue_.head();
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - began_).count();
  if (code == 0) {
    spdlog::info("juju: {} for {} dispatched ({:.0f} ms)", d.event, d.workload, ms);
    publish_("juju.dispatch_success", {{"event", d.event}, {"workload", d.workload}, {"attempt", d.attempt},
                                       {"duration_ms", ms}});
    queue_.pop_head();
    return run_next();
  }
  std::string tail = stderr_tail_.size() > 1024 ? stderr_tail_.substr(stderr_tail_.size() - 1024) : stderr_tail_;
  if (d.attempt > cfg_.max_retry) {
    spdlog::error("juju: {} for {} failed {} times (exit {}): dropped", d.event, d.workload, d.attempt, code);
    publish_("juju.dispatch_failure", {{"event", d.event}, {"workload", d.workload}, {"attempts", d.attempt},
                                       {"exit_code", code}, {"stderr_tail", tail}});
    queue_.pop_head();
    return run_next();
  }
  // Retried with backoff, doubling: backoff, 2 x backoff, ...
  auto delay = cfg_.backoff * (1 << std::min(d.attempt - 1, 10));
  spdlog::warn("juju: {} for {} failed (exit {}); attempt {} of {} in {} ms", d.event, d.workload, code,
               d.attempt + 1, cfg_.max_retry + 1, std::chrono::duration_cast<std::chrono::milliseconds>(delay).count());
  retry_ = loop_.after(delay, [this] { run_next(); });
}

}  // namespace trapeze::arbiter
