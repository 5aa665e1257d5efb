// The hook runner with real plugin functions: outcomes, what a hook sees, timeouts that
// abandon a stuck thread without holding up other hooks, and the bound on abandoned threads.
#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <algorithm>
#include <vector>

#include "trapeze/hooks/plugin.hpp"
#include "trapeze/hooks/runner.hpp"
#include "inbox.hpp"

using namespace std::chrono_literals;
using trapeze::hooks::HookOutcome;
using trapeze::hooks::HookRequest;
using trapeze::hooks::HookResult;
using trapeze::hooks::HookRunner;
using trapeze::hooks::PluginLoader;

namespace {

using trapeze::testing::Inbox;
using trapeze::testing::run_one;

PluginLoader& loader() {
  static PluginLoader l;
  return l;
}

HookRequest request(const char* library, const char* symbol, trapeze::hooks::Options options = {},
                    std::chrono::milliseconds timeout = 10s) {
  HookRequest r;
  r.fn = loader().load(library, symbol);
  r.hook_name = "before_start";
  r.watcher_name = "web";
  r.hook_options = std::move(options);
  r.timeout = timeout;
  return r;
}

}  // namespace

TEST_CASE("runner: continue, veto, error and a bad return value", "[unit][hooks]") {
  Inbox inbox;
  HookRunner runner(inbox.post(), 2);
  auto r = run_one(runner, inbox, request(TEST_PLUGIN_BEHAVIOURS, "go_on"));
  CHECK(r.outcome == HookOutcome::proceed);
  CHECK(r.error.empty());
  CHECK(r.duration_ms >= 0);
  r = run_one(runner, inbox, request(TEST_PLUGIN_BEHAVIOURS, "refuse"));
  CHECK(r.outcome == HookOutcome::veto);
  CHECK(r.error == "vetoed");
  r = run_one(runner, inbox, request(TEST_PLUGIN_BEHAVIOURS, "fail"));
  CHECK(r.outcome == HookOutcome::error);
  CHECK(r.error == "database is down");
  r = run_one(runner, inbox, request(TEST_PLUGIN_BEHAVIOURS, "fail", {{"message", "no quorum"}}));
  CHECK(r.error == "no quorum");
  r = run_one(runner, inbox, request(TEST_PLUGIN_BEHAVIOURS, "bad_result"));
  CHECK(r.outcome == HookOutcome::error);
  CHECK(r.error == "the hook returned 7, which is not a trapeze_hook_result");
  CHECK(runner.stats().calls == 5);
  CHECK(runner.pending() == 0);
}

TEST_CASE("runner: a hook sees its call, its options and the watcher's", "[unit][hooks]") {
  Inbox inbox;
  HookRunner runner(inbox.post(), 1);
  auto req = request(TEST_PLUGIN_BEHAVIOURS, "echo", {{"port", "6379"}});
  req.hook_name = "after_reap";
  req.pid = 4242;
  req.signum = 0;
  req.exit_status = -9;
  req.watcher_options = std::make_shared<trapeze::hooks::Options>(
      trapeze::hooks::Options{{"numprocesses", "3"}, {"cmd", "redis-server"}});
  auto r = run_one(runner, inbox, req);
  CHECK(r.error ==
        "hook=after_reap watcher=web pid=4242 signum=0 exit=-9 numprocesses=3 cmd=redis-server port=6379 nope=(null)");
  // Without watcher options, every lookup is NULL.
  r = run_one(runner, inbox, request(TEST_PLUGIN_BEHAVIOURS, "echo"));
  CHECK(r.error == "hook=before_start watcher=web pid=0 signum=0 exit=0 numprocesses=(null) cmd=(null) "
                   "port=(null) nope=(null)");
}

TEST_CASE("runner: a C++ exception becomes the error message", "[unit][hooks]") {
  Inbox inbox;
  HookRunner runner(inbox.post(), 1);
  auto r = run_one(runner, inbox, request(TEST_PLUGIN_CPP, "throws", {{"port", "6379"}}));
  CHECK(r.outcome == HookOutcome::error);
  CHECK(r.error == "connection refused on port 6379");
  r = run_one(runner, inbox, request(TEST_PLUGIN_CPP, "throws"));
  CHECK(r.error == "unknown C++ exception");
  r = run_one(runner, inbox, request(TEST_PLUGIN_CPP, "proceeds"));
  CHECK(r.outcome == HookOutcome::proceed);
}

TEST_CASE("runner: a timeout is reported at once and cancels the hook", "[unit][hooks]") {
  Inbox inbox;
  HookRunner runner(inbox.post(), 1);
  auto start = std::chrono::steady_clock::now();
  auto r = run_one(runner, inbox, request(TEST_PLUGIN_BEHAVIOURS, "sleepy", {{"seconds", "30"}}, 200ms));
  CHECK(r.outcome == HookOutcome::timed_out);
  CHECK(r.error == "timed out after 200ms");
  CHECK(r.duration_ms >= 200);
  CHECK(std::chrono::steady_clock::now() - start < 10s);
  // The hook saw its flag and returned: its thread is back in the pool.
  REQUIRE(inbox.wait_until([&] { return runner.stats().abandoned == 0; }));
  CHECK(runner.stats().timeouts == 1);
  CHECK(run_one(runner, inbox, request(TEST_PLUGIN_BEHAVIOURS, "go_on")).outcome == HookOutcome::proceed);
  CHECK(runner.stats().threads == 1);
}

TEST_CASE("runner: a stuck hook does not hold up the others", "[unit][hooks]") {
  Inbox inbox;
  HookRunner runner(inbox.post(), 2, 4);
  std::vector<HookResult> stuck;
  for (int i = 0; i < 2; ++i)
    runner.run(request(TEST_PLUGIN_BEHAVIOURS, "stubborn", {{"seconds", "3"}}, 100ms),
               [&](HookResult r) { stuck.push_back(r); });
  REQUIRE(inbox.wait_until([&] { return stuck.size() == 2; }));
  CHECK(stuck[0].outcome == HookOutcome::timed_out);
  CHECK(stuck[1].outcome == HookOutcome::timed_out);
  // Both pool threads are stuck in the plugin; two others took their places.
  auto s = runner.stats();
  CHECK(s.abandoned == 2);
  CHECK(s.threads == 4);
  CHECK(run_one(runner, inbox, request(TEST_PLUGIN_BEHAVIOURS, "go_on")).outcome == HookOutcome::proceed);
  CHECK(runner.stats().abandoned == 2);  // answered while the stuck ones still sleep
  // When the stuck hooks return, their threads go: the pool is back to two.
  REQUIRE(inbox.wait_until([&] { return runner.stats().abandoned == 0 && runner.stats().threads == 2; }, 20s));
  CHECK(runner.stats().calls == 3);  // a late return is not a second result
}

TEST_CASE("runner: abandoned threads are bounded; past the bound, calls wait and time out", "[unit][hooks]") {
  Inbox inbox;
  HookRunner runner(inbox.post(), 1, 1);
  std::vector<HookResult> results;
  auto collect = [&](HookResult r) { results.push_back(r); };
  runner.run(request(TEST_PLUGIN_BEHAVIOURS, "stubborn", {{"seconds", "4"}}, 100ms), collect);
  REQUIRE(inbox.wait_until([&] { return results.size() == 1; }));
  CHECK(runner.stats().threads == 2);  // one replacement: the bound allows one abandoned
  runner.run(request(TEST_PLUGIN_BEHAVIOURS, "stubborn", {{"seconds", "4"}}, 100ms), collect);
  REQUIRE(inbox.wait_until([&] { return results.size() == 2; }));
  CHECK(runner.stats().abandoned == 2);
  CHECK(runner.stats().threads == 2);  // no replacement past the bound
  auto r = run_one(runner, inbox, request(TEST_PLUGIN_BEHAVIOURS, "go_on", {}, 300ms));
  CHECK(r.outcome == HookOutcome::timed_out);
  CHECK(r.error == "timed out after 300ms (waiting for a hook thread)");
  // Once a stuck thread returns it serves again.
  REQUIRE(inbox.wait_until([&] { return runner.stats().abandoned == 0; }, 20s));
  CHECK(run_one(runner, inbox, request(TEST_PLUGIN_BEHAVIOURS, "go_on")).outcome == HookOutcome::proceed);
  CHECK(runner.stats().threads == 1);
}

TEST_CASE("runner: many calls at once, each result exactly once", "[unit][hooks]") {
  Inbox inbox;
  HookRunner runner(inbox.post(), 4);
  std::vector<int> seen(300, 0);
  for (int i = 0; i < 300; ++i)
    runner.run(request(TEST_PLUGIN_BEHAVIOURS, i % 3 ? "go_on" : "refuse"), [&, i](HookResult r) {
      ++seen[i];
      CHECK(r.outcome == (i % 3 ? HookOutcome::proceed : HookOutcome::veto));
    });
  REQUIRE(inbox.wait_until([&] { return runner.pending() == 0 && runner.stats().calls == 300; }));
  inbox.wait_until([] { return false; }, 50ms);  // anything late would show here
  CHECK(std::count(seen.begin(), seen.end(), 1) == 300);
}

TEST_CASE("runner: timeouts read as durations", "[unit][hooks]") {
  using trapeze::hooks::timeout_text;
  CHECK(timeout_text(30s) == "30s");
  CHECK(timeout_text(250ms) == "250ms");
  CHECK(timeout_text(1500ms) == "1.5s");
}
