// Stands in for the arbiter's loop in hook runner tests: results are posted here and run by
// the test thread, which waits for a condition with a deadline.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <vector>

#include "trapeze/hooks/runner.hpp"

namespace trapeze::testing {

class Inbox {
 public:
  hooks::HookRunner::Post post() {
    return [this](std::function<void()> fn) {
      std::lock_guard lock(mu_);
      posted_.push_back(std::move(fn));
      cv_.notify_all();
    };
  }

  /// Runs posted functions until `pred` holds; false after `timeout`.
  bool wait_until(const std::function<bool()>& pred,
                  std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    using Clock = std::chrono::steady_clock;
    auto deadline = Clock::now() + timeout;
    for (;;) {
      std::vector<std::function<void()>> fns;
      {
        std::unique_lock lock(mu_);
        cv_.wait_until(lock, std::min(deadline, Clock::now() + std::chrono::milliseconds(20)),
                       [&] { return !posted_.empty(); });
        fns.swap(posted_);
      }
      for (auto& fn : fns) fn();
      if (pred()) return true;
      if (Clock::now() > deadline) return false;
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::function<void()>> posted_;
};

}  // namespace trapeze::testing
