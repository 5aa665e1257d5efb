#include "arbiter.hpp"

#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <set>
#include <system_error>

#include <spdlog/spdlog.h>

#include "system.hpp"
#include "trapeze/conf/load.hpp"
#include "trapeze/conf/paths.hpp"
#include "trapeze/hooks/host.hpp"
#include "trapeze/watchers/probe.hpp"

extern char** environ;

namespace trapeze::arbiter {
namespace {

using namespace std::chrono_literals;

std::map<std::string, std::string> process_environment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string entry(*e);
    auto eq = entry.find('=');
    if (eq != std::string::npos) env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return env;
}

// Two configs of one watcher differ in what it runs (its location in the file does not count).
bool same_watcher(conf::WatcherConfig a, conf::WatcherConfig b) {
  a.where = {};
  b.where = {};
  return a == b;
}

// Only numprocesses differs: adjust the count, restart nothing.
bool same_but_numprocesses(conf::WatcherConfig a, conf::WatcherConfig b) {
  a.numprocesses = b.numprocesses;
  return same_watcher(std::move(a), std::move(b));
}

}  // namespace

Arbiter::Arbiter(conf::Config config, std::string events_file)
    : config_(std::move(config)),
      output_([this](std::function<void()> fn) { loop_.post(std::move(fn)); },
              [](std::string message) { spdlog::warn("output: {}", message); }),
      // After each hook's result, waiters (a shutdown waiting for the last hooks) look again.
      hooks_([this](std::function<void()> fn) {
        loop_.post([this, fn = std::move(fn)] {
          fn();
          check_waiters();
        });
      }),
      notify_(loop_) {
  ctx_.loop = &loop_;
  ctx_.notify = &notify_;
  ctx_.plugins = &plugins_;
  ctx_.hooks = &hooks_;
  ctx_.output = &output_;
  ctx_.host = this;
  ctx_.environ = process_environment();
  // The arbiter raises its own fd limit (1000 processes need 3000 fds); children get the
  // limit it started with, as systemd does, unless their config says otherwise.
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    ctx_.nofile = nofile;
    rlimit raised{nofile.rlim_max, nofile.rlim_max};
    setrlimit(RLIMIT_NOFILE, &raised);
  }

  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP}) sigaddset(&signals, s);
  signal_fd_.reset(signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd_) throw std::system_error(errno, std::system_category(), "signalfd");
  signal_watch_ = loop_.watch(signal_fd_.get(), EPOLLIN, [this](std::uint32_t) { on_signal(); });

  if (!events_file.empty()) {
    events_ = std::fopen(events_file.c_str(), "ae");
    if (!events_)
      throw std::system_error(errno, std::system_category(), "cannot open events file '" + events_file + "'");
  }
  // circus binds its sockets before it starts a watcher: a child finds them open.
  for (const auto& sock : config_.sockets) {
    if (sock.so_reuseport && sock.family != "AF_UNIX") {
      ctx_.reuseport_sockets[sock.name] = sock;
      continue;
    }
    try {
      sockets_.push_back(watchers::bind_socket(sock));
    } catch (const watchers::SocketError& e) {
      throw std::runtime_error(fmt::format("{}:{}: {}", sock.where.file, sock.where.line, e.what()));
    }
    ctx_.socket_fds[sock.name] = sockets_.back().fd.get();
    spdlog::info("arbiter: {} (fd {})", watchers::describe(sockets_.back()), sockets_.back().fd.get());
  }
  for (const auto& w : config_.watchers) add_watcher(w);
  if (config_.juju.configured) {
    std::string queue = !config_.juju.queue_file.empty() ? config_.juju.queue_file
                                                         : conf::runtime_base(config_.path, true) + ".dispatches.json";
    waker_ = std::make_unique<Waker>(loop_, config_.juju, queue, ctx_.environ,
                                     [this](const std::string& topic, nlohmann::json payload) {
                                       publish_topic(topic, std::move(payload));
                                     });
  }

  std::optional<curve::Keypair> keys;
  if (!config_.arbiter.curve_keypair.empty()) {
    keys = curve::read_keypair(config_.arbiter.curve_keypair);
    // ZAP first: a connection that comes before it would be let in unchecked.
    if (!config_.arbiter.curve_clients.empty())
      zap_ = std::make_unique<ZapHandler>(zmq_, loop_, curve::read_public_keys(config_.arbiter.curve_clients));
    spdlog::info("arbiter: CURVE on, public key {}; {}", keys->public_key,
                 zap_ ? "only the clients of " + config_.arbiter.curve_clients : "any client that knows the key");
  }
  bus_ = std::make_unique<EventBus>(zmq_, conf::events_endpoint(config_, true), config_.arbiter.pubsub_hwm,
                                    keys ? &*keys : nullptr);
  control_ = std::make_unique<ControlServer>(
      zmq_, loop_, conf::control_endpoint(config_, true),
      [this](ctl::Request req, ControlServer::Reply reply) { on_request(std::move(req), std::move(reply)); },
      keys ? &*keys : nullptr);
  spdlog::info("arbiter: control on {}, events on {}", control_->endpoint(), bus_->endpoint());
}

Arbiter::~Arbiter() {
  watchers_.clear();  // kills whatever an interrupted stop left
  control_.reset();
  bus_.reset();
  if (events_) std::fclose(events_);
}

void Arbiter::add_watcher(const conf::WatcherConfig& cfg) {
  watchers_[cfg.name] = std::make_unique<watchers::Watcher>(cfg, ctx_);
}

watchers::Watcher* Arbiter::find(const std::string& name) {
  auto it = watchers_.find(name);
  return it == watchers_.end() ? nullptr : it->second.get();
}

std::vector<Arbiter::Group> Arbiter::priority_groups(bool autostart_only) const {
  std::map<int, Group> by_priority;
  for (const auto& [name, w] : watchers_)
    if (!autostart_only || w->config().autostart) by_priority[w->config().priority].push_back(name);
  std::vector<Group> groups;
  for (auto& [priority, group] : by_priority) groups.push_back(std::move(group));
  if (config_.arbiter.priority_order == conf::PriorityOrder::descending)
    std::reverse(groups.begin(), groups.end());
  return groups;
}

int Arbiter::run() {
  spdlog::info("arbiter: starting {} watcher{} from {}", watchers_.size(), watchers_.size() == 1 ? "" : "s",
               config_.path);
  publish_topic("arbiter.start", {{"pid", getpid()}});
  std::vector<std::string> autostart;
  for (const auto& [name, w] : watchers_)
    if (w->config().autostart && !on_demand(*w)) autostart.push_back(name);
  phase_ = Phase::starting;
  arm_on_demand();
  loop_.defer([this, autostart] { begin_start(autostart); });
  if (waker_) waker_->start();
  loop_.run();
  return exit_code_;
}

bool Arbiter::on_demand(const watchers::Watcher& w) const {
  return w.config().on_demand && w.config().use_sockets && !sockets_.empty();
}

// Watches the sockets while an on_demand watcher is stopped; the first connection (it waits
// in the socket's backlog, unanswered until then) starts every such watcher.
void Arbiter::arm_on_demand() {
  bool wanted = false;
  if (phase_ != Phase::stopping)
    for (const auto& [name, w] : watchers_)
      if (on_demand(*w) && w->state() == watchers::WatcherState::stopped) wanted = true;
  if (!wanted) {
    demand_watches_.clear();
    return;
  }
  if (!demand_watches_.empty()) return;
  for (const auto& sock : sockets_)
    demand_watches_.push_back(loop_.watch(sock.fd.get(), EPOLLIN, [this, name = sock.name](std::uint32_t) {
      spdlog::info("arbiter: a connection on socket {}: starting the on_demand watchers", name);
      std::vector<std::string> names;
      for (const auto& [n, w] : watchers_)
        if (on_demand(*w) && w->state() == watchers::WatcherState::stopped) names.push_back(n);
      loop_.defer([this] { demand_watches_.clear(); });  // not from inside its own callback
      for (const auto& n : names) find(n)->start();
    }));
}

// Starts `names` in order: a watcher starts once every watcher of the set in an earlier
// priority group is active (and `warmup_delay` passed since that group became active), and
// every watcher it depends_on is active. One that failed (or whose start a hook refused)
// blocks the watchers after it, which are told (event start_blocked) and start when it
// recovers.
void Arbiter::begin_start(const std::vector<std::string>& names) {
  std::set<std::string> wanted(names.begin(), names.end());
  start_groups_.clear();
  for (auto& group : priority_groups(false)) {
    Group in;
    for (auto& n : group)
      if (wanted.count(n)) in.push_back(n);
    if (!in.empty()) start_groups_.push_back(std::move(in));
  }
  to_start_ = std::move(wanted);
  released_ = 0;
  warmup_done_ = false;
  group_delay_.reset();
  blocked_reported_.clear();
  phase_ = Phase::starting;
  advance_start();
}

// Why `name` (of start group `g`) cannot start now, when it cannot until something changes:
// the watcher that holds it back. Empty when it can start, or only has to wait.
std::string Arbiter::start_blocker(const std::string& name, std::size_t g) {
  auto given_up = [&](const std::string& other) {
    auto* w = find(other);
    if (!w) return true;
    auto st = w->state();
    return st == watchers::WatcherState::failed ||
           (st == watchers::WatcherState::stopped && !to_start_.count(other));
  };
  for (std::size_t earlier = 0; earlier < g; ++earlier)
    for (const auto& other : start_groups_[earlier])
      if (given_up(other)) return other;
  if (auto* w = find(name))
    for (const auto& dep : w->config().depends_on)
      if (given_up(dep)) return dep;
  return {};
}

void Arbiter::advance_start() {
  if (phase_ == Phase::stopping) return;
  auto active = [&](const std::string& n) {
    auto* w = find(n);
    return !w || w->state() == watchers::WatcherState::active;
  };
  // Release the next group once every watcher of the released ones is active.
  while (released_ + 1 < start_groups_.size() && !group_delay_.pending()) {
    bool all_active = true;
    for (std::size_t g = 0; g <= released_; ++g)
      for (const auto& n : start_groups_[g]) all_active = all_active && active(n);
    if (!all_active) break;
    if (config_.arbiter.warmup_delay > 0ms && !warmup_done_) {
      group_delay_ = loop_.after(config_.arbiter.warmup_delay, [this] {
        warmup_done_ = true;
        advance_start();
      });
      break;
    }
    warmup_done_ = false;
    ++released_;
  }

  std::vector<std::string> now;
  std::vector<std::string> blocked;
  for (std::size_t g = 0; g < start_groups_.size(); ++g)
    for (const auto& name : start_groups_[g]) {
      if (!to_start_.count(name)) continue;
      auto* w = find(name);
      if (!w) {
        to_start_.erase(name);
        continue;
      }
      std::string blocker = start_blocker(name, g);
      if (!blocker.empty()) {
        blocked.push_back(name);
        if (blocked_reported_.insert(name).second) {
          spdlog::warn("arbiter: watcher {} waits for {}, which is not running", name, blocker);
          publish(name, "start_blocked", {{"blocker", blocker}});
        }
        continue;
      }
      blocked_reported_.erase(name);
      if (g > released_) continue;
      bool deps_active = true;
      for (const auto& dep : w->config().depends_on) deps_active = deps_active && active(dep);
      if (deps_active) now.push_back(name);
    }
  for (const auto& name : now) {
    to_start_.erase(name);
    if (auto* w = find(name)) w->start();
  }
  if (phase_ != Phase::starting) return;

  // Done when nothing is left to start, or what is left is blocked and nothing is starting.
  bool starting = false;
  for (const auto& group : start_groups_)
    for (const auto& n : group)
      if (auto* w = find(n); w && w->state() == watchers::WatcherState::starting) starting = true;
  bool waiting = to_start_.size() > blocked.size();
  if (starting || waiting) return;
  phase_ = Phase::running;
  if (to_start_.empty() && blocked.empty()) {
    std::vector<std::string> failed;
    for (const auto& group : start_groups_)
      for (const auto& n : group)
        if (!active(n)) failed.push_back(n);
    if (failed.empty()) {
      spdlog::info("arbiter: every autostart watcher is active");
      tell_ready("every autostart watcher is active");
    } else {
      spdlog::error("arbiter: watcher {} did not start", fmt::join(failed, ", "));
      tell_ready(fmt::format("watcher {} did not start", fmt::join(failed, ", ")));
    }
    return;
  }
  std::string status = fmt::format("not started, waiting for what they depend on: {}", fmt::join(blocked, ", "));
  spdlog::error("arbiter: {}", status);
  tell_ready(status);
}

void Arbiter::tell_ready(const std::string& status) {
  if (ready_told_) return;
  ready_told_ = true;
  sd_notify("READY=1\nSTATUS=" + status);
}

// Called after any watcher changed state.
void Arbiter::state_changed(const std::string& watcher_name) {
  const std::string name = watcher_name;  // the reference dies with the watcher, erased below
  auto* changed = find(name);
  if (changed && after_stop_.count(name) &&
      (changed->state() == watchers::WatcherState::stopped ||
       changed->state() == watchers::WatcherState::failed)) {
    // A reload, set or rm waited for this stop.
    auto node = after_stop_.extract(name);
    watchers_.erase(name);  // not inside its own call: state_changed runs from the loop's deferred work
    AfterStop& next = node.mapped();
    if (next.config) {
      add_watcher(*next.config);
      publish(name, "updated", {});
      if (next.start && phase_ != Phase::stopping) find(name)->start();
    } else {
      publish(name, "remove", {});
    }
  }
  check_waiters();
  arm_on_demand();

  if (!to_start_.empty() || phase_ == Phase::starting) advance_start();

  switch (phase_) {
    case Phase::starting:
      return;
    case Phase::stopping: {
      if (group_ >= groups_.size()) return;
      for (const auto& n : groups_[group_]) {
        auto* w = find(n);
        if (w && w->state() != watchers::WatcherState::stopped &&
            w->state() != watchers::WatcherState::failed)
          return;
      }
      ++group_;
      stop_next_group();
      return;
    }
    case Phase::running:
      return;
  }
}

void Arbiter::shutdown(bool exit_after) {
  if (phase_ == Phase::stopping) {
    exit_after_stop_ = exit_after_stop_ || exit_after;
    return;
  }
  exit_after_stop_ = exit_after;
  spdlog::info("arbiter: stopping every watcher");
  if (exit_after) sd_notify("STOPPING=1");
  phase_ = Phase::stopping;
  group_delay_.reset();
  to_start_.clear();
  groups_ = priority_groups(false);
  std::reverse(groups_.begin(), groups_.end());
  group_ = 0;
  stop_next_group();
}

void Arbiter::stop_next_group() {
  while (group_ < groups_.size()) {
    bool waiting = false;
    for (const auto& name : groups_[group_]) {
      auto* w = find(name);
      if (!w) continue;
      w->stop();
      if (w->state() != watchers::WatcherState::stopped && w->state() != watchers::WatcherState::failed)
        waiting = true;
    }
    if (waiting) return;  // state_changed moves on
    ++group_;
  }
  phase_ = Phase::running;
  check_waiters();
  if (!exit_after_stop_) return;
  // Hooks still running (after_stop, after_reap) finish first, each within its timeout.
  when([this] { return hooks_.pending() == 0; }, [this] { finish_shutdown(); });
}

void Arbiter::finish_shutdown() {
  if (waker_) waker_->stop();
  publish_topic("arbiter.stop", {{"pid", getpid()}});
  spdlog::info("arbiter: stopped");
  loop_.stop();
}

void Arbiter::reload() {
  spdlog::info("arbiter: reloading {}", config_.path);
  output_.reopen();
  conf::Config fresh;
  try {
    fresh = conf::load(config_.path, conf::LoadOptions::from_process());
  } catch (const conf::ConfigError& e) {
    for (const auto& d : e.diagnostics()) spdlog::error("reload: {}", to_string(d));
    spdlog::error("arbiter: reload refused, the running config stays");
    return;
  }
  std::vector<conf::Diagnostic> unusable;
  for (const auto& w : fresh.watchers)
    for (auto& d : watchers::load_hook_plugins(w, plugins_)) unusable.push_back(std::move(d));
  if (!unusable.empty()) {
    for (const auto& d : unusable) spdlog::error("reload: {}", to_string(d));
    spdlog::error("arbiter: reload refused, the running config stays");
    return;
  }
  for (const auto& d : fresh.warnings) spdlog::warn("reload: {}", to_string(d));

  std::set<std::string> seen;
  for (const auto& w : fresh.watchers) {
    seen.insert(w.name);
    auto* current = find(w.name);
    if (!current) {
      add_watcher(w);
      publish(w.name, "add", {});
      if (w.autostart && phase_ != Phase::stopping) find(w.name)->start();
      continue;
    }
    if (same_watcher(current->config(), w) && !after_stop_.count(w.name)) {
      // circus's send_hup: the program rereads its own config when told.
      if (w.send_hup) current->signal_all(SIGHUP);
      continue;
    }
    bool was_running = current->state() != watchers::WatcherState::stopped &&
                       current->state() != watchers::WatcherState::failed;
    // Each change waits its turn in the watcher's operation queue (behind a rollout).
    auto op = std::make_shared<Operation>();
    if (same_but_numprocesses(current->config(), w) && was_running && !after_stop_.count(w.name)) {
      op->kind = Operation::Kind::numprocesses;
      op->count = w.numprocesses;
    } else if (was_running && !after_stop_.count(w.name) && current->can_reconfigure(w)) {
      // What changed applies to new processes: replace them one at a time, each ready before
      // the next goes, as a rolling restart does.
      op->kind = Operation::Kind::reconfigure;
      op->config = std::make_shared<conf::WatcherConfig>(w);
      op->plan.max_retry = w.max_retry;
    } else {
      op->kind = Operation::Kind::replace;
      op->config = std::make_shared<conf::WatcherConfig>(w);
      op->start_after = w.autostart || was_running;
    }
    queue_operation(w.name, std::move(op));
  }
  for (const auto& [name, w] : watchers_) {
    if (seen.count(name)) continue;
    after_stop_[name] = AfterStop{nullptr, false};
    w->stop();
    if (w->state() == watchers::WatcherState::stopped || w->state() == watchers::WatcherState::failed)
      loop_.defer([this, n = name] { state_changed(n); });
  }
  config_.arbiter = fresh.arbiter;
  config_.files = fresh.files;
  publish_topic("arbiter.reload", {});
}

void Arbiter::on_signal() {
  signalfd_siginfo info{};
  while (::read(signal_fd_.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
    switch (info.ssi_signo) {
      case SIGTERM:
      case SIGINT:
      case SIGQUIT:
        spdlog::info("arbiter: got {}", sigabbrev_np(static_cast<int>(info.ssi_signo)));
        shutdown();
        break;
      case SIGHUP:
        if (phase_ != Phase::stopping) reload();
        break;
      case SIGCHLD:
        loop_.defer([this] { reap_strays(); });
        break;
      default:
        break;
    }
  }
}

// The backstop for exits: pidfds tell about our children; anything else that became our
// child (an orphan, when we are pid 1) is reaped here so it never stays a zombie.
void Arbiter::reap_strays() {
  for (;;) {
    siginfo_t info{};
    if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) < 0 || info.si_pid == 0) return;
    // A hook host is reaped by its hook thread, or here for it (claim_host_child).
    bool ours = watchers::reap_probe_child(info.si_pid) || hooks::claim_host_child(info.si_pid);
    for (auto& [name, w] : watchers_)
      if (w->reap(info.si_pid)) ours = true;
    if (!ours) {
      waitid(P_PID, static_cast<id_t>(info.si_pid), &info, WEXITED | WNOHANG);
      spdlog::debug("arbiter: reaped pid {}, not a process of any watcher", info.si_pid);
    }
  }
}

void Arbiter::publish(const std::string& watcher, const std::string& event, nlohmann::json payload) {
  if (waker_) wake_charm(watcher, event, payload);
  publish_topic("watcher." + watcher + "." + event, std::move(payload));
}

// The charm events of a watcher's workload events: ready (the watcher's, not a process's),
// a check down or up again, a process that exited unasked.
void Arbiter::wake_charm(const std::string& watcher, const std::string& event, const nlohmann::json& payload) {
  auto* w = find(watcher);
  if (!w) return;
  const auto& names = w->config().juju;
  auto name_of = [&](const std::optional<std::string>& configured, const char* suffix) {
    return configured ? *configured : watcher + "-workload-" + suffix;  // "" (false): disabled
  };
  std::string charm_event;
  std::map<std::string, std::string> env;
  if (event == "ready" && !payload.contains("process_pid")) {
    charm_event = name_of(names.on_ready, "ready");
  } else if (event == "check_failed") {
    charm_event = name_of(names.on_check_failed, "check-failed");
    env["JUJU_PEBBLE_CHECK_NAME"] = payload.value("check", "");
  } else if (event == "check_recovered") {
    charm_event = name_of(names.on_check_recovered, "check-recovered");
    env["JUJU_PEBBLE_CHECK_NAME"] = payload.value("check", "");
  } else if (event == "reap" && !payload.value("expected", true)) {
    charm_event = name_of(names.on_exit, "exited");
  }
  if (charm_event.empty()) return;
  try {
    waker_->request(charm_event, watcher, std::move(env));
  } catch (const std::exception& e) {
    spdlog::error("juju: cannot queue {}: {}", charm_event, e.what());
  }
}

void Arbiter::publish_topic(const std::string& topic, nlohmann::json payload) {
  if (!payload.is_object()) payload = nlohmann::json::object();
  payload["time"] = unix_now();
  payload["seq"] = ++seq_;
  std::string text = payload.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  spdlog::debug("event {} {}", topic, text);
  if (bus_) bus_->publish(topic, text);
  if (events_) {
    // The payload is already JSON text: splice it in rather than serialize twice.
    std::string line = "{\"topic\":" + nlohmann::json(topic).dump() + ",\"data\":" + text + "}\n";
    std::fwrite(line.data(), 1, line.size(), events_);
    std::fflush(events_);
  }
}

}  // namespace trapeze::arbiter
