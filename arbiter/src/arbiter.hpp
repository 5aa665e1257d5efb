// The arbiter: owns the loop, the watchers and the output writer; starts watchers by priority
// group, each group once the previous one is active; stops them in reverse; reloads on SIGHUP.
//
// Threads: everything on the loop thread (the one that calls run()).
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>
#include <chrono>

#include <deque>
#include <functional>
#include <optional>

#include <zmq.hpp>

#include "bus.hpp"
#include "waker.hpp"
#include "trapeze/conf/config.hpp"
#include "trapeze/loop/loop.hpp"
#include "trapeze/watchers/notify.hpp"
#include "trapeze/watchers/output.hpp"
#include "trapeze/watchers/sockets.hpp"
#include "trapeze/watchers/watcher.hpp"

namespace trapeze::arbiter {

class Arbiter final : public watchers::WatcherHost {
 public:
  /// `events_file`: where to append every event as a JSON line (empty: nowhere).
  /// Binds the event bus and the control socket. Throws std::system_error when the loop or
  /// the signal fd cannot be made, std::runtime_error when an endpoint cannot be bound.
  Arbiter(conf::Config config, std::string events_file);
  ~Arbiter() override;

  /// Starts the autostart watchers and runs the loop until the arbiter stopped. Returns the
  /// exit code: 0 after an orderly stop.
  int run();

  void publish(const std::string& watcher, const std::string& event, nlohmann::json payload) override;
  void state_changed(const std::string& watcher) override;

 private:
  enum class Phase { starting, running, stopping };
  using Done = std::function<void()>;
  using Job = std::function<void(Done)>;

  // Control commands (commands.cpp).
  void on_request(ctl::Request req, ControlServer::Reply reply);
  void query(const ctl::Request& req, ControlServer::Reply& reply);
  void run_next_job();
  void when(std::function<bool()> settled, Done then);
  void check_waiters();
  std::vector<watchers::Watcher*> match(const ctl::Request& req, ControlServer::Reply& reply);
  void start_all(Done done);
  void stop_all(Done done);
  watchers::Watcher* cmd_add(const ctl::Request& req, ControlServer::Reply& reply);
  void cmd_set(const ctl::Request& req, ControlServer::Reply& reply, Done done);
  void cmd_signal(const ctl::Request& req, ControlServer::Reply& reply);
  nlohmann::json process_stats(const watchers::Watcher& w, const watchers::ProcessInfo& p) const;
  nlohmann::json arbiter_stats() const;
  void replace_after_stop(const std::string& name, std::unique_ptr<conf::WatcherConfig> cfg, bool start);

  // The operation queue of each watcher (operations.cpp): rolling restarts, graceful reloads,
  // numprocesses changes and reconfigurations run one at a time per watcher, in order; a
  // request equal to the last one queued (not started) joins it.
  struct Operation {
    enum class Kind { rolling_restart, reload, numprocesses, reconfigure, replace };
    Kind kind = Kind::rolling_restart;
    watchers::RolloutPlan plan;
    int count = 0;                                 // numprocesses
    bool relative = false;                         // count is added (incr, decr): never joined
    std::shared_ptr<conf::WatcherConfig> config;   // reconfigure, replace
    bool start_after = true;                       // replace: start it again
    std::chrono::system_clock::time_point requested_at, started_at, finished_at;
    int attempt = 0;  // attempts at the slot that ended it (rollouts)
    std::string state = "queued";  // queued, running, done, failed
    std::string error;
    std::vector<std::function<void(const watchers::RolloutResult&)>> waiters;
  };
  using OperationPtr = std::shared_ptr<Operation>;
  struct OperationQueue {
    std::deque<OperationPtr> queued;
    OperationPtr running;
    std::deque<OperationPtr> finished;  // the last few, newest last
  };
  void queue_operation(const std::string& watcher, OperationPtr op,
                       std::function<void(const watchers::RolloutResult&)> waiter = {});
  void run_operation(const std::string& watcher);
  void execute(const std::string& watcher, const OperationPtr& op);
  /// The watcher is neither starting nor stopping (or is gone): an operation may act on it.
  bool settled_or_gone(const std::string& watcher);
  void operation_done(const std::string& watcher, watchers::RolloutResult result);
  bool operations_idle(const std::string& watcher) const;
  nlohmann::json operations_json(const std::string& watcher) const;
  std::map<std::string, OperationQueue> operations_;

  using Group = std::vector<std::string>;
  std::vector<Group> priority_groups(bool autostart_only) const;
  void add_watcher(const conf::WatcherConfig& cfg);
  void begin_start(const std::vector<std::string>& names);
  void advance_start();
  std::string start_blocker(const std::string& name, std::size_t group);
  void tell_ready(const std::string& status);
  void stop_next_group();
  void shutdown(bool exit_after = true);
  void finish_shutdown();
  void reload();
  void on_signal();
  void reap_strays();
  void publish_topic(const std::string& topic, nlohmann::json payload);
  watchers::Watcher* find(const std::string& name);

  conf::Config config_;
  loop::Loop loop_;
  watchers::OutputWriter output_;
  hooks::PluginLoader plugins_;
  hooks::HookRunner hooks_;
  watchers::NotifyHub notify_;
  std::vector<watchers::BoundSocket> sockets_;  // [socket:NAME], bound before any watcher starts
  // circus's on_demand: while such a watcher is stopped, a connection to a socket starts it.
  std::vector<loop::FdWatch> demand_watches_;
  bool on_demand(const watchers::Watcher& w) const;
  void arm_on_demand();
  watchers::WatcherContext ctx_;
  std::map<std::string, std::unique_ptr<watchers::Watcher>> watchers_;
  Phase phase_ = Phase::starting;
  std::vector<Group> groups_;  // of the stop in progress
  std::size_t group_ = 0;
  // The start in progress (begin_start): its watchers by priority group, those not started
  // yet, the last group allowed to start, the blocked ones already reported.
  std::vector<Group> start_groups_;
  std::set<std::string> to_start_;
  std::size_t released_ = 0;
  bool warmup_done_ = false;
  std::set<std::string> blocked_reported_;
  bool ready_told_ = false;
  loop::Timer group_delay_;
  bool exit_after_stop_ = true;  // a stop of everything ends the arbiter (signals, quit)
  // Reload, set, rm: what to do with a watcher once it stopped (replace its config, or remove
  // it when there is none).
  struct AfterStop {
    std::unique_ptr<conf::WatcherConfig> config;
    bool start = true;
  };
  std::map<std::string, AfterStop> after_stop_;
  zmq::context_t zmq_{1};
  std::unique_ptr<ZapHandler> zap_;  // with curve_clients
  std::unique_ptr<EventBus> bus_;
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<Waker> waker_;                  // with a [juju] section
  std::map<std::string, std::uint64_t> notices_;  // notice key -> its id (repeats keep it)
  void wake_charm(const std::string& watcher, const std::string& event, const nlohmann::json& payload);
  std::deque<Job> jobs_;  // control commands that change something, one at a time
  bool job_running_ = false;
  std::vector<std::pair<std::function<bool()>, Done>> waiters_;
  loop::UniqueFd signal_fd_;
  loop::FdWatch signal_watch_;
  std::FILE* events_ = nullptr;
  std::uint64_t seq_ = 0;
  int exit_code_ = 0;
};

}  // namespace trapeze::arbiter
