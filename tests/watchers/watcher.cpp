// A Watcher on a real loop with real children, driven directly (no arbiter): incr/decr at
// run time, and the events it hands its host.
#include <catch2/catch.hpp>

#include <signal.h>

#include "trapeze/watchers/watcher.hpp"

using namespace trapeze;
using namespace std::chrono_literals;

namespace {

struct Host : watchers::WatcherHost {
  std::vector<std::pair<std::string, nlohmann::json>> events;
  std::function<void()> on_change;
  void publish(const std::string&, const std::string& event, nlohmann::json payload) override {
    events.emplace_back(event, std::move(payload));
  }
  void state_changed(const std::string&) override {
    if (on_change) on_change();
  }
  int count(const std::string& event) const {
    return static_cast<int>(std::count_if(events.begin(), events.end(), [&](auto& e) { return e.first == event; }));
  }
};

// Runs the loop until `done` holds (checked after every state change and event), or fails
// after 10 s.
void run_until(loop::Loop& loop, Host& host, const std::function<bool()>& done) {
  loop::Timer guard = loop.after(10s, [&] { loop.stop(); });
  host.on_change = [&] {
    if (done()) loop.stop();
  };
  // Events do not always come with a state change: check them each iteration too.
  std::function<void()> poll;
  loop::Timer tick;
  poll = [&] {
    if (done()) loop.stop();
    else tick = loop.after(5ms, poll);
  };
  tick = loop.after(0ms, poll);
  loop.run();
  REQUIRE(done());
}

conf::WatcherConfig sleeper(int n) {
  conf::WatcherConfig cfg;
  cfg.name = "w";
  cfg.cmd = "/bin/sleep";
  cfg.args = "300";
  cfg.numprocesses = n;
  cfg.graceful_timeout = 5s;
  return cfg;
}

}  // namespace

TEST_CASE("incr and decr at run time spawn and stop the highest wids", "[unit][watcher]") {
  loop::Loop loop;
  Host host;
  watchers::OutputWriter output([&](std::function<void()> fn) { loop.post(std::move(fn)); }, [](std::string) {});
  watchers::WatcherContext ctx{&loop, &output, &host, {}, {}, std::nullopt};
  watchers::Watcher w(sleeper(2), ctx);
  w.start();
  run_until(loop, host, [&] { return w.state() == watchers::WatcherState::active; });
  CHECK(w.processes().size() == 2);

  w.set_numprocesses(4);
  run_until(loop, host, [&] { return w.processes().size() == 4; });
  std::vector<int> wids;
  for (auto& p : w.processes()) wids.push_back(p.wid);
  std::sort(wids.begin(), wids.end());
  CHECK(wids == std::vector<int>{1, 2, 3, 4});

  w.set_numprocesses(1);
  run_until(loop, host, [&] { return host.count("reap") == 3; });
  REQUIRE(w.processes().size() == 1);
  CHECK(w.processes()[0].wid == 1);
  CHECK(w.state() == watchers::WatcherState::active);

  w.stop();
  run_until(loop, host, [&] { return w.state() == watchers::WatcherState::stopped; });
  CHECK(host.count("spawn") == 4);
  CHECK(host.count("reap") == 4);
  CHECK(host.events.back().first == "stop");
}

TEST_CASE("a watcher with numprocesses 0 is active at once and spawns nothing", "[unit][watcher]") {
  loop::Loop loop;
  Host host;
  watchers::OutputWriter output([&](std::function<void()> fn) { loop.post(std::move(fn)); }, [](std::string) {});
  watchers::WatcherContext ctx{&loop, &output, &host, {}, {}, std::nullopt};
  watchers::Watcher w(sleeper(0), ctx);
  w.start();
  CHECK(w.state() == watchers::WatcherState::active);
  CHECK(host.count("spawn") == 0);
  w.stop();
  CHECK(w.state() == watchers::WatcherState::stopped);
}

TEST_CASE("ExitStatus says how a process ended", "[unit][watcher]") {
  CHECK(watchers::ExitStatus::exited(0).to_string() == "exited 0");
  CHECK(watchers::ExitStatus::exited(3).to_string() == "exited 3");
  CHECK(watchers::ExitStatus::killed(SIGKILL).to_string() == "killed by SIGKILL");
  CHECK(watchers::ExitStatus::killed(SIGSEGV, true).to_string() == "killed by SIGSEGV (core dumped)");
  CHECK(watchers::ExitStatus::killed(SIGTERM).bus_code() == -15);
  CHECK(watchers::ExitStatus::exited(3).bus_code() == 3);
  CHECK(fmt::format("{}", watchers::ExitStatus::exited(7)) == "exited 7");
}

TEST_CASE("child environment: config over the arbiter's, never NOTIFY_SOCKET", "[unit][watcher]") {
  conf::WatcherConfig cfg;
  cfg.env = {{"A", "config"}, {"C", "3"}};
  std::map<std::string, std::string> arbiter = {{"A", "arbiter"}, {"B", "2"}, {"NOTIFY_SOCKET", "/run/x"}};
  CHECK(watchers::child_environment(cfg, arbiter) == std::vector<std::string>{"A=config", "C=3"});
  cfg.copy_env = true;
  CHECK(watchers::child_environment(cfg, arbiter) == std::vector<std::string>{"A=config", "B=2", "C=3"});
}
