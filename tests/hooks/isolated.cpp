// Isolated hooks through the runner, with real plugins in real hook hosts (the trapeze binary
// as `trapeze hook-host`): crashes become errors, timeouts kill the host, nothing is left
// behind, and the host is clean and cannot be reaped by anyone but its hook thread.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "inbox.hpp"
#include "trapeze/hooks/host.hpp"
#include "trapeze/hooks/plugin.hpp"
#include "trapeze/hooks/runner.hpp"

using namespace std::chrono_literals;
using trapeze::hooks::HookOutcome;
using trapeze::hooks::HookRequest;
using trapeze::hooks::HookResult;
using trapeze::hooks::HookRunner;
using trapeze::testing::Inbox;
using trapeze::testing::run_one;

namespace {

HookRequest isolated(const char* library, const char* symbol, trapeze::hooks::Options options = {},
                     std::chrono::milliseconds timeout = 10s) {
  HookRequest r;
  r.isolate = true;
  r.library = library;
  r.symbol = symbol;
  r.hook_name = "before_start";
  r.watcher_name = "web";
  r.hook_options = std::move(options);
  r.timeout = timeout;
  return r;
}

// Our children as /proc shows them: pid and state letter.
std::vector<std::pair<int, char>> children() {
  std::vector<std::pair<int, char>> out;
  DIR* d = opendir("/proc");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    int pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream f("/proc/" + std::string(e->d_name) + "/stat");
    std::string line;
    if (!std::getline(f, line)) continue;
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state = '?';
    int ppid = 0;
    rest >> state >> ppid;
    if (ppid == ::getpid()) out.emplace_back(pid, state);
  }
  closedir(d);
  return out;
}

}  // namespace

TEST_CASE("isolated: a crash, an abort and an exit fail the call, not the caller", "[unit][hooks]") {
  Inbox inbox;
  HookRunner runner(inbox.post(), 2);
  runner.set_host_binary(TRAPEZE_BINARY);
  auto r = run_one(runner, inbox, isolated(TEST_PLUGIN_CRASHY, "segfault"));
  CHECK(r.outcome == HookOutcome::error);
  CHECK(r.error == "crashed: SIGSEGV");
  CHECK(run_one(runner, inbox, isolated(TEST_PLUGIN_CRASHY, "aborts")).error == "crashed: SIGABRT");
  CHECK(run_one(runner, inbox, isolated(TEST_PLUGIN_CRASHY, "exits")).error == "crashed: exit status 3");
  CHECK(run_one(runner, inbox, isolated(TEST_PLUGIN_CRASHY, "exits", {{"status", "0"}})).error ==
        "crashed: exit status 0");
  CHECK(children().empty());
}

TEST_CASE("isolated: continue, veto, error, a bad return value and a missing plugin", "[unit][hooks]") {
  Inbox inbox;
  HookRunner runner(inbox.post(), 2);
  runner.set_host_binary(TRAPEZE_BINARY);
  auto r = run_one(runner, inbox, isolated(TEST_PLUGIN_BEHAVIOURS, "go_on"));
  CHECK(r.outcome == HookOutcome::proceed);
  CHECK(r.error.empty());
  CHECK(r.duration_ms > 0);
  r = run_one(runner, inbox, isolated(TEST_PLUGIN_BEHAVIOURS, "refuse"));
  CHECK(r.outcome == HookOutcome::veto);
  CHECK(r.error == "vetoed");
  r = run_one(runner, inbox, isolated(TEST_PLUGIN_BEHAVIOURS, "fail", {{"message", "redis is not there"}}));
  CHECK(r.outcome == HookOutcome::error);
  CHECK(r.error == "redis is not there");
  r = run_one(runner, inbox, isolated(TEST_PLUGIN_BEHAVIOURS, "bad_result"));
  CHECK(r.error == "the hook returned 7, which is not a trapeze_hook_result");
  r = run_one(runner, inbox, isolated(TEST_PLUGIN_BEHAVIOURS, "nope"));
  CHECK(r.outcome == HookOutcome::error);
  CHECK(r.error == std::string("plugin '") + TEST_PLUGIN_BEHAVIOURS + "' has no function 'nope'");
  r = run_one(runner, inbox, isolated(TEST_PLUGIN_FUTURE, "go_on"));
  CHECK(r.error.find("it was built for hook ABI version") != std::string::npos);
}

TEST_CASE("isolated: a hook sees the same call as in the arbiter", "[unit][hooks]") {
  Inbox inbox;
  HookRunner runner(inbox.post(), 1);
  runner.set_host_binary(TRAPEZE_BINARY);
  auto req = isolated(TEST_PLUGIN_BEHAVIOURS, "echo", {{"port", "6379"}});
  req.hook_name = "after_reap";
  req.pid = 4242;
  req.exit_status = -9;
  req.watcher_options = std::make_shared<trapeze::hooks::Options>(
      trapeze::hooks::Options{{"numprocesses", "3"}, {"cmd", "redis-server"}});
  auto in_host = run_one(runner, inbox, req);
  trapeze::hooks::PluginLoader loader;
  req.isolate = false;
  req.fn = loader.load(TEST_PLUGIN_BEHAVIOURS, "echo");
  auto in_process = run_one(runner, inbox, req);
  CHECK(in_host.error ==
        "hook=after_reap watcher=web pid=4242 signum=0 exit=-9 numprocesses=3 cmd=redis-server port=6379 "
        "nope=(null)");
  CHECK(in_host.error == in_process.error);
}

TEST_CASE("isolated: the host is another process, clean: fds, signals, environment", "[unit][hooks]") {
  ::setenv("NOTIFY_SOCKET", "/run/not-for-hooks", 1);
  Inbox inbox;
  HookRunner runner(inbox.post(), 1);
  runner.set_host_binary(TRAPEZE_BINARY);
  // The runner's threads block every signal, and the arbiter ignores some: none of it reaches.
  auto r = run_one(runner, inbox, isolated(TEST_PLUGIN_CRASHY, "inspect"));
  ::unsetenv("NOTIFY_SOCKET");
  INFO(r.error);
  CHECK(r.error.find(fmt::format("ppid={} ", ::getpid())) != std::string::npos);
  CHECK(r.error.rfind(fmt::format("pid={} ", ::getpid()), 0) == std::string::npos);
  CHECK(r.error.find(" fds=0,1,2,3 ") != std::string::npos);
  CHECK(r.error.find(" sigblk=0000000000000000 ") != std::string::npos);
  CHECK(r.error.find(" sigign=0000000000000000 ") != std::string::npos);
  CHECK(r.error.find(" notify=unset") != std::string::npos);
}

TEST_CASE("isolated: a hung host is killed at its timeout; its thread is not abandoned", "[unit][hooks]") {
  Inbox inbox;
  HookRunner runner(inbox.post(), 1);
  runner.set_host_binary(TRAPEZE_BINARY);
  auto r = run_one(runner, inbox, isolated(TEST_PLUGIN_CRASHY, "hangs", {}, 300ms));
  CHECK(r.outcome == HookOutcome::timed_out);
  CHECK(r.error == "timed out after 300ms");
  CHECK(r.duration_ms >= 300);
  auto s = runner.stats();
  CHECK(s.timeouts == 1);
  CHECK(s.abandoned == 0);
  CHECK(s.threads == 1);
  CHECK(children().empty());  // killed and reaped: no zombie
  // The one thread is free again at once.
  CHECK(run_one(runner, inbox, isolated(TEST_PLUGIN_BEHAVIOURS, "go_on")).outcome == HookOutcome::proceed);
}

TEST_CASE("isolated: cancel_all reaches the hook in its host", "[unit][hooks]") {
  Inbox inbox;
  HookRunner runner(inbox.post(), 1);
  runner.set_host_binary(TRAPEZE_BINARY);
  std::optional<HookResult> got;
  runner.run(isolated(TEST_PLUGIN_CRASHY, "until_cancelled", {{"seconds", "20"}}, 30s),
             [&](HookResult r) { got = std::move(r); });
  REQUIRE(inbox.wait_until([&] { return runner.stats().busy == 1 && !children().empty(); }));
  runner.cancel_all();
  REQUIRE(inbox.wait_until([&] { return got.has_value(); }));
  CHECK(got->error == "cancelled");
}

TEST_CASE("isolated: a reaper of stray children hands hosts' exits to their calls", "[unit][hooks]") {
  // What Arbiter::reap_strays does on SIGCHLD, in a tight loop while hosts come and go: it
  // reaps any exited child, asking claim_host_child first, so each call still learns how its
  // host died. Without the claim, the calls would find their hosts gone (ECHILD).
  Inbox inbox;
  HookRunner runner(inbox.post(), 3);
  runner.set_host_binary(TRAPEZE_BINARY);
  std::atomic<bool> done{false};
  std::atomic<int> stolen{0}, claimed{0};
  std::thread reaper([&] {
    while (!done) {
      siginfo_t info{};
      if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid != 0) {
        if (trapeze::hooks::claim_host_child(info.si_pid))
          ++claimed;
        else if (::waitid(P_PID, static_cast<id_t>(info.si_pid), &info, WEXITED | WNOHANG) == 0)
          ++stolen;
      }
      std::this_thread::yield();
    }
  });
  std::vector<HookResult> results;
  for (int i = 0; i < 6; ++i)
    runner.run(isolated(TEST_PLUGIN_CRASHY, "segfault"),
               [&](HookResult r) { results.push_back(std::move(r)); });
  bool all = inbox.wait_until([&] { return results.size() == 6; }, 60s);
  done = true;
  reaper.join();
  REQUIRE(all);
  for (auto& r : results) CHECK(r.error == "crashed: SIGSEGV");
  CHECK(stolen == 0);
  INFO("hosts reaped by the reaper for their calls: " << claimed);
  CHECK(children().empty());
}

TEST_CASE("isolated: check_in_host loads a plugin without calling it", "[unit][hooks]") {
  using trapeze::hooks::check_in_host;
  CHECK_FALSE(check_in_host(TEST_PLUGIN_CRASHY, "segfault", TRAPEZE_BINARY).has_value());
  auto why = check_in_host(TEST_PLUGIN_BEHAVIOURS, "nope", TRAPEZE_BINARY);
  REQUIRE(why.has_value());
  CHECK(*why == std::string("plugin '") + TEST_PLUGIN_BEHAVIOURS + "' has no function 'nope'");
  why = check_in_host("/nonexistent/plugin.so", "f", TRAPEZE_BINARY);
  REQUIRE(why.has_value());
  CHECK(why->rfind("cannot load plugin '/nonexistent/plugin.so': ", 0) == 0);
  why = check_in_host(TEST_PLUGIN_BEHAVIOURS, "go_on", "/nonexistent/trapeze");
  REQUIRE(why.has_value());
  CHECK(*why == "cannot load plugin '" + std::string(TEST_PLUGIN_BEHAVIOURS) +
                    "' in a hook host: crashed: exit status 127");
  CHECK(children().empty());
}

TEST_CASE("isolated: signal names", "[unit][hooks]") {
  using trapeze::hooks::signal_name;
  CHECK(signal_name(SIGSEGV) == "SIGSEGV");
  CHECK(signal_name(SIGKILL) == "SIGKILL");
  CHECK(signal_name(SIGRTMIN) == "SIGRTMIN");
  CHECK(signal_name(SIGRTMIN + 2) == "SIGRTMIN+2");
  CHECK(signal_name(99) == "signal 99");
}
