// A watcher: `numprocesses` copies of one command, kept running. The state machine of
// DESIGN.md section 3, one method per event, each switching on the current state.
//
// Threads: everything runs on the loop thread. Nothing here blocks: stops wait on timers and
// pidfds, output goes through the OutputWriter.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "trapeze/conf/config.hpp"
#include "trapeze/hooks/plugin.hpp"
#include "trapeze/hooks/runner.hpp"
#include "trapeze/loop/fd.hpp"
#include "trapeze/loop/loop.hpp"
#include "trapeze/watchers/checks.hpp"
#include "trapeze/watchers/exit_status.hpp"
#include "trapeze/watchers/output.hpp"
#include "trapeze/watchers/policy.hpp"

namespace trapeze::watchers {

class NotifyHub;

enum class WatcherState { stopped, starting, active, stopping, failed };
enum class ProcessState { spawning, running, ready, stopping, exited };

std::string_view to_string(WatcherState s);
std::string_view to_string(ProcessState s);

/// What a watcher needs from whoever owns it (the arbiter).
class WatcherHost {
 public:
  virtual ~WatcherHost() = default;
  /// Publishes `watcher.<name>.<event>`; the host adds "time" and "seq". Called after the
  /// state the event reports is visible.
  virtual void publish(const std::string& watcher, const std::string& event, nlohmann::json payload) = 0;
  /// Called (from the end of a loop iteration) after the watcher's state changed.
  virtual void state_changed(const std::string& watcher) = 0;
};

/// What every watcher shares: the loop, the output writer, the arbiter's environment.
struct WatcherContext {
  loop::Loop* loop = nullptr;
  OutputWriter* output = nullptr;
  WatcherHost* host = nullptr;
  std::map<std::string, std::string> environ;  // the arbiter's, for copy_env
  std::map<std::string, int> socket_fds;       // bound sockets by name
  std::optional<rlimit> nofile;                // RLIMIT_NOFILE to give children (the arbiter raised its own)
  hooks::PluginLoader* plugins = nullptr;      // hook functions: loaded when a watcher is made
  hooks::HookRunner* hooks = nullptr;          // runs them off the loop; null: hooks are not run
  NotifyHub* notify = nullptr;                 // ready.notify: the NOTIFY_SOCKET of the children
  // so_reuseport sockets: bound anew for each process, as circus does, so the kernel spreads
  // connections among the processes and a process's socket closes with it.
  std::map<std::string, conf::SocketConfig> reuseport_sockets{};
};

/// How load_hook_plugins treats a hook with isolate = true, whose plugin the arbiter never opens.
enum class IsolatedCheck {
  in_host,  // load it in a hook host and wait for the verdict (run, check: before the loop)
  skip,     // trust the file checks of conf::load; a load error fails each call (on the loop:
            // reload, add, which must not wait on a process)
};

/// Opens the plugin of every hook of `cfg` (cached by `loader`): one diagnostic per hook that
/// cannot be used, naming its file:line and `hooks.POINT`.
std::vector<conf::Diagnostic> load_hook_plugins(const conf::WatcherConfig& cfg, hooks::PluginLoader& loader,
                                                IsolatedCheck isolated = IsolatedCheck::skip);

struct ProcessInfo {
  int wid = 0;
  pid_t pid = 0;
  ProcessState state = ProcessState::spawning;
  std::chrono::steady_clock::time_point started;
  double started_at = 0;  // unix seconds
};

/// How a rolling restart replaces the processes.
struct RolloutPlan {
  int batch = 1;       // slots replaced at a time
  bool surge = false;  // the replacement first, the old process stopped once it is ready
  int max_retry = 5;   // further attempts for a slot whose replacement does not get ready; -1: no end
};

struct RolloutResult {
  bool ok = true;
  std::string error;  // why it stopped
  int slot = 0;       // the slot that could not be replaced (0: none in particular)
  int attempts = 0;
};

struct WatcherStats {
  std::uint64_t spawns = 0;
  std::uint64_t spawn_failures = 0;
  std::uint64_t reaps = 0;
  std::uint64_t kills = 0;  // SIGKILLs after graceful_timeout
  std::uint64_t hook_failures = 0;  // vetoes, errors and timeouts
};

class Watcher {
 public:
  /// The watcher starts stopped. `cfg` was validated by conf::load and its plugins loaded
  /// (load_hook_plugins); throws hooks::PluginError otherwise.
  Watcher(conf::WatcherConfig cfg, WatcherContext& ctx);
  /// Kills (SIGKILL to the groups) and reaps whatever still runs, blocking: only for teardown
  /// after an orderly stop failed. Publishes nothing.
  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  const std::string& name() const { return cfg_.name; }
  const conf::WatcherConfig& config() const { return cfg_; }
  WatcherState state() const { return state_; }
  /// Why the watcher failed: the first error, kept.
  const std::string& failure() const { return failure_; }
  std::vector<ProcessInfo> processes() const;
  const WatcherStats& stats() const { return stats_; }
  /// Its liveness checks, up or down.
  std::vector<CheckStatus> check_status() const;
  /// The last bytes of output of this watcher's processes, oldest first.
  std::string output_tail() const;

  /// Called to start: stopped or failed -> starting; ignored in other states.
  void start();
  /// Called to stop: stop_signal to every process group, SIGKILL after graceful_timeout.
  /// -> stopping -> stopped once every process was reaped.
  void stop();
  /// Called for incr/decr: spawns or stops processes (highest wid first) to reach `n`.
  void set_numprocesses(int n);
  /// Sends `signum` to every process group (signal command).
  void signal_all(int signum);
  /// circus's kill: stops one process (`signum`, default stop_signal, then SIGKILL after
  /// graceful_timeout); the watcher replaces it. Returns false when `pid` is not ours.
  bool kill_process(pid_t pid, std::optional<int> signum);
  /// Called when `pid` may have exited (the SIGCHLD backstop). Returns whether it is ours.
  bool reap(pid_t pid);

  /// A rolling restart of an active watcher: slot by slot (`batch` at a time), stop the old
  /// process, spawn its replacement, wait until it is ready, then the next slot. With
  /// `plan.surge`, or when the watcher uses [socket] sockets, the replacement comes first and
  /// the old process is stopped once it is ready, so capacity never drops. A replacement not
  /// ready within ready.start_timeout, or that exits, is tried again up to `max_retry` times;
  /// then the rollout stops (event rollout_failed), the old processes of the other slots keep
  /// running. Events rollout_start, rollout_progress, rollout_done. `done` runs once, on the
  /// loop, when it ended (not if the watcher is destroyed first). Not active: done(error).
  void roll(RolloutPlan plan, std::function<void(RolloutResult)> done);
  bool rolling() const { return rollout_ != nullptr; }
  /// Whether `next` differs only in what applies to the processes spawned from now on
  /// (command, environment, user, limits, timeouts, counts...), so the running watcher can
  /// take it and roll, rather than be replaced (hooks, readiness, checks, streams differ).
  bool can_reconfigure(const conf::WatcherConfig& next) const;
  /// Takes `next` for the processes spawned from now on (can_reconfigure(next) holds), and
  /// adjusts the count to its numprocesses.
  void reconfigure(const conf::WatcherConfig& next);

 private:
  struct Stream;
  struct Process;
  struct Rollout;

  struct HookArgs {
    std::int64_t pid = 0;
    int signum = 0;
    int exit_status = 0;
  };
  struct BoundHook {
    trapeze_hook_fn fn = nullptr;
    const conf::HookConfig* cfg = nullptr;
  };
  /// Runs hook `point` if the watcher has one, then `next(proceed)` on the loop: proceed is
  /// false after a veto, and after a failure unless failures of this hook are ignored.
  /// Without such a hook, next(true) at once.
  void run_hook(const std::string& point, HookArgs args, std::function<void(bool proceed)> next);
  bool has_hook(const std::string& point) const { return bound_hooks_.count(point) != 0; }
  /// Signals the process group of `pid` through before_signal / after_signal.
  void send_signal(pid_t pid, int signum);

  void begin_spawning();
  void become_active();
  void spawn_process(int wid);
  void spawn_now(int wid);
  void spawn_failed(int wid, const std::string& why);
  void after_spawned(Process& p);
  void finish_reap(Process& p);
  void ready_signal(Process& p);
  void probe_ready(Process& p);
  void scan_for_ready(Process& p, Stream& s, std::string_view bytes);
  void on_check_failed(const std::string& check, int failures, const std::string& error);
  void on_spawned(Process& p);
  void on_ready(Process& p);
  void on_status(Process& p);
  void on_stream_closed(Process& p);
  void finalize(Process& p);
  void after_unexpected_exit(Process& p);
  void stop_process(Process& p, std::optional<int> signum = std::nullopt);
  void check_started();
  void check_stopped();
  void fail(std::string reason);
  void set_state(WatcherState s);
  void schedule_spawn(int wid, policy::Duration delay);
  int wanted() const;
  bool slot_busy(int wid) const;
  void read_stream(Process& p, Stream& s);
  // The rollout in progress (roll()).
  Process* slot_process(int wid, bool replacement);
  void advance_rollout();
  void roll_slot(int wid);
  void spawn_replacement(int wid);
  void replacement_failed(int wid, const std::string& error);
  void replacement_ready(Process& p);
  bool rollout_reaped(Process& p);
  void give_up_rollout(int wid);
  void end_rollout(RolloutResult result);
  void append_tail(std::string_view bytes);

  conf::WatcherConfig cfg_;
  WatcherContext& ctx_;
  WatcherState state_ = WatcherState::stopped;
  bool stop_to_failed_ = false;  // the stop in progress ends in `failed`
  bool paused_ = false;          // flapping: waiting for retry_in
  std::string failure_;
  policy::History history_;
  WatcherStats stats_;
  std::shared_ptr<Sink> stdout_sink_, stderr_sink_;
  std::map<pid_t, std::unique_ptr<Process>> processes_;  // until their reap is published
  std::map<int, loop::Timer> pending_spawns_;            // by wid
  std::map<int, std::uint64_t> spawn_hooks_;             // wid -> token of its before_spawn in flight
  std::uint64_t next_token_ = 1;
  std::uint64_t start_token_ = 0;    // the start in progress: hooks of an older one are stale
  bool after_start_running_ = false;
  bool before_stop_running_ = false;
  int after_reaps_running_ = 0;  // after_reap hooks not done: a stop ends after them, as in circus
  std::map<std::string, BoundHook> bound_hooks_;   // by point
  std::shared_ptr<const hooks::Options> hook_view_;  // the watcher's options as text, for hooks
  int next_start_wid_ = 0;  // during a start with warmup_delay: the next wid to spawn
  loop::Timer start_timeout_, resume_;
  std::optional<std::regex> ready_regex_;  // ready.log
  std::unique_ptr<Checks> checks_;         // liveness checks: probed while active
  std::string tail_;  // ring of the last kTailBytes of output
  std::size_t tail_pos_ = 0;
  std::unique_ptr<Rollout> rollout_;
  std::uint64_t generation_ = 0;  // of the processes spawned now; a rollout starts a new one
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // for callbacks that may outlive us
};

/// The environment of a child, "NAME=value" sorted: the arbiter's own with copy_env (without
/// NOTIFY_SOCKET, which belongs to the arbiter), then the config's variables over it.
std::vector<std::string> child_environment(const conf::WatcherConfig& cfg,
                                           const std::map<std::string, std::string>& arbiter_env);

}  // namespace trapeze::watchers
