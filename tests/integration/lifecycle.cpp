// The watcher lifecycle through the real binary: priority order, respawn, backoff, flapping,
// graceful stop and SIGKILL, max_age.
#include <fmt/format.h>

#include "support.hpp"

using namespace trapeze::testing;

namespace {

std::string watcher(const std::string& name, const std::string& args, const std::string& extra = "") {
  return fmt::format("[watcher:{}]\ncmd = {}\nargs = {}\n{}\n", name, child(), args, extra);
}

double time_of(const Event& e) {
  return e.data["time"].get<double>();
}

}  // namespace

TEST_CASE("watchers start by ascending priority, each group once the previous is active",
          "[integration][watcher]") {
  TempDir dir;
  // Names sort the other way round, so sorting by name would fail this.
  Arbiter arbiter(dir, "prio.ini",
                  watcher("a_worker", "forever", "priority = 2\nwarmup_delay = 0.3") +
                      watcher("b_redis", "forever", "priority = 1\nwarmup_delay = 0.3"));
  arbiter.wait_events("a_worker.start");
  auto events = arbiter.events();
  auto index = [&](const std::string& topic) {
    for (std::size_t i = 0; i < events.size(); ++i)
      if (events[i].topic == topic) return i;
    FAIL("no event " << topic);
    return std::size_t{0};
  };
  CHECK(index("watcher.b_redis.spawn") < index("watcher.b_redis.start"));
  CHECK(index("watcher.b_redis.start") < index("watcher.a_worker.spawn"));
  // Stop goes in reverse: the worker first.
  CHECK(arbiter.stop() == 0);
  events = arbiter.events();
  CHECK(index("watcher.a_worker.stop") < index("watcher.b_redis.stop"));
  CHECK(events.back().topic == "arbiter.stop");
}

TEST_CASE("priority_order = descending starts in circus's order", "[integration][watcher]") {
  TempDir dir;
  Arbiter arbiter(dir, "prio.ini",
                  "[circus]\npriority_order = descending\n" + watcher("low", "forever", "priority = 1") +
                      watcher("high", "forever", "priority = 2\nwarmup_delay = 0.2"));
  arbiter.wait_events("low.start");
  auto events = arbiter.events();
  std::vector<std::string> topics;
  for (auto& e : events) topics.push_back(e.topic);
  auto pos = [&](const std::string& t) {
    return std::find(topics.begin(), topics.end(), t) - topics.begin();
  };
  CHECK(pos("watcher.high.start") < pos("watcher.low.spawn"));
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("a process that ran min_uptime is replaced at once", "[integration][watcher]") {
  TempDir dir;
  Arbiter arbiter(dir, "respawn.ini", watcher("w", "sleep 300 exit 3", "min_uptime = 0.1"));
  auto reaps = arbiter.wait_events("w.reap", 2);
  CHECK(reaps[0].data["exit_code"] == 3);
  auto spawns = arbiter.wait_events("w.spawn", 3);
  // Replaced at once: the next spawn follows the reap with no backoff (allow for a slow machine).
  CHECK(time_of(spawns[1]) - time_of(reaps[0]) < 0.09);
  CHECK(spawns[1].data["process_id"] == 1);
  CHECK(spawns[0].data["process_pid"] != spawns[1].data["process_pid"]);
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("a crash-looping process backs off 100 ms, 200 ms, 400 ms, ...", "[integration][watcher]") {
  TempDir dir;
  Arbiter arbiter(dir, "backoff.ini", watcher("w", "exit 1", "check_flapping = false\nmax_retry = -1"));
  auto spawns = arbiter.wait_events("w.spawn", 5);
  // Lower bounds only: a loaded machine makes gaps longer, never shorter.
  for (std::size_t i = 1; i < 5; ++i) {
    double gap = time_of(spawns[i]) - time_of(spawns[i - 1]);
    double expected = 0.1 * (1 << (i - 1));
    INFO("gap " << i << ": " << gap << " s");
    CHECK(gap >= expected * 0.95);
  }
  CHECK(arbiter.stop() == 0);
  CHECK(arbiter.log().find("respawning process 1 in 800ms") != std::string::npos);
}

TEST_CASE("flapping pauses the watcher, then gives up: state failed, event failed",
          "[integration][watcher]") {
  TempDir dir;
  Arbiter arbiter(dir, "flap.ini",
                  watcher("w", "exit 2",
                          "flapping.attempts = 2\nflapping.window = 5\nflapping.retry_in = 0.2\n"
                          "flapping.max_retry = 2"));
  auto failed = arbiter.wait_events("w.failed");
  CHECK(failed[0].data["reason"].get<std::string>().find("flapping") != std::string::npos);
  CHECK(arbiter.events("w.flapping").size() == 2);
  // Given up: no spawn after the failure.
  auto spawns = arbiter.events("w.spawn");
  CHECK(time_of(spawns.back()) < time_of(failed[0]));
  // Every spawn has its reap.
  CHECK(arbiter.events("w.reap").size() == spawns.size());
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("stop: stop_signal to the group, SIGKILL after graceful_timeout", "[integration][watcher]") {
  TempDir dir;
  auto gc = (dir / "gc.pid").string();
  auto armed = dir / "armed";  // written once SIGTERM is ignored
  Arbiter arbiter(dir, "stop.ini",
                  watcher("stubborn", fmt::format("ignore TERM pidfile {} forever", armed.string()),
                          "graceful_timeout = 0.3") +
                      watcher("polite", fmt::format("grandchild {} forever", gc)));
  auto spawns = arbiter.wait_events(".spawn", 2);
  REQUIRE(wait_until([&] { return fs::exists(gc) && fs::exists(armed); }));
  pid_t grandchild = std::stoi(read_file(gc));
  REQUIRE(alive(grandchild));
  CHECK(arbiter.stop() == 0);
  // The stubborn one was killed; the polite one's grandchild went with its group.
  auto kills = arbiter.events("stubborn.kill");
  REQUIRE(kills.size() == 1);
  auto reaps = arbiter.events("stubborn.reap");
  REQUIRE(reaps.size() == 1);
  CHECK(reaps[0].data["exit_code"] == -SIGKILL);
  CHECK(arbiter.events("polite.reap")[0].data["exit_code"] == -SIGTERM);
  CHECK_FALSE(alive(grandchild));
  for (auto& s : spawns) CHECK_FALSE(alive(s.data["process_pid"].get<pid_t>()));
}

TEST_CASE("max_age replaces a process in its slot", "[integration][watcher]") {
  TempDir dir;
  Arbiter arbiter(dir, "age.ini", watcher("w", "forever", "max_age = 0.3\nmax_age_variance = 0"));
  auto spawns = arbiter.wait_events("w.spawn", 3);
  CHECK(spawns[1].data["process_id"] == 1);
  auto reaps = arbiter.events("w.reap");
  REQUIRE(!reaps.empty());
  CHECK(reaps[0].data["exit_code"] == -SIGTERM);
  CHECK(arbiter.stop() == 0);
}
