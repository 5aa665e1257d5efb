// Stands in for the arbiter's loop in hook runner tests: results are posted here and run by
// the test thread, which waits for a condition with a deadline.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
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

/// Runs one request on `runner` and waits for its result (the test fails after 30 s).
inline hooks::HookResult run_one(hooks::HookRunner& runner, Inbox& inbox, hooks::HookRequest req) {
  std::optional<hooks::HookResult> got;
  runner.run(std::move(req), [&](hooks::HookResult r) { got = std::move(r); });
  REQUIRE(inbox.wait_until([&] { return got.has_value(); }, std::chrono::seconds(30)));
  return *got;
}

}  // namespace trapeze::testing
