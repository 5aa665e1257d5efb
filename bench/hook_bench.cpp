// What isolate = true costs a hook call: N calls of a hook that does nothing, one at a time,
// in the arbiter's process and in a hook host, through the real HookRunner. Each call's time
// is its duration_ms, from submission to the result (what hook_success reports).
//
//   hook_bench TRAPEZE_BINARY PLUGIN.so [CALLS]      prints one JSON object
#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "trapeze/hooks/plugin.hpp"
#include "trapeze/hooks/runner.hpp"

namespace {

// Stands in for the loop: results are posted here and run by main's thread.
class Posted {
 public:
  trapeze::hooks::HookRunner::Post post() {
    return [this](std::function<void()> fn) {
      std::lock_guard lock(mu_);
      fns_.push_back(std::move(fn));
      cv_.notify_one();
    };
  }
  void run_one() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !fns_.empty(); });
    auto fn = std::move(fns_.front());
    fns_.pop_front();
    lock.unlock();
    fn();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> fns_;
};

double median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  return xs[xs.size() / 2];
}
double p99(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  return xs[std::min(xs.size() - 1, xs.size() * 99 / 100)];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: hook_bench TRAPEZE_BINARY PLUGIN.so [CALLS]\n");
    return 2;
  }
  int calls = argc > 3 ? std::atoi(argv[3]) : 200;
  Posted posted;
  trapeze::hooks::HookRunner runner(posted.post(), 1);
  runner.set_host_binary(argv[1]);
  trapeze::hooks::PluginLoader loader;
  auto measure = [&](bool isolate) {
    std::vector<double> ms;
    for (int i = 0; i < calls; ++i) {
      trapeze::hooks::HookRequest req;
      req.isolate = isolate;
      req.library = argv[2];
      req.symbol = "nothing";
      if (!isolate) req.fn = loader.load(argv[2], "nothing");
      req.hook_name = "before_start";
      req.watcher_name = "bench";
      bool ok = false;
      runner.run(req, [&](trapeze::hooks::HookResult r) {
        ok = r.outcome == trapeze::hooks::HookOutcome::proceed;
        ms.push_back(r.duration_ms);
      });
      posted.run_one();
      if (!ok) {
        std::fprintf(stderr, "hook_bench: a call failed\n");
        std::exit(1);
      }
    }
    return ms;
  };
  measure(false);  // warm up: threads started, plugin loaded
  auto in_process = measure(false);
  auto isolated = measure(true);
  std::printf(
      "{\"calls\": %d, \"in_process_p50_ms\": %.4f, \"in_process_p99_ms\": %.4f, "
      "\"isolated_p50_ms\": %.3f, \"isolated_p99_ms\": %.3f}\n",
      calls, median(in_process), p99(in_process), median(isolated), p99(isolated));
  return 0;
}
