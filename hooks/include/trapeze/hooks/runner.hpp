// The hook runner: calls plugin hooks on a pool of hook threads, never on the loop, each with
// a timeout, and hands every result back through `post` (to the loop thread).
//
// A hook that outlives its timeout is reported timed out at once, its cancellation flag is
// raised, and its thread is abandoned: a new thread takes its place in the pool, up to
// `max_abandoned` abandoned threads at a time; past that, calls wait for a thread (and time
// out waiting). An abandoned thread that returns rejoins the pool, or ends if the pool is full.
//
// An isolated call (req.isolate) runs in a hook-host process started by its hook thread; at
// its timeout the host is SIGKILLed and reaped, so its thread comes back at once instead of
// being abandoned, and the plugin's code stops running (host.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "trapeze/hook.h"

namespace trapeze::hooks {

using Options = std::map<std::string, std::string>;

struct HookRequest {
  trapeze_hook_fn fn = nullptr;  // the function, loaded in this process (isolate = false)
  bool isolate = false;          // run `symbol` of `library` in a hook host instead (host.hpp)
  std::string library, symbol;
  std::string hook_name;     // "before_start", ...
  std::string watcher_name;
  std::int64_t pid = 0;
  int signum = 0;
  int exit_status = 0;
  std::shared_ptr<const Options> watcher_options;  // shared by the calls of one watcher
  Options hook_options;
  std::chrono::milliseconds timeout{30000};
};

enum class HookOutcome { proceed, veto, error, timed_out };

struct HookResult {
  HookOutcome outcome = HookOutcome::proceed;
  std::string error;         // error: the plugin's message; timed_out: "timed out after 30s"
  double duration_ms = 0;    // from the call's submission to its result
};

struct RunnerStats {
  std::uint64_t calls = 0;      // finished, by any outcome
  std::uint64_t timeouts = 0;
  unsigned threads = 0;         // pool threads alive, abandoned ones included
  unsigned busy = 0;            // running a hook now
  unsigned abandoned = 0;       // stuck in a hook that timed out
  unsigned queued = 0;          // waiting for a thread
};

class HookRunner {
 public:
  using Post = std::function<void(std::function<void()>)>;

  /// `post` runs a function on the caller's thread (the loop's post); it must be thread-safe.
  HookRunner(Post post, unsigned threads = 4, unsigned max_abandoned = 16);
  /// Raises every cancellation flag, joins the pool; abandoned threads are left to finish.
  /// Results not yet delivered are dropped.
  ~HookRunner();
  HookRunner(const HookRunner&) = delete;
  HookRunner& operator=(const HookRunner&) = delete;

  /// Calls `req.fn`; `done` runs exactly once, through `post`. Thread-safe.
  void run(HookRequest req, std::function<void(HookResult)> done);

  /// The binary started as `BINARY hook-host` for isolated calls (default: this one, through
  /// /proc/self/exe). Call before the first run().
  void set_host_binary(std::string binary);

  /// Calls submitted whose `done` has not run yet.
  unsigned pending() const;
  RunnerStats stats() const;

  /// Raises the cancellation flag of every call running or waiting (shutdown).
  void cancel_all();

  struct Shared;

 private:
  std::shared_ptr<Shared> shared_;  // outlives us while abandoned threads run
};

/// "30s", "1.5s", "250ms": how a timeout reads in an error.
std::string timeout_text(std::chrono::milliseconds timeout);

}  // namespace trapeze::hooks
