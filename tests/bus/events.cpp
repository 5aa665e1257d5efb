// The event bus seen by a real ZeroMQ subscriber: the exact topics of a start, an incr, a
// crash and its respawn, and a stop, with seq strictly increasing and circus's payload keys.
#include "zmq_support.hpp"

using namespace trapeze::testing;

TEST_CASE("events: start, incr, crash and respawn, stop, in order, seq increasing", "[integration][bus]") {
  TempDir dir;
  Arbiter arbiter(dir, "ev.ini",
                  endpoints(dir) + fmt::format("[watcher:web]\ncmd = {}\nargs = forever\nautostart = false\n"
                                               "numprocesses = 2\nmin_uptime = 0\n",
                                               child()));
  Client c(fmt::format("ipc://{}/control", dir.path().string()));
  Subscriber sub(fmt::format("ipc://{}/events", dir.path().string()), c);
  std::vector<Event> all;

  c.call("start", {{"name", "web"}});
  auto start = sub.until("watcher.web.start");
  // Each process's ready (with its pid), then the watcher's (without): it is active.
  CHECK(topics(start) == std::vector<std::string>{"watcher.web.spawn", "watcher.web.ready", "watcher.web.spawn",
                                                  "watcher.web.ready", "watcher.web.ready", "watcher.web.start"});
  REQUIRE(start.size() == 6);
  CHECK(start[1].data["process_pid"] == start[0].data["process_pid"]);
  CHECK(start[3].data["process_pid"] == start[2].data["process_pid"]);
  CHECK_FALSE(start[4].data.contains("process_pid"));
  for (auto& e : start) all.push_back(e);
  std::set<pid_t> pids;
  for (auto& e : start)
    if (e.topic.ends_with("spawn")) {
      pids.insert(e.data["process_pid"].get<pid_t>());
      CHECK(e.data["process_id"].is_number_integer());
    }

  c.call("incr", {{"name", "web"}});
  auto incr = sub.until("watcher.web.ready");
  CHECK(topics(incr) == std::vector<std::string>{"watcher.web.spawn", "watcher.web.ready"});
  for (auto& e : incr) all.push_back(e);
  pid_t third = incr[0].data["process_pid"];

  ::kill(third, SIGKILL);
  auto crash = sub.until("watcher.web.reap");
  auto respawn = sub.until("watcher.web.ready");
  CHECK(topics(crash) == std::vector<std::string>{"watcher.web.reap"});
  CHECK(topics(respawn) == std::vector<std::string>{"watcher.web.spawn", "watcher.web.ready"});
  CHECK(crash[0].data["process_pid"] == third);
  CHECK(crash[0].data["exit_code"] == -SIGKILL);
  CHECK(respawn[0].data["process_id"] == incr[0].data["process_id"]);
  all.push_back(crash[0]);
  for (auto& e : respawn) all.push_back(e);

  c.call("stop", {{"name", "web"}});
  auto stop = sub.until("watcher.web.stop");
  CHECK(topics(stop) == std::vector<std::string>{"watcher.web.reap", "watcher.web.reap", "watcher.web.reap",
                                                 "watcher.web.stop"});
  for (auto& e : stop) {
    all.push_back(e);
    if (e.topic.ends_with("reap")) CHECK(e.data["exit_code"] == -SIGTERM);
  }
  for (std::size_t i = 1; i < all.size(); ++i) {
    INFO(all[i].topic);
    CHECK(all[i].data["seq"].get<long long>() > all[i - 1].data["seq"].get<long long>());
    CHECK(all[i].data["time"].get<double>() >= all[i - 1].data["time"].get<double>());
  }
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("events: a subscriber that reacts to ready sees active in status", "[integration][bus]") {
  TempDir dir;
  Arbiter arbiter(dir, "ready.ini",
                  endpoints(dir) + fmt::format("[watcher:web]\ncmd = {}\nargs = forever\nautostart = false\n", child()));
  Client c(fmt::format("ipc://{}/control", dir.path().string()));
  Subscriber sub(fmt::format("ipc://{}/events", dir.path().string()), c);
  c.call("start", {{"name", "web"}});
  // The watcher's own ready event is the one without a process_pid.
  for (;;) {
    auto ready = sub.until("watcher.web.ready");
    if (!ready.back().data.contains("process_pid")) break;
  }
  CHECK(c.call("status", {{"name", "web"}})["status"] == "active");
  CHECK(arbiter.stop() == 0);
}
