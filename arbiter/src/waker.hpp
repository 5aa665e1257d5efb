// The charm waker: dispatches Juju charm events (hooks) when a workload becomes ready, fails
// or recovers a check, exits, or sends a notice. Requests go through the durable DispatchQueue
// (juju/queue.hpp); exactly one dispatch runs at a time, as a supervised child; a failed one
// is retried with backoff up to max_retry.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "trapeze/conf/config.hpp"
#include "trapeze/juju/queue.hpp"
#include "trapeze/loop/fd.hpp"
#include "trapeze/loop/loop.hpp"

namespace trapeze::arbiter {

class Waker {
 public:
  using Publish = std::function<void(const std::string& topic, nlohmann::json payload)>;

  /// Reads the queue a previous arbiter left (and dispatches it, once start() is called).
  /// Throws juju::QueueError.
  Waker(loop::Loop& loop, const conf::JujuConfig& cfg, std::string queue_file,
        std::map<std::string, std::string> arbiter_env, Publish publish);
  ~Waker();

  /// Begins dispatching (what is queued, and what comes).
  void start();
  /// Queues `event` for `workload`, on disk before it returns. Returns false when it equals
  /// the last queued request (dropped).
  bool request(const std::string& event, const std::string& workload, std::map<std::string, std::string> env);
  /// Stops: a running dispatch gets SIGTERM and stays queued (it runs again next time).
  void stop();

  /// The queue, for `trapeze dispatches`.
  nlohmann::json entries() const;
  bool running() const { return running_; }

 private:
  void run_next();
  void launch();
  void on_exit();
  void on_stderr();

  loop::Loop& loop_;
  conf::JujuConfig cfg_;
  std::map<std::string, std::string> environ_;
  Publish publish_;
  juju::DispatchQueue queue_;
  bool started_ = false, stopping_ = false;
  bool running_ = false;  // the head is being dispatched (its process runs, or its failure is being handled)
  pid_t pid_ = -1;
  loop::UniqueFd pidfd_, stderr_;
  loop::FdWatch exit_watch_, stderr_watch_;
  loop::Timer retry_;
  std::string stderr_tail_;
  std::chrono::steady_clock::time_point began_;
};

}  // namespace trapeze::arbiter
