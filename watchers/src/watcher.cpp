#include "trapeze/watchers/watcher.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <random>

#include <spdlog/spdlog.h>

#include "trapeze/conf/show.hpp"
#include "trapeze/hooks/host.hpp"
#include "trapeze/watchers/command.hpp"
#include "trapeze/watchers/notify.hpp"
#include "trapeze/watchers/probe.hpp"
#include "trapeze/watchers/sockets.hpp"
#include "trapeze/watchers/spawn.hpp"

namespace trapeze::watchers {
namespace {

using namespace std::chrono_literals;
using loop::Clock;

constexpr std::size_t kTailBytes = 64 * 1024;
constexpr std::size_t kReadChunk = 256 * 1024;
constexpr int kWrittenPipeSize = 1 << 20;

// A stream that is written somewhere gets a 1 MiB pipe: a chatty child and the arbiter then
// take turns every megabyte rather than every 64 KiB. Discarded streams keep the default (the
// kernel limits pipe memory per user). Failing to grow it changes nothing else.
void size_pipe(int read_fd, const conf::StreamConfig& stream) {
  switch (stream.kind) {
    case conf::StreamKind::inherit:
    case conf::StreamKind::null:
      return;
    case conf::StreamKind::stdout:
    case conf::StreamKind::file:
    case conf::StreamKind::timed_rotating_file:
    case conf::StreamKind::watched_file:
      ::fcntl(read_fd, F_SETPIPE_SZ, kWrittenPipeSize);
      return;
  }
}
constexpr std::size_t kReadPerWake = 4 * kReadChunk;  // then let other fds have a turn

std::optional<int> rlimit_resource(const std::string& name) {
  static const std::map<std::string, int> table = {
      {"as", RLIMIT_AS},           {"core", RLIMIT_CORE},         {"cpu", RLIMIT_CPU},
      {"data", RLIMIT_DATA},       {"fsize", RLIMIT_FSIZE},       {"locks", RLIMIT_LOCKS},
      {"memlock", RLIMIT_MEMLOCK}, {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},
      {"nofile", RLIMIT_NOFILE},   {"nproc", RLIMIT_NPROC},       {"rss", RLIMIT_RSS},
      {"rtprio", RLIMIT_RTPRIO},   {"rttime", RLIMIT_RTTIME},     {"sigpending", RLIMIT_SIGPENDING},
      {"stack", RLIMIT_STACK}};
  auto it = table.find(name);
  if (it == table.end()) return std::nullopt;
  return it->second;
}

bool all_digits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

struct User {
  uid_t uid;
  gid_t gid;
  std::string name;
};

// Looks a user up by name or number. Errors read "unknown user 'x'".
std::variant<User, std::string> find_user(const std::string& spec) {
  passwd pw{}, *found = nullptr;
  std::vector<char> buf(16384);
  int rc = all_digits(spec)
               ? getpwuid_r(static_cast<uid_t>(std::stoul(spec)), &pw, buf.data(), buf.size(), &found)
               : getpwnam_r(spec.c_str(), &pw, buf.data(), buf.size(), &found);
  if (found) return User{pw.pw_uid, pw.pw_gid, pw.pw_name};
  if (all_digits(spec)) return User{static_cast<uid_t>(std::stoul(spec)), static_cast<gid_t>(-1), {}};
  if (rc != 0) return fmt::format("cannot look up user '{}': {}", spec, std::strerror(rc));
  return fmt::format("unknown user '{}'", spec);
}

std::variant<gid_t, std::string> find_group(const std::string& spec) {
  if (all_digits(spec)) return static_cast<gid_t>(std::stoul(spec));
  group gr{}, *found = nullptr;
  std::vector<char> buf(16384);
  int rc = getgrnam_r(spec.c_str(), &gr, buf.data(), buf.size(), &found);
  if (found) return gr.gr_gid;
  if (rc != 0) return fmt::format("cannot look up group '{}': {}", spec, std::strerror(rc));
  return fmt::format("unknown group '{}'", spec);
}

void set_nonblocking(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

}  // namespace

std::string_view to_string(WatcherState s) {
  switch (s) {
    case WatcherState::stopped:
      return "stopped";
    case WatcherState::starting:
      return "starting";
    case WatcherState::active:
      return "active";
    case WatcherState::stopping:
      return "stopping";
    case WatcherState::failed:
      return "failed";
  }
  return "?";
}

std::string_view to_string(ProcessState s) {
  switch (s) {
    case ProcessState::spawning:
      return "spawning";
    case ProcessState::running:
      return "running";
    case ProcessState::ready:
      return "ready";
    case ProcessState::stopping:
      return "stopping";
    case ProcessState::exited:
      return "exited";
  }
  return "?";
}

std::vector<std::string> child_environment(const conf::WatcherConfig& cfg,
                                           const std::map<std::string, std::string>& arbiter_env) {
  std::map<std::string, std::string> env;
  if (cfg.copy_env) {
    env = arbiter_env;
    env.erase("NOTIFY_SOCKET");  // systemd's channel to the arbiter, not to its children
  }
  for (const auto& [k, v] : cfg.env) env[k] = v;
  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

// One of a process's output pipes.
struct Watcher::Stream {
  const char* name;  // "stdout" / "stderr"
  loop::UniqueFd fd;
  loop::FdWatch watch;
  Sink* sink = nullptr;
  std::string partial;  // ready.log: the line being read, until its newline
};

struct Watcher::Process {
  int wid = 0;
  pid_t pid = 0;
  ProcessState state = ProcessState::spawning;
  Clock::time_point started;
  double started_at = 0;
  loop::UniqueFd pidfd;
  loop::FdWatch exit_watch;
  Stream out{"stdout", {}, {}, nullptr, {}}, err{"stderr", {}, {}, nullptr, {}};
  int streams_open = 0;  // pipes not yet at EOF and flushed
  std::optional<ExitStatus> status;
  bool asked_to_stop = false;
  bool replace = false;     // max_age, kill: spawn a new one in its slot once it exited
  bool unexpected = false;  // it exited without being asked to
  bool spawn_vetoed = false;  // its after_spawn hook refused it: stopped, then retried as a failed spawn
  bool reaping = false;       // its before_reap hook runs
  // Readiness.
  bool cleared = false;            // its after_spawn hook (if any) agreed: readiness may count
  bool signalled_ready = false;    // log / notify / notification_fd said so before that
  std::unique_ptr<Probe> probe;    // tcp / http / exec: the attempt in flight
  loop::Timer probe_timer;         // the next attempt
  std::string probe_error;         // the last attempt's failure, for the start timeout's reason
  loop::UniqueFd ready_fd;         // notification_fd: our end
  loop::FdWatch ready_fd_watch;
  loop::Timer ready_timer, kill_timer, max_age_timer;
  std::uint64_t generation = 0;  // the watcher's generation when it was spawned
};

// A rolling restart: the slots still to do, and those in hand.
struct Watcher::Rollout {
  struct Slot {
    int attempts = 0;
    pid_t old_pid = 0;            // the process being replaced, until it is gone
    bool respawn_on_reap = false; // a replacement stopped for another attempt
    std::string error;            // the last attempt's failure
    loop::Timer deadline, retry;
  };
  RolloutPlan plan;
  bool surge = false;
  std::function<void(RolloutResult)> done;
  std::uint64_t generation = 0;
  std::deque<int> todo;
  int total = 0, finished = 0;
  std::map<int, Slot> slots;  // in hand, by wid
};

std::vector<conf::Diagnostic> load_hook_plugins(const conf::WatcherConfig& cfg, hooks::PluginLoader& loader,
                                                IsolatedCheck isolated) {
  std::vector<conf::Diagnostic> out;
  for (const auto& [point, hook] : cfg.hooks) {
    if (hook.isolate) {
      // Never opened here: its constructors could crash the arbiter as well as its hook.
      if (isolated == IsolatedCheck::skip) continue;
      if (auto why = hooks::check_in_host(hook.library, hook.symbol))
        out.push_back({conf::Severity::error, hook.where, "hooks." + point, *why});
      continue;
    }
    try {
      loader.load(hook.library, hook.symbol);
    } catch (const hooks::PluginError& e) {
      out.push_back({conf::Severity::error, hook.where, "hooks." + point, e.what()});
    }
  }
  return out;
}

namespace {

// What a hook's watcher_option() reads: every option as the `options` command shows it.
std::shared_ptr<const hooks::Options> options_view(const conf::WatcherConfig& cfg) {
  auto view = std::make_shared<hooks::Options>();
  const auto all = conf::to_json(cfg);
  for (const auto& [key, value] : all.items())
    (*view)[key] = value.is_string() ? value.get<std::string>() : value.dump();
  (*view)["name"] = cfg.name;
  (*view)["numprocesses"] = std::to_string(cfg.numprocesses);
  return view;
}

// circus's ignore_hook_failure defaults: a failure (not a veto) of these hooks does not count.
bool failure_ignored_by_default(const std::string& point) {
  return point == "before_stop" || point == "after_stop" || point == "before_signal" ||
         point == "after_signal" || point == "before_reap" || point == "after_reap";
}

}  // namespace

Watcher::Watcher(conf::WatcherConfig cfg, WatcherContext& ctx) : cfg_(std::move(cfg)), ctx_(ctx) {
  if (cfg_.singleton) cfg_.numprocesses = std::min(cfg_.numprocesses, 1);
  if (ctx_.plugins)
    for (const auto& [point, hook] : cfg_.hooks)
      bound_hooks_[point] = {hook.isolate ? nullptr : ctx_.plugins->load(hook.library, hook.symbol), &hook};
  hook_view_ = options_view(cfg_);
  if (cfg_.ready.kind == conf::ReadyKind::log) ready_regex_.emplace(cfg_.ready.target, std::regex::ECMAScript);
  if (!cfg_.checks.empty()) {
    Checks::Callbacks callbacks;
    callbacks.on_failed = [this](const std::string& check, int failures, const std::string& error) {
      on_check_failed(check, failures, error);
    };
    callbacks.on_recovered = [this](const std::string& check) {
      spdlog::info("watcher {}: check {} is up again", name(), check);
      ctx_.host->publish(name(), "check_recovered", {{"check", check}});
    };
    checks_ = std::make_unique<Checks>(*ctx_.loop, cfg_.checks, child_environment(cfg_, ctx_.environ),
                                       cfg_.working_dir, std::move(callbacks));
  }
  stdout_sink_ = ctx_.output->open(cfg_.stdout_stream, cfg_.name, "stdout");
  stderr_sink_ = ctx_.output->open(cfg_.stderr_stream, cfg_.name, "stderr");
}

Watcher::~Watcher() {
  for (auto& [pid, p] : processes_) {
    if (p->status) continue;
    ::kill(-pid, SIGKILL);
    siginfo_t info{};
    while (waitid(P_PIDFD, static_cast<id_t>(p->pidfd.get()), &info, WEXITED) < 0 && errno == EINTR) {
    }
  }
}

std::vector<ProcessInfo> Watcher::processes() const {
  std::vector<ProcessInfo> out;
  for (const auto& [pid, p] : processes_)
    if (p->state != ProcessState::exited) out.push_back({p->wid, pid, p->state, p->started, p->started_at});
  return out;
}

int Watcher::wanted() const {
  return cfg_.singleton ? std::min(cfg_.numprocesses, 1) : cfg_.numprocesses;
}

bool Watcher::slot_busy(int wid) const {
  if (pending_spawns_.count(wid) || spawn_hooks_.count(wid)) return true;
  for (const auto& [pid, p] : processes_)
    if (p->wid == wid && !p->status && !p->asked_to_stop) return true;
  return false;
}

void Watcher::set_state(WatcherState s) {
  if (state_ == s) return;
  state_ = s;
  std::weak_ptr<int> alive = alive_;
  ctx_.loop->defer([this, alive] {
    if (!alive.expired()) ctx_.host->state_changed(cfg_.name);
  });
}

// Called to start the watcher.
void Watcher::start() {
  switch (state_) {
    case WatcherState::stopped:
    case WatcherState::failed:
      break;
    case WatcherState::starting:
    case WatcherState::active:
    case WatcherState::stopping:
      return;
  }
  failure_.clear();
  history_ = {};
  paused_ = false;
  stop_to_failed_ = false;
  after_start_running_ = false;
  set_state(WatcherState::starting);
  std::uint64_t token = start_token_ = next_token_++;
  spdlog::info("watcher {}: starting {} process{}", name(), wanted(), wanted() == 1 ? "" : "es");
  run_hook("before_start", {}, [this, token](bool proceed) {
    if (state_ != WatcherState::starting || token != start_token_) return;  // stopped meanwhile
    if (!proceed) {
      spdlog::warn("watcher {}: start aborted by its before_start hook", name());
      set_state(WatcherState::stopped);
      return;
    }
    begin_spawning();
  });
}

void Watcher::begin_spawning() {
  start_timeout_ = ctx_.loop->after(cfg_.ready.start_timeout, [this] {
    if (state_ != WatcherState::starting) return;
    std::string why = fmt::format("not ready after {}", conf::format_duration(cfg_.ready.start_timeout));
    for (const auto& [pid, p] : processes_)
      if (p->state == ProcessState::running) {
        why += fmt::format(" (pid {}: {})", pid,
                           p->probe_error.empty() ? fmt::format("no {} yet", conf::to_string(cfg_.ready.kind))
                                                  : p->probe_error);
        break;
      }
    fail(why);
  });
  if (cfg_.warmup_delay > 0ms) {
    // circus's warmup_delay: one process after the other; the next one is spawned when the
    // previous one became ready (alive for warmup_delay).
    next_start_wid_ = 1;
    if (wanted() > 0) spawn_process(next_start_wid_++);
  } else {
    for (int wid = 1; wid <= wanted(); ++wid) spawn_process(wid);
  }
  check_started();
}

// Called to stop the watcher, by a command or the arbiter's shutdown.
void Watcher::stop() {
  switch (state_) {
    case WatcherState::stopped:
    case WatcherState::failed:
    case WatcherState::stopping:
      return;
    case WatcherState::starting:
    case WatcherState::active:
      break;
  }
  spdlog::info("watcher {}: stopping", name());
  set_state(WatcherState::stopping);
  if (rollout_) end_rollout({false, "the watcher was stopped", 0, 0});
  if (checks_) checks_->stop();
  pending_spawns_.clear();
  spawn_hooks_.clear();
  start_timeout_.reset();
  resume_.reset();
  next_start_wid_ = 0;
  after_start_running_ = false;
  before_stop_running_ = true;
  run_hook("before_stop", {}, [this](bool) {  // circus ignores its result
    before_stop_running_ = false;
    if (state_ != WatcherState::stopping) return;
    for (auto& [pid, p] : processes_) stop_process(*p);
    check_stopped();
  });
}

void Watcher::fail(std::string reason) {
  if (failure_.empty()) failure_ = reason;
  spdlog::error("watcher {}: failed: {}", name(), failure_);
  switch (state_) {
    case WatcherState::starting:
    case WatcherState::active:
      stop_to_failed_ = true;
      stop();
      break;
    case WatcherState::stopping:
      stop_to_failed_ = true;
      break;
    case WatcherState::stopped:
    case WatcherState::failed:
      break;
  }
}

void Watcher::set_numprocesses(int n) {
  if (rollout_ && std::max(n, 0) != cfg_.numprocesses) end_rollout({false, "numprocesses changed", 0, 0});
  cfg_.numprocesses = std::max(n, 0);
  hook_view_ = options_view(cfg_);
  switch (state_) {
    case WatcherState::starting:
    case WatcherState::active:
      break;
    case WatcherState::stopped:
    case WatcherState::stopping:
    case WatcherState::failed:
      return;  // applies at the next start
  }
  // Fewer: the highest wids go first.
  for (auto it = pending_spawns_.begin(); it != pending_spawns_.end();)
    it = it->first > wanted() ? pending_spawns_.erase(it) : std::next(it);
  for (auto it = spawn_hooks_.begin(); it != spawn_hooks_.end();)
    it = it->first > wanted() ? spawn_hooks_.erase(it) : std::next(it);
  for (auto& [pid, p] : processes_)
    if (p->wid > wanted()) stop_process(*p);
  if (!paused_ && next_start_wid_ == 0)
    for (int wid = 1; wid <= wanted(); ++wid)
      if (!slot_busy(wid)) spawn_process(wid);
  check_started();
}

void Watcher::signal_all(int signum) {
  for (auto& [pid, p] : processes_)
    if (!p->status) send_signal(pid, signum);
}

bool Watcher::reap(pid_t pid) {
  auto it = processes_.find(pid);
  if (it == processes_.end() || it->second->status) return false;
  on_status(*it->second);
  return true;
}

void Watcher::schedule_spawn(int wid, policy::Duration delay) {
  if (delay <= 0ms) {
    spawn_process(wid);
    return;
  }
  spdlog::info("watcher {}: respawning process {} in {}", name(), wid, conf::format_duration(delay));
  pending_spawns_[wid] = ctx_.loop->after(delay, [this, wid] {
    auto node = pending_spawns_.extract(wid);  // the timer is done; keep it alive for this call
    spawn_process(wid);
  });
}

// Spawns process `wid`, through its before_spawn hook: a veto skips this spawn, which is
// retried with the backoff of a failed spawn (circus would stop the whole watcher).
void Watcher::spawn_process(int wid) {
  if (!has_hook("before_spawn")) return spawn_now(wid);
  std::uint64_t token = next_token_++;
  spawn_hooks_[wid] = token;
  run_hook("before_spawn", {}, [this, wid, token](bool proceed) {
    auto it = spawn_hooks_.find(wid);
    if (it == spawn_hooks_.end() || it->second != token) return;  // stopped, or the slot went away
    spawn_hooks_.erase(it);
    if (!(state_ == WatcherState::starting || state_ == WatcherState::active) || paused_ || wid > wanted()) return;
    if (!proceed) return spawn_failed(wid, "its before_spawn hook refused it");
    spawn_now(wid);
  });
}

void Watcher::spawn_failed(int wid, const std::string& why) {
  ++stats_.spawn_failures;
  spdlog::error("watcher {}: cannot spawn process {}: {}", name(), wid, why);
  ctx_.host->publish(name(), "spawn_failed", {{"process_id", wid}, {"error", why}});
  policy::Decision d = policy::on_spawn_failed(history_, cfg_);
  if (d.action == policy::Action::give_up) {
    fail(fmt::format("cannot spawn: {}", why));
    return;
  }
  schedule_spawn(wid, d.delay);
}

void Watcher::spawn_now(int wid) {
  auto failed_spawn = [&](const std::string& why) { spawn_failed(wid, why); };

  // so_reuseport sockets are the process's own: bound now, closed here once it has them.
  std::map<std::string, int> socket_fds = ctx_.socket_fds;
  std::vector<BoundSocket> own_sockets;
  if (cfg_.use_sockets)
    for (const auto& [sock_name, sock_cfg] : ctx_.reuseport_sockets) {
      try {
        own_sockets.push_back(bind_socket(sock_cfg));
      } catch (const SocketError& e) {
        return failed_spawn(e.what());
      }
      socket_fds[sock_name] = own_sockets.back().fd.get();
    }
  auto command = process_command(cfg_, wid, socket_fds);
  if (auto* error = std::get_if<std::string>(&command)) return failed_spawn(*error);
  auto& cmd = std::get<ProcessCommand>(command);

  SpawnRequest req;
  req.env = child_environment(cfg_, ctx_.environ);
  if (cfg_.ready.kind == conf::ReadyKind::notify && ctx_.notify)
    req.env.push_back("NOTIFY_SOCKET=" + ctx_.notify->socket_name());
  std::string path_list = "/usr/local/bin:/usr/bin:/bin";
  if (auto it = cfg_.env.find("PATH"); it != cfg_.env.end())
    path_list = it->second;
  else if (auto it2 = ctx_.environ.find("PATH"); it2 != ctx_.environ.end())
    path_list = it2->second;
  if (cmd.path.find('/') == std::string::npos) {
    auto found = find_executable(cmd.path, path_list);
    if (!found) return failed_spawn(fmt::format("cannot exec '{}': No such file or directory", cmd.path));
    req.path = *found;
  } else {
    req.path = cmd.path;
  }
  req.argv = std::move(cmd.argv);
  req.working_dir = cfg_.working_dir;
  req.umask = cfg_.umask;

  if (cfg_.uid) {
    auto user = find_user(*cfg_.uid);
    if (auto* error = std::get_if<std::string>(&user)) return failed_spawn(*error);
    const User& u = std::get<User>(user);
    req.uid = u.uid;
    gid_t gid = u.gid;
    if (cfg_.gid) {
      auto g = find_group(*cfg_.gid);
      if (auto* error = std::get_if<std::string>(&g)) return failed_spawn(*error);
      gid = std::get<gid_t>(g);
    }
    if (gid != static_cast<gid_t>(-1)) req.gid = gid;
    std::vector<gid_t> groups;
    if (!u.name.empty() && req.gid) {
      int n = 64;
      groups.resize(static_cast<std::size_t>(n));
      if (getgrouplist(u.name.c_str(), *req.gid, groups.data(), &n) < 0) {
        groups.resize(static_cast<std::size_t>(n));
        getgrouplist(u.name.c_str(), *req.gid, groups.data(), &n);
      }
      groups.resize(static_cast<std::size_t>(n));
    } else if (req.gid) {
      groups.push_back(*req.gid);
    }
    // Only root may change them; an unprivileged arbiter running children as itself may not.
    if (geteuid() == 0) req.groups = std::move(groups);
  } else if (cfg_.gid) {
    auto g = find_group(*cfg_.gid);
    if (auto* error = std::get_if<std::string>(&g)) return failed_spawn(*error);
    req.gid = std::get<gid_t>(g);
    if (geteuid() == 0) req.groups = std::vector<gid_t>{*req.gid};
  }

  if (ctx_.nofile && !cfg_.rlimits.count("nofile")) req.rlimits.emplace_back(RLIMIT_NOFILE, *ctx_.nofile);
  for (const auto& [limit_name, value] : cfg_.rlimits) {
    auto resource = rlimit_resource(limit_name);
    if (!resource) continue;  // conf rejected unknown names
    rlim_t v = value ? static_cast<rlim_t>(*value) : RLIM_INFINITY;
    req.rlimits.emplace_back(*resource, rlimit{v, v});
  }

  // Output pipes: the read ends are ours (non-blocking), the write ends the child's 1 and 2.
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) < 0)
    return failed_spawn(fmt::format("cannot create a pipe: {}", std::strerror(errno)));
  loop::UniqueFd out_read(out_pipe[0]), out_write(out_pipe[1]);
  if (pipe2(err_pipe, O_CLOEXEC) < 0)
    return failed_spawn(fmt::format("cannot create a pipe: {}", std::strerror(errno)));
  loop::UniqueFd err_read(err_pipe[0]), err_write(err_pipe[1]);
  size_pipe(out_read.get(), cfg_.stdout_stream);
  size_pipe(err_read.get(), cfg_.stderr_stream);
  loop::UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull) return failed_spawn(fmt::format("cannot open /dev/null: {}", std::strerror(errno)));
  int stdin_fd = cfg_.close_child_stdin ? devnull.get() : 0;
  if (!cfg_.stdin_socket.empty()) {  // circus's stdin_socket: a socket on fd 0 (inetd style)
    auto it = socket_fds.find(cfg_.stdin_socket);
    if (it == socket_fds.end())
      return failed_spawn(fmt::format("stdin_socket {} names no [socket:{}] bound by the arbiter", cfg_.stdin_socket,
                                      cfg_.stdin_socket));
    stdin_fd = it->second;
  }
  req.fds.emplace_back(0, stdin_fd);
  req.fds.emplace_back(1, cfg_.close_child_stdout ? devnull.get() : out_write.get());
  req.fds.emplace_back(2, cfg_.close_child_stderr ? devnull.get() : err_write.get());
  if (cfg_.use_sockets)
    for (const auto& [sock_name, fd] : socket_fds) req.fds.emplace_back(fd, fd);
  // s6's readiness protocol: the child writes a newline on fd N.
  loop::UniqueFd ready_read, ready_write;
  if (cfg_.ready.kind == conf::ReadyKind::notification_fd) {
    int ready_pipe[2];
    if (pipe2(ready_pipe, O_CLOEXEC) < 0)
      return failed_spawn(fmt::format("cannot create a pipe: {}", std::strerror(errno)));
    ready_read.reset(ready_pipe[0]);
    ready_write.reset(ready_pipe[1]);
    req.fds.emplace_back(std::stoi(cfg_.ready.target), ready_write.get());
  }

  auto result = spawn(req);
  if (auto* failure = std::get_if<SpawnFailure>(&result)) return failed_spawn(failure->what);
  auto& child = std::get<Spawned>(result);
  out_write.reset();
  err_write.reset();
  ready_write.reset();

  auto owned = std::make_unique<Process>();
  Process& p = *owned;
  p.wid = wid;
  p.pid = child.pid;
  p.started = Clock::now();
  p.started_at = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  p.state = ProcessState::running;
  p.generation = generation_;
  p.pidfd = std::move(child.pidfd);
  pid_t pid = p.pid;
  p.exit_watch = ctx_.loop->watch(p.pidfd.get(), EPOLLIN, [this, pid](std::uint32_t) {
    if (auto it = processes_.find(pid); it != processes_.end()) on_status(*it->second);
  });
  auto open_stream = [&](Stream& s, loop::UniqueFd fd, Sink* sink) {
    set_nonblocking(fd.get());
    s.fd = std::move(fd);
    s.sink = sink;
    Stream* sp = &s;
    s.watch = ctx_.loop->watch(s.fd.get(), EPOLLIN, [this, pid, sp](std::uint32_t) {
      if (auto it = processes_.find(pid); it != processes_.end()) read_stream(*it->second, *sp);
    });
    ++p.streams_open;
  };
  open_stream(p.out, std::move(out_read), stdout_sink_.get());
  open_stream(p.err, std::move(err_read), stderr_sink_.get());
  if (ready_read) {
    set_nonblocking(ready_read.get());
    p.ready_fd = std::move(ready_read);
    p.ready_fd_watch = ctx_.loop->watch(p.ready_fd.get(), EPOLLIN, [this, pid](std::uint32_t) {
      auto it = processes_.find(pid);
      if (it == processes_.end()) return;
      Process& q = *it->second;
      char buf[256];
      ssize_t n = ::read(q.ready_fd.get(), buf, sizeof buf);
      if (n > 0 && std::memchr(buf, '\n', static_cast<std::size_t>(n)) == nullptr) return;
      bool ready = n > 0;
      q.ready_fd_watch.reset();  // a newline, or the end of it: nothing more to hear
      q.ready_fd.reset();
      if (ready) ready_signal(q);
    });
  }
  if (cfg_.ready.kind == conf::ReadyKind::notify && ctx_.notify) {
    ctx_.notify->expect(pid, [this, pid](std::string_view message) {
      if (!says_ready(message)) return;
      ctx_.notify->forget(pid);
      if (auto it = processes_.find(pid); it != processes_.end()) ready_signal(*it->second);
    });
  }
  processes_.emplace(pid, std::move(owned));
  ++stats_.spawns;
  on_spawned(p);
}

// Called when a process was started (exec succeeded).
void Watcher::on_spawned(Process& p) {
  spdlog::info("watcher {}: process {} started as pid {}", name(), p.wid, p.pid);
  ctx_.host->publish(name(), "spawn", {{"process_pid", p.pid}, {"process_id", p.wid}});
  if (!has_hook("after_spawn")) return after_spawned(p);
  pid_t pid = p.pid;
  run_hook("after_spawn", {pid, 0, 0}, [this, pid](bool proceed) {
    auto it = processes_.find(pid);
    if (it == processes_.end()) return;
    Process& q = *it->second;
    if (q.status || q.asked_to_stop) return;
    if (!proceed) {
      // Refused: stopped like any process, then retried as a failed spawn (see finish_reap).
      spdlog::warn("watcher {}: its after_spawn hook refused pid {}: stopping it", name(), pid);
      q.spawn_vetoed = true;
      stop_process(q);
      return;
    }
    after_spawned(q);
  });
}

// A process is spawned and its after_spawn hook (if any) agreed: on to ready.
void Watcher::after_spawned(Process& p) {
  pid_t pid = p.pid;
  p.cleared = true;
  switch (cfg_.ready.kind) {
    case conf::ReadyKind::none: {
      auto ready = [this, pid] {
        if (auto it = processes_.find(pid); it != processes_.end()) on_ready(*it->second);
      };
      if (cfg_.warmup_delay > 0ms)
        p.ready_timer = ctx_.loop->after(cfg_.warmup_delay, ready);
      else
        on_ready(p);
      break;
    }
    case conf::ReadyKind::log:
    case conf::ReadyKind::notify:
    case conf::ReadyKind::notification_fd:
      if (p.signalled_ready) on_ready(p);
      break;
    case conf::ReadyKind::tcp:
    case conf::ReadyKind::http:
    case conf::ReadyKind::exec:
      probe_ready(p);
      break;
  }
  if (cfg_.max_age > 0ms) {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    auto variance = std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.max_age_variance).count();
    std::uniform_int_distribution<long long> pick(0, std::max<long long>(variance, 0));
    auto age = cfg_.max_age + std::chrono::milliseconds(pick(rng));
    p.max_age_timer = ctx_.loop->after(age, [this, pid] {
      auto it = processes_.find(pid);
      if (it == processes_.end()) return;
      Process& old = *it->second;
      if (old.status || old.asked_to_stop) return;
      spdlog::info("watcher {}: process {} (pid {}) reached max_age: replacing it", name(), old.wid, pid);
      old.replace = true;
      stop_process(old);
    });
  }
}

// A log line, a READY=1 or a newline on the notification fd said the process is ready; it
// counts once its after_spawn hook agreed.
void Watcher::ready_signal(Process& p) {
  if (p.signalled_ready) return;
  p.signalled_ready = true;
  if (p.cleared) on_ready(p);
}

// tcp / http / exec: one probe now, and another `interval` after each failure, until one
// passes or the process is gone.
void Watcher::probe_ready(Process& p) {
  std::vector<std::string> env;
  if (cfg_.ready.kind == conf::ReadyKind::exec) env = child_environment(cfg_, ctx_.environ);
  ProbeSpec spec = probe_spec(cfg_.ready.kind, cfg_.ready.target, cfg_.ready.http_body, cfg_.ready.timeout, env,
                              cfg_.working_dir);
  pid_t pid = p.pid;
  p.probe = start_probe(*ctx_.loop, spec, [this, pid](std::optional<std::string> error) {
    auto it = processes_.find(pid);
    if (it == processes_.end()) return;
    Process& q = *it->second;
    auto done = std::move(q.probe);  // this probe ends here; freed after this call
    ctx_.loop->defer([done = std::shared_ptr<Probe>(std::move(done))] {});
    if (!error) return on_ready(q);
    if (q.state != ProcessState::running) return;
    if (q.probe_error != *error)
      spdlog::debug("watcher {}: pid {} not ready yet: {}", name(), pid, *error);
    q.probe_error = *error;
    q.probe_timer = ctx_.loop->after(cfg_.ready.interval, [this, pid] {
      if (auto it2 = processes_.find(pid); it2 != processes_.end()) probe_ready(*it2->second);
    });
  });
}

// Called when a process counts as ready: its readiness check passed, or (without one) it is
// alive after warmup_delay.
void Watcher::on_ready(Process& p) {
  switch (p.state) {
    case ProcessState::running:
      break;
    case ProcessState::spawning:
    case ProcessState::ready:
    case ProcessState::stopping:
    case ProcessState::exited:
      return;
  }
  p.state = ProcessState::ready;
  p.probe.reset();
  p.probe_timer.reset();
  ctx_.host->publish(name(), "ready", {{"process_pid", p.pid}, {"process_id", p.wid}});
  if (rollout_) replacement_ready(p);
  if (next_start_wid_ > 0 && state_ == WatcherState::starting) {
    if (next_start_wid_ <= wanted()) {
      spawn_process(next_start_wid_++);
      return;
    }
    next_start_wid_ = 0;
  }
  check_started();
}

void Watcher::check_started() {
  if (state_ != WatcherState::starting || paused_ || next_start_wid_ != 0 || after_start_running_) return;
  int ready = 0;
  for (const auto& [pid, p] : processes_)
    if (p->state == ProcessState::ready && !p->asked_to_stop) ++ready;
  if (ready < wanted()) return;
  start_timeout_.reset();
  if (!has_hook("after_start")) return become_active();
  after_start_running_ = true;
  std::uint64_t token = start_token_;
  run_hook("after_start", {}, [this, token](bool proceed) {
    if (token != start_token_) return;
    after_start_running_ = false;
    if (state_ != WatcherState::starting) return;
    if (!proceed) {
      spdlog::warn("watcher {}: its after_start hook refused the start: stopping", name());
      stop();
      return;
    }
    become_active();
  });
}

void Watcher::become_active() {
  set_state(WatcherState::active);
  if (checks_) checks_->start();
  spdlog::info("watcher {}: active", name());
  ctx_.host->publish(name(), "ready", {});
  ctx_.host->publish(name(), "start", {});
}

bool Watcher::kill_process(pid_t pid, std::optional<int> signum) {
  auto it = processes_.find(pid);
  if (it == processes_.end() || it->second->status) return false;
  Process& p = *it->second;
  p.replace = true;
  stop_process(p, signum);
  return true;
}

void Watcher::stop_process(Process& p, std::optional<int> signum) {
  if (p.asked_to_stop) return;
  if (p.status && p.streams_open == 0) return;  // reaped, its reap about to be published
  // An exited process still here has a group member holding its output open: stop that too.
  p.asked_to_stop = true;
  if (!p.status) p.state = ProcessState::stopping;
  p.ready_timer.reset();
  p.max_age_timer.reset();
  send_signal(p.pid, signum.value_or(cfg_.stop_signal));
  pid_t pid = p.pid;
  p.kill_timer = ctx_.loop->after(cfg_.graceful_timeout, [this, pid] {
    auto it = processes_.find(pid);
    if (it == processes_.end()) return;
    // Still there: its process, or something of its group that holds its output open.
    spdlog::warn("watcher {}: pid {} still running after {}: sending SIGKILL to its group", name(), pid,
                 conf::format_duration(cfg_.graceful_timeout));
    ++stats_.kills;
    send_signal(pid, SIGKILL);
    ctx_.host->publish(name(), "kill", {{"process_pid", pid}});
  });
}

// Called when the pidfd of a process became readable: it exited. Its reap, and what follows
// (a respawn, a replacement), wait until its output is drained: see finalize().
void Watcher::on_status(Process& p) {
  siginfo_t info{};
  if (waitid(P_PIDFD, static_cast<id_t>(p.pidfd.get()), &info, WEXITED | WNOHANG) < 0 || info.si_pid == 0)
    return;
  p.exit_watch.reset();
  p.status = ExitStatus::from_siginfo(info);
  p.unexpected = p.state != ProcessState::stopping;
  p.state = ProcessState::exited;
  p.ready_timer.reset();
  p.max_age_timer.reset();
  p.probe.reset();
  p.probe_timer.reset();
  p.ready_fd_watch.reset();
  p.ready_fd.reset();
  if (ctx_.notify) ctx_.notify->forget(p.pid);
  if (p.unexpected)
    spdlog::warn("watcher {}: pid {} {}", name(), p.pid, *p.status);
  else
    spdlog::info("watcher {}: pid {} {}", name(), p.pid, *p.status);
  if (p.streams_open == 0) return finalize(p);
  // Something of its process group still holds its output open. Before a replacement may
  // start, those leftovers are stopped, as systemd empties a service's cgroup before a restart;
  // without a respawn to come they are left alone (and the reap waits for them).
  bool running = state_ == WatcherState::starting || state_ == WatcherState::active;
  if (p.unexpected && running && cfg_.respawn) stop_process(p);
}

void Watcher::after_unexpected_exit(Process& p) {
  switch (state_) {
    case WatcherState::starting:
    case WatcherState::active:
      break;
    case WatcherState::stopping:
    case WatcherState::stopped:
    case WatcherState::failed:
      return;
  }
  if (!cfg_.respawn || paused_ || p.wid > wanted()) return;
  policy::Decision d = policy::on_exit(history_, cfg_, p.started, Clock::now());
  switch (d.action) {
    case policy::Action::respawn:
      schedule_spawn(p.wid, d.delay);
      break;
    case policy::Action::pause: {
      spdlog::warn("watcher {}: flapping ({} exits within {}): pausing for {}", name(),
                   cfg_.flapping.attempts, conf::format_duration(cfg_.flapping.window),
                   conf::format_duration(d.delay));
      ctx_.host->publish(name(), "flapping", {{"retry_in", std::chrono::duration<double>(d.delay).count()}});
      paused_ = true;
      if (rollout_) end_rollout({false, "the watcher is flapping", p.wid, 0});
      pending_spawns_.clear();
      next_start_wid_ = 0;
      if (state_ == WatcherState::active) set_state(WatcherState::starting);
      for (auto& [pid, other] : processes_) stop_process(*other);
      resume_ = ctx_.loop->after(d.delay, [this] {
        paused_ = false;
        policy::after_pause(history_);
        for (int wid = 1; wid <= wanted(); ++wid)
          if (!slot_busy(wid)) spawn_process(wid);
        check_started();
      });
      break;
    }
    case policy::Action::give_up:
      fail(fmt::format("process exited too often ({}, last: pid {} {})",
                       cfg_.flapping.enabled ? "flapping" : "max_retry", p.pid, p.status->to_string()));
      break;
  }
}

void Watcher::read_stream(Process& p, Stream& s) {
  static char buf[kReadChunk];  // the loop thread's only
  std::size_t total = 0;
  while (total < kReadPerWake) {
    ssize_t n = ::read(s.fd.get(), buf, sizeof buf);
    if (n > 0) {
      auto bytes = std::string_view(buf, static_cast<std::size_t>(n));
      total += bytes.size();
      append_tail(bytes);
      if (ready_regex_ && !p.signalled_ready) scan_for_ready(p, s, bytes);
      if (!ctx_.output->write(*s.sink, p.pid, bytes)) {
        // The destination is behind: stop reading (the child blocks on its pipe) until it
        // caught up. Nothing is dropped.
        s.watch.modify(0);
        pid_t pid = p.pid;
        Stream* sp = &s;
        std::weak_ptr<int> alive = alive_;
        ctx_.output->on_drained(*s.sink, [this, alive, pid, sp] {
          if (alive.expired()) return;
          if (processes_.count(pid) && sp->watch) sp->watch.modify(EPOLLIN);
        });
        return;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    break;  // EOF, or an error that means the same for us
  }
  if (total >= kReadPerWake) return;  // more to read: epoll says so again
  s.watch.reset();
  s.fd.reset();
  pid_t pid = p.pid;
  std::weak_ptr<int> alive = alive_;
  bool written = ctx_.output->close(*s.sink, pid, [this, alive, pid] {
    if (alive.expired()) return;
    if (auto it = processes_.find(pid); it != processes_.end()) on_stream_closed(*it->second);
  });
  if (written) on_stream_closed(p);
}

// Called when one output stream of a process reached EOF and everything was written.
void Watcher::on_stream_closed(Process& p) {
  --p.streams_open;
  if (p.streams_open == 0 && p.status) finalize(p);
}

// Called once a process exited and its output was drained: its before_reap hook (its result
// is ignored, as circus does), then finish_reap.
void Watcher::finalize(Process& p) {
  if (!has_hook("before_reap")) return finish_reap(p);
  if (p.reaping) return;
  p.reaping = true;
  pid_t pid = p.pid;
  run_hook("before_reap", {pid, 0, p.status->bus_code()}, [this, pid](bool) {
    if (auto it = processes_.find(pid); it != processes_.end()) finish_reap(*it->second);
  });
}

// The process's one reap, then its replacement if one is due, so a subscriber always sees a
// slot's reap before its next spawn; then its after_reap hook.
void Watcher::finish_reap(Process& p) {
  ++stats_.reaps;
  pid_t pid = p.pid;
  int code = p.status->bus_code();
  // The record goes first: status must not show the process once its reap is published.
  auto node = processes_.extract(pid);
  // circus's keys, and whether trapeze asked it to stop (false: it exited on its own).
  ctx_.host->publish(name(), "reap",
                     {{"process_pid", pid}, {"process_id", p.wid}, {"exit_code", code}, {"expected", !p.unexpected}});
  bool running = state_ == WatcherState::active || state_ == WatcherState::starting;
  if (rollout_ && rollout_reaped(p)) {
    // the rollout took care of the slot
  } else if (p.unexpected) {
    after_unexpected_exit(p);
  } else if (p.spawn_vetoed && running && !paused_ && p.wid <= wanted() && !slot_busy(p.wid)) {
    policy::Decision d = policy::on_spawn_failed(history_, cfg_);
    if (d.action == policy::Action::give_up)
      fail("its after_spawn hook refused every process");
    else
      schedule_spawn(p.wid, d.delay);
  } else if (p.replace && running && !paused_ && p.wid <= wanted() && !slot_busy(p.wid)) {
    spawn_process(p.wid);
  }
  // Free the process (its timers, watches) after this iteration: we may be inside its callback.
  auto holder = std::make_shared<decltype(node)>(std::move(node));
  ctx_.loop->defer([holder] {});
  // A stop ends once the hook returned (at once when there is none); its result is ignored.
  ++after_reaps_running_;
  run_hook("after_reap", {pid, 0, code}, [this](bool) {
    --after_reaps_running_;
    check_stopped();
  });
}

void Watcher::check_stopped() {
  if (state_ != WatcherState::stopping || before_stop_running_ || after_reaps_running_ > 0) return;
  if (!processes_.empty()) return;
  if (stop_to_failed_) {
    set_state(WatcherState::failed);
    ctx_.host->publish(name(), "stop", {});
    ctx_.host->publish(name(), "failed", {{"reason", failure_}});
  } else {
    set_state(WatcherState::stopped);
    spdlog::info("watcher {}: stopped", name());
    ctx_.host->publish(name(), "stop", {});
  }
  run_hook("after_stop", {}, [](bool) {});  // its result is ignored
}

void Watcher::send_signal(pid_t pid, int signum) {
  if (!has_hook("before_signal") && !has_hook("after_signal")) {
    ::kill(-pid, signum);
    return;
  }
  run_hook("before_signal", {pid, signum, 0}, [this, pid, signum](bool proceed) {
    // The group may be signalled only while its record is here: after that the id is free.
    if (!processes_.count(pid)) return;
    if (proceed || signum == SIGKILL)
      ::kill(-pid, signum);
    else
      spdlog::info("watcher {}: its before_signal hook kept signal {} from pid {}", name(), signum, pid);
    run_hook("after_signal", {pid, signum, 0}, [](bool) {});
  });
}

void Watcher::run_hook(const std::string& point, HookArgs args, std::function<void(bool proceed)> next) {
  auto it = bound_hooks_.find(point);
  if (it == bound_hooks_.end() || ctx_.hooks == nullptr) return next(true);
  const conf::HookConfig& hook = *it->second.cfg;
  hooks::HookRequest req;
  req.fn = it->second.fn;
  req.isolate = hook.isolate;
  req.library = hook.library;
  req.symbol = hook.symbol;
  req.hook_name = point;
  req.watcher_name = name();
  req.pid = args.pid;
  req.signum = args.signum;
  req.exit_status = args.exit_status;
  req.watcher_options = hook_view_;
  req.hook_options = hook.options;
  req.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(hook.timeout);
  bool ignore = hook.ignore_failure || failure_ignored_by_default(point);
  std::weak_ptr<int> alive = alive_;
  ctx_.hooks->run(std::move(req), [this, alive, point, ignore, next = std::move(next)](hooks::HookResult r) {
    if (alive.expired()) return;  // the watcher was removed meanwhile
    nlohmann::json payload = {{"name", point}, {"duration_ms", r.duration_ms}};
    if (r.outcome == hooks::HookOutcome::proceed) {
      ctx_.host->publish(name(), "hook_success", std::move(payload));
      return next(true);
    }
    ++stats_.hook_failures;
    bool vetoed = r.outcome == hooks::HookOutcome::veto;
    spdlog::warn("watcher {}: hook {} {}{}", name(), point, vetoed ? "vetoed" : "failed: " + r.error,
                 !vetoed && ignore ? " (ignored)" : "");
    payload["error"] = r.error;
    ctx_.host->publish(name(), "hook_failure", std::move(payload));
    next(!vetoed && ignore);
  });
}

// A liveness check went down (`threshold` failures in a row). With on_check_failure =
// restart, every process is replaced, as Pebble restarts a service; the check goes on, and
// check_recovered follows its next success.
void Watcher::on_check_failed(const std::string& check, int failures, const std::string& error) {
  spdlog::warn("watcher {}: check {} is down ({} failures in a row): {}", name(), check, failures, error);
  ctx_.host->publish(name(), "check_failed", {{"check", check}, {"failures", failures}, {"error", error}});
  if (cfg_.on_check_failure != conf::OnCheckFailure::restart || state_ != WatcherState::active) return;
  spdlog::warn("watcher {}: restarting its processes (on_check_failure = restart)", name());
  for (auto& [pid, p] : processes_)
    if (!p->status && !p->asked_to_stop) {
      p->replace = true;
      stop_process(*p);
    }
}

std::vector<CheckStatus> Watcher::check_status() const {
  return checks_ ? checks_->status() : std::vector<CheckStatus>{};
}

// ready.log: whole lines are matched, so a line that arrives in pieces matches once its
// newline came; a line longer than 64 KiB is matched by its first 64 KiB.
void Watcher::scan_for_ready(Process& p, Stream& s, std::string_view bytes) {
  constexpr std::size_t kLongestLine = 64 * 1024;
  while (!bytes.empty()) {
    auto eol = bytes.find('\n');
    std::string_view piece = bytes.substr(0, eol);
    if (s.partial.size() < kLongestLine) s.partial.append(piece.substr(0, kLongestLine - s.partial.size()));
    if (eol == std::string_view::npos) return;
    bool hit = std::regex_search(s.partial, *ready_regex_);
    s.partial.clear();
    bytes.remove_prefix(eol + 1);
    if (hit) {
      p.out.partial.clear();
      p.err.partial.clear();
      return ready_signal(p);
    }
  }
}

void Watcher::append_tail(std::string_view bytes) {
  if (bytes.size() >= kTailBytes) {
    tail_.assign(bytes.substr(bytes.size() - kTailBytes));
    tail_pos_ = 0;
    return;
  }
  if (tail_.size() < kTailBytes) {
    std::size_t room = kTailBytes - tail_.size();
    std::size_t first = std::min(room, bytes.size());
    tail_.append(bytes.substr(0, first));
    bytes.remove_prefix(first);
    if (bytes.empty()) return;
  }
  while (!bytes.empty()) {
    std::size_t n = std::min(bytes.size(), kTailBytes - tail_pos_);
    tail_.replace(tail_pos_, n, bytes.substr(0, n));
    tail_pos_ = (tail_pos_ + n) % kTailBytes;
    bytes.remove_prefix(n);
  }
}

std::string Watcher::output_tail() const {
  if (tail_.size() < kTailBytes) return tail_;
  return tail_.substr(tail_pos_) + tail_.substr(0, tail_pos_);
}

bool Watcher::can_reconfigure(const conf::WatcherConfig& next) const {
  return next.name == cfg_.name && next.hooks == cfg_.hooks && next.ready == cfg_.ready &&
         next.checks == cfg_.checks && next.stdout_stream == cfg_.stdout_stream &&
         next.stderr_stream == cfg_.stderr_stream && next.singleton == cfg_.singleton &&
         // exec checks got the environment and directory of the watcher they were made with
         (cfg_.checks.empty() || (next.env == cfg_.env && next.copy_env == cfg_.copy_env &&
                                  next.working_dir == cfg_.working_dir));
}

void Watcher::reconfigure(const conf::WatcherConfig& next) {
  int count = next.numprocesses;
  conf::WatcherConfig taken = next;
  taken.numprocesses = cfg_.numprocesses;
  cfg_ = std::move(taken);
  for (auto& [point, hook] : cfg_.hooks) bound_hooks_[point].cfg = &hook;  // the same hooks, moved
  hook_view_ = options_view(cfg_);
  if (count != cfg_.numprocesses) set_numprocesses(count);
}

// --- rolling restarts ------------------------------------------------------------------------

void Watcher::roll(RolloutPlan plan, std::function<void(RolloutResult)> done) {
  if (state_ != WatcherState::active || rollout_) {
    done({false, rollout_ ? "a rollout is in progress" : fmt::format("the watcher is {}", to_string(state_)), 0, 0});
    return;
  }
  auto r = std::make_unique<Rollout>();
  r->plan = plan;
  r->plan.batch = std::max(plan.batch, 1);
  // With sockets the arbiter holds, the listening socket outlives every process: a replacement
  // can start beside the old one, so capacity never drops.
  r->surge = plan.surge || (cfg_.use_sockets && (!ctx_.socket_fds.empty() || !ctx_.reuseport_sockets.empty()));
  r->done = std::move(done);
  r->generation = ++generation_;
  for (int wid = 1; wid <= wanted(); ++wid) r->todo.push_back(wid);
  r->total = static_cast<int>(r->todo.size());
  rollout_ = std::move(r);
  spdlog::info("watcher {}: rolling restart of {} process{}, {} at a time{}", name(), rollout_->total,
               rollout_->total == 1 ? "" : "es", rollout_->plan.batch,
               rollout_->surge ? ", each replacement before its old process stops" : "");
  ctx_.host->publish(name(), "rollout_start",
                     {{"total", rollout_->total}, {"batch", rollout_->plan.batch}, {"surge", rollout_->surge}});
  advance_rollout();
}

// The live process of slot `wid`: its replacement (spawned by this rollout) or the old one.
Watcher::Process* Watcher::slot_process(int wid, bool replacement) {
  for (auto& [pid, p] : processes_) {
    if (p->wid != wid || p->status || p->asked_to_stop) continue;
    if ((p->generation >= rollout_->generation) == replacement) return p.get();
  }
  return nullptr;
}

void Watcher::advance_rollout() {
  Rollout& r = *rollout_;
  while (static_cast<int>(r.slots.size()) < r.plan.batch && !r.todo.empty()) {
    int wid = r.todo.front();
    r.todo.pop_front();
    Process* now = slot_process(wid, true);
    if (now && now->state == ProcessState::ready) {
      // Respawned since the rollout began (a crash, max_age): already new.
      ++r.finished;
      ctx_.host->publish(name(), "rollout_progress", {{"done", r.finished}, {"total", r.total}, {"slot", wid}});
      continue;
    }
    Rollout::Slot& slot = r.slots[wid];
    if (Process* old = slot_process(wid, false)) slot.old_pid = old->pid;
    roll_slot(wid);
    if (!rollout_) return;  // it ended meanwhile
  }
  if (r.slots.empty() && r.todo.empty()) end_rollout({true, {}, 0, 0});
}

// One attempt at slot `wid`: stop its old process first (its reap spawns the replacement), or
// spawn the replacement beside it.
void Watcher::roll_slot(int wid) {
  Rollout::Slot& slot = rollout_->slots.at(wid);
  ++slot.attempts;
  auto it = processes_.find(slot.old_pid);
  if (!rollout_->surge && it != processes_.end() && !it->second->status && !it->second->asked_to_stop) {
    stop_process(*it->second);
    return;
  }
  spawn_replacement(wid);
}

void Watcher::spawn_replacement(int wid) {
  Rollout::Slot& slot = rollout_->slots.at(wid);
  pending_spawns_.erase(wid);  // a respawn that was waiting: the replacement is it
  slot.deadline = ctx_.loop->after(cfg_.ready.start_timeout, [this, wid] {
    std::string why = fmt::format("not ready after {}", conf::format_duration(cfg_.ready.start_timeout));
    if (Process* p = slot_process(wid, true); p && !p->probe_error.empty())
      why += fmt::format(" (pid {}: {})", p->pid, p->probe_error);
    replacement_failed(wid, why);
  });
  spawn_process(wid);
}

void Watcher::replacement_ready(Process& p) {
  auto it = rollout_->slots.find(p.wid);
  if (it == rollout_->slots.end() || p.generation < rollout_->generation || p.asked_to_stop) return;
  int wid = p.wid;
  pid_t old_pid = it->second.old_pid;
  rollout_->slots.erase(it);
  if (auto old = processes_.find(old_pid); old != processes_.end()) stop_process(*old->second);  // surge
  ++rollout_->finished;
  spdlog::info("watcher {}: rollout: process {} replaced ({}/{})", name(), wid, rollout_->finished, rollout_->total);
  ctx_.host->publish(name(), "rollout_progress",
                     {{"done", rollout_->finished}, {"total", rollout_->total}, {"slot", wid}});
  // Not from inside on_ready: the next slot may stop processes.
  std::weak_ptr<int> alive = alive_;
  auto* rollout = rollout_.get();
  ctx_.loop->defer([this, alive, rollout] {
    if (!alive.expired() && rollout_.get() == rollout) advance_rollout();
  });
}

// A process of a slot in hand was reaped: the old one (stop first: now its replacement), or a
// replacement that exited. Returns whether the rollout took care of the slot.
bool Watcher::rollout_reaped(Process& p) {
  auto it = rollout_->slots.find(p.wid);
  if (it == rollout_->slots.end()) return false;
  Rollout::Slot& slot = it->second;
  int wid = p.wid;
  if (p.pid == slot.old_pid) {
    slot.old_pid = 0;
    if (!rollout_->surge) spawn_replacement(wid);
    return true;
  }
  if (p.generation < rollout_->generation) return false;
  if (slot.respawn_on_reap) {  // stopped for another attempt
    slot.respawn_on_reap = false;
    spawn_replacement(wid);
    return true;
  }
  if (!p.unexpected) return false;
  std::string error = fmt::format("pid {} {}", p.pid, p.status->to_string());
  int limit = rollout_->plan.max_retry;
  if (limit >= 0 && slot.attempts > limit) {
    give_up_rollout(wid);  // the slot is the respawn policy's again
    return false;
  }
  replacement_failed(wid, error);
  return true;
}

// An attempt failed: try the slot again (after a short backoff when its replacement exited),
// or, past max_retry, give the rollout up.
void Watcher::replacement_failed(int wid, const std::string& error) {
  Rollout::Slot& slot = rollout_->slots.at(wid);
  slot.deadline.reset();
  slot.error = error;
  spdlog::warn("watcher {}: rollout: replacement {} failed (attempt {}): {}", name(), wid, slot.attempts, error);
  int limit = rollout_->plan.max_retry;
  if (limit >= 0 && slot.attempts > limit) return give_up_rollout(wid);
  ++slot.attempts;
  if (Process* now = slot_process(wid, true)) {
    slot.respawn_on_reap = true;
    stop_process(*now);
    return;
  }
  auto backoff = std::min<policy::Duration>(100ms * (1 << std::min(slot.attempts - 2, 8)), 30s);
  std::weak_ptr<int> alive = alive_;
  slot.retry = ctx_.loop->after(backoff, [this, alive, wid] {
    if (alive.expired() || !rollout_ || !rollout_->slots.count(wid)) return;
    spawn_replacement(wid);
  });
}

// max_retry attempts failed at slot `wid`: the rollout stops there. The old processes of the
// other slots keep serving; a replacement that surged beside a serving old process goes.
void Watcher::give_up_rollout(int wid) {
  Rollout::Slot& slot = rollout_->slots.at(wid);
  RolloutResult result{false, slot.error, wid, slot.attempts};
  for (auto& [w, s] : rollout_->slots) {
    if (!rollout_->surge) continue;
    Process* old = slot_process(w, false);
    if (Process* repl = slot_process(w, true); repl && old) {
      if (repl->state == ProcessState::ready)
        stop_process(*old);
      else
        stop_process(*repl);
    }
  }
  end_rollout(std::move(result));
}

void Watcher::end_rollout(RolloutResult result) {
  auto r = std::move(rollout_);
  if (result.ok) {
    spdlog::info("watcher {}: rolling restart done", name());
    ctx_.host->publish(name(), "rollout_done", {{"total", r->total}});
  } else {
    spdlog::error("watcher {}: rolling restart stopped: {}", name(), result.error);
    ctx_.host->publish(name(), "rollout_failed",
                       {{"slot", result.slot}, {"attempts", result.attempts}, {"error", result.error},
                        {"done", r->finished}, {"total", r->total}});
  }
  // Slots still in hand: a stop-first slot whose old process is going gets its replacement
  // from the respawn policy now.
  for (auto& [wid, s] : r->slots)
    if (s.old_pid && !r->surge && state_ == WatcherState::active)
      if (auto it = processes_.find(s.old_pid); it != processes_.end()) it->second->replace = true;
  auto done = std::move(r->done);
  if (done) done(std::move(result));
}

}  // namespace trapeze::watchers
