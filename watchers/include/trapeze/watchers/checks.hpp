// Liveness checks of a running watcher, Pebble's: each check is probed every `period`;
// `threshold` failures in a row make it down (on_failed), the next success up again
// (on_recovered). Probes are those of readiness (probe.hpp): they never block the loop.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "trapeze/conf/config.hpp"
#include "trapeze/loop/loop.hpp"
#include "trapeze/watchers/probe.hpp"

namespace trapeze::watchers {

struct CheckStatus {
  std::string name;
  conf::ReadyKind kind = conf::ReadyKind::tcp;
  bool running = false;  // probed now (the watcher is active)
  bool down = false;
  int failures = 0;      // in a row
  int threshold = 3;
  std::uint64_t probes = 0;
  std::string last_error;
};

class Checks {
 public:
  struct Callbacks {
    std::function<void(const std::string& check, int failures, const std::string& error)> on_failed;
    std::function<void(const std::string& check)> on_recovered;
  };

  /// `env` and `working_dir` are for exec checks.
  Checks(loop::Loop& loop, std::vector<conf::CheckConfig> checks, std::vector<std::string> env,
         std::string working_dir, Callbacks callbacks);

  bool empty() const { return checks_.empty(); }
  /// Starts probing (the first probe at once); stop() ends every probe in flight. A check
  /// keeps its down state and count across a stop and start.
  void start();
  void stop();
  std::vector<CheckStatus> status() const;

 private:
  struct Check {
    conf::CheckConfig cfg;
    CheckStatus st;
    std::unique_ptr<Probe> probe;
    loop::Timer timer;
  };
  void probe(Check& c);
  void on_result(Check& c, std::optional<std::string> error);

  loop::Loop& loop_;
  std::vector<std::unique_ptr<Check>> checks_;
  std::vector<std::string> env_;
  std::string working_dir_;
  Callbacks callbacks_;
  bool running_ = false;
};

}  // namespace trapeze::watchers
