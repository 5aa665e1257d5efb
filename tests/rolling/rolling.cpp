// Rolling restarts and the operation queue, against the real arbiter: capacity kept behind a
// shared socket, a replacement that never gets ready, duplicates collapsing, --wait, and
// reloads that replace only what changed.
#include <atomic>
#include <future>
#include <map>
#include <thread>

#include "../bus/zmq_support.hpp"
#include "http.hpp"

using namespace trapeze::testing;

namespace {

std::string ctl_endpoint(const TempDir& dir) {
  return fmt::format("ipc://{}/control", dir.path().string());
}

std::string web_socket(int port) {
  return fmt::format("[socket:web]\nhost = 127.0.0.1\nport = {}\n\n", port);
}

std::string watcher(const std::string& name, const std::string& args, const std::string& extra) {
  return fmt::format("[watcher:{}]\ncmd = {}\nargs = {}\nready.log = listening\ngraceful_timeout = 10\n{}\n",
                     name, child(), args, extra);
}

std::set<pid_t> listed(Client& c, const std::string& name) {
  std::set<pid_t> out;
  Json reply = c.call("list", {{"name", name}});  // kept: a loop over a temporary's member dangles
  for (auto& p : reply["pids"]) out.insert(p.get<pid_t>());
  return out;
}

Json rolling(Client& c, const std::string& name, Json extra = Json::object(), bool waiting = true) {
  Json props = {{"name", name}, {"rolling", true}};
  if (waiting) props["waiting"] = true;
  for (auto& [k, v] : extra.items()) props[k] = v;
  auto reply = c.raw(Json({{"id", "roll"}, {"command", "restart"}, {"properties", props}}).dump(), 120s);
  REQUIRE(reply);
  return *reply;
}

// A config whose watcher w serves until `broken` exists; from then on, each new process
// hangs before it gets ready (so a rollout's replacement never does).
std::string hangs_once_told(const TempDir& dir, const fs::path& broken, const std::string& extra) {
  return endpoints(dir) +
         watcher("w", fmt::format("hangif {} print listening forever", broken.string()), extra);
}

// The index in `events` of the first one matching.
template <typename Pred>
std::ptrdiff_t index_of(const std::vector<Event>& events, Pred pred) {
  for (std::size_t i = 0; i < events.size(); ++i)
    if (pred(events[i])) return static_cast<std::ptrdiff_t>(i);
  return -1;
}

// Walks the events from the first rollout_start: the fewest processes ready at any moment.
std::size_t fewest_ready_during_rollout(const std::vector<Event>& events, const std::string& name) {
  std::set<pid_t> ready;
  bool rolling_now = false;
  std::size_t fewest = SIZE_MAX;
  for (auto& e : events) {
    if (e.topic == "watcher." + name + ".ready" && e.data.contains("process_pid"))
      ready.insert(e.data["process_pid"].get<pid_t>());
    if (e.topic == "watcher." + name + ".reap") ready.erase(e.data["process_pid"].get<pid_t>());
    if (e.topic == "watcher." + name + ".rollout_start") rolling_now = true;
    if (rolling_now) fewest = std::min(fewest, ready.size());
    if (e.topic == "watcher." + name + ".rollout_done" || e.topic == "watcher." + name + ".rollout_failed")
      break;
  }
  return fewest;
}

// Each slot's pid before the rollout, from the spawn events.
std::map<int, pid_t> slots_of(const std::vector<Event>& events, const std::string& name) {
  std::map<int, pid_t> out;
  for (auto& e : events)
    if (e.topic == "watcher." + name + ".spawn")
      out[e.data["process_id"].get<int>()] = e.data["process_pid"].get<pid_t>();
  return out;
}

}  // namespace

TEST_CASE("rolling restart behind a [socket]: every request answered, never fewer than 4 ready",
          "[integration][rolling]") {
  TempDir dir;
  int port = free_port();
  Arbiter arbiter(dir, "web.ini",
                  endpoints(dir) + web_socket(port) +
                      watcher("web", "print listening servefd $(circus.sockets.web)",
                              "use_sockets = true\nnumprocesses = 4"));
  arbiter.wait_events("web.start");
  Client c(ctl_endpoint(dir));
  std::set<pid_t> before = listed(c, "web");
  REQUIRE(before.size() == 4);

  // Clients keep asking while the processes are replaced.
  std::atomic<bool> stop{false};
  std::atomic<int> answered{0}, refused{0}, failed{0};
  std::string first_error;
  std::thread load([&] {
    while (!stop) {
      auto a = http_get(port);
      if (a.ok)
        ++answered;
      else if (a.refused)
        ++refused;
      else if (failed++ == 0)
        first_error = a.error;
    }
  });
  auto reply = rolling(c, "web");
  // A few more requests after the last replacement, while the last old process goes.
  int at_end = answered;
  wait_until([&] { return answered >= at_end + 20; }, 10s);
  stop = true;
  load.join();
  INFO(reply.dump() << "\n" << first_error);
  CHECK(reply["status"] == "ok");
  CHECK(refused == 0);
  CHECK(failed == 0);
  CHECK(answered > 20);

  // Every process is new, and only new ones answer.
  std::set<pid_t> after;
  REQUIRE(wait_until([&] {
    after = listed(c, "web");
    return after.size() == 4;
  }));
  for (pid_t pid : after) CHECK_FALSE(before.count(pid));
  for (int i = 0; i < 20; ++i) {
    auto a = http_get(port);
    REQUIRE(a.ok);
    CHECK(after.count(static_cast<pid_t>(std::stol(a.body))));
  }

  auto events = arbiter.events();
  auto start = arbiter.events("web.rollout_start");
  REQUIRE(start.size() == 1);
  CHECK(start[0].data["total"] == 4);
  CHECK(start[0].data["surge"] == true);  // the socket makes it surge
  auto progress = arbiter.events("web.rollout_progress");
  REQUIRE(progress.size() == 4);
  CHECK(progress.back().data["done"] == 4);
  CHECK(arbiter.events("web.rollout_done").size() == 1);
  CHECK(fewest_ready_during_rollout(events, "web") >= 4);
}

TEST_CASE("rolling restart without sockets: one slot at a time, each replacement ready before the next goes",
          "[integration][rolling]") {
  TempDir dir;
  Arbiter arbiter(dir, "w.ini", endpoints(dir) + watcher("w", "print listening forever", "numprocesses = 3"));
  arbiter.wait_events("w.start");
  Client c(ctl_endpoint(dir));
  auto old = slots_of(arbiter.events(), "w");
  REQUIRE(old.size() == 3);
  auto reply = rolling(c, "w");
  INFO(reply.dump() << "\n" << arbiter.log());
  CHECK(reply["status"] == "ok");
  auto events = arbiter.events();
  // Slot k's replacement is ready before slot k+1's old process is told to go.
  for (int slot = 1; slot <= 3; ++slot) {
    auto reaped = index_of(events, [&](const Event& e) {
      return e.topic == "watcher.w.reap" && e.data["process_pid"] == old[slot];
    });
    auto respawned = index_of(events, [&](const Event& e) {
      return e.topic == "watcher.w.spawn" && e.data["process_id"] == slot &&
             e.data["process_pid"] != old[slot];
    });
    REQUIRE(reaped >= 0);
    REQUIRE(respawned > reaped);  // stop first: the old one goes, then its replacement comes
    CHECK(events[static_cast<std::size_t>(reaped)].data["expected"] == true);
    auto ready = index_of(events, [&](const Event& e) {
      return e.topic == "watcher.w.ready" &&
             e.data.value("process_pid", 0) ==
                 events[static_cast<std::size_t>(respawned)].data["process_pid"];
    });
    REQUIRE(ready > respawned);
    if (slot < 3) {
      auto next_reaped = index_of(events, [&](const Event& e) {
        return e.topic == "watcher.w.reap" && e.data["process_pid"] == old[slot + 1];
      });
      CHECK(next_reaped > ready);
    }
  }
  CHECK(fewest_ready_during_rollout(events, "w") >= 2);
  CHECK(c.call("status", {{"name", "w"}})["status"] == "active");
}

TEST_CASE("a replacement that never gets ready stops the rollout after max_retry; the old processes serve on",
          "[integration][rolling]") {
  TempDir dir;
  auto broken = dir / "broken";
  Arbiter arbiter(dir, "w.ini", hangs_once_told(dir, broken, "numprocesses = 4\nready.start_timeout = 1"));
  arbiter.wait_events("w.start");
  Client c(ctl_endpoint(dir));
  auto old = slots_of(arbiter.events(), "w");
  REQUIRE(old.size() == 4);
  write_file(broken, "");

  SECTION("stop first: slot 1 is left to the respawn policy, the 3 others keep their old process") {
    auto reply = rolling(c, "w", {{"max_retry", 2}});
    INFO(reply.dump() << "\n" << arbiter.log());
    CHECK(reply["status"] == "error");
    CHECK(reply["reason"].get<std::string>().find("not ready after 1s") != std::string::npos);
    auto failed = arbiter.wait_events("w.rollout_failed");
    CHECK(failed[0].data["slot"] == 1);
    CHECK(failed[0].data["attempts"] == 3);
    CHECK(failed[0].data["done"] == 0);
    // Three tries at slot 1 after its old process went; nothing else touched.
    auto events = arbiter.events();
    auto start = index_of(events, [](const Event& e) { return e.topic == "watcher.w.rollout_start"; });
    int tries = 0;
    for (auto i = static_cast<std::size_t>(start); i < events.size(); ++i)
      if (events[i].topic == "watcher.w.spawn") {
        CHECK(events[i].data["process_id"] == 1);
        ++tries;
      }
    CHECK(tries == 3);
    for (int slot = 2; slot <= 4; ++slot) CHECK(alive(old[slot]));
    CHECK_FALSE(alive(old[1]));
    auto now = listed(c, "w");
    for (int slot = 2; slot <= 4; ++slot) CHECK(now.count(old[slot]));
  }
  SECTION("surge: the replacement goes, all 4 old processes keep serving") {
    auto reply = rolling(c, "w", {{"max_retry", 1}, {"surge", true}});
    INFO(reply.dump() << "\n" << arbiter.log());
    CHECK(reply["status"] == "error");
    auto failed = arbiter.wait_events("w.rollout_failed");
    CHECK(failed[0].data["attempts"] == 2);
    std::set<pid_t> now;
    REQUIRE(wait_until([&] {
      now = listed(c, "w");
      return now.size() == 4;
    }));
    for (auto& [slot, pid] : old) CHECK(now.count(pid));
  }
}

TEST_CASE("operations: equal requests collapse into the one queued; others queue in order",
          "[integration][rolling]") {
  TempDir dir;
  // Each process takes a while to get ready, so the first rollout is still running when the
  // others arrive.
  Arbiter arbiter(dir, "w.ini",
                  endpoints(dir) + watcher("w", "sleep 400 print listening forever", "numprocesses = 2"));
  arbiter.wait_events("w.start");
  Client c(ctl_endpoint(dir));
  for (int i = 0; i < 3; ++i) CHECK(rolling(c, "w", Json::object(), false)["status"] == "ok");
  CHECK(rolling(c, "w", {{"batch", 2}}, false)["status"] == "ok");

  auto ops = c.call("operations", {{"name", "w"}})["operations"]["w"];
  INFO(ops.dump(2));
  REQUIRE(ops.size() == 3);  // running, queued (the 2nd and 3rd as one), queued (batch 2)
  CHECK(ops[0]["state"] == "running");
  CHECK(ops[1]["state"] == "queued");
  CHECK(ops[1]["batch"] == 1);
  CHECK(ops[2]["state"] == "queued");
  CHECK(ops[2]["batch"] == 2);

  arbiter.wait_events("w.rollout_done", 3, 60s);
  ops = c.call("operations", {{"name", "w"}})["operations"]["w"];
  REQUIRE(ops.size() == 3);
  for (auto& op : ops) {
    CHECK(op["state"] == "done");
    CHECK(op["operation"] == "rolling_restart");
    for (auto key : {"requested_at", "started_at", "finished_at"})
      CHECK(op[key].get<std::string>().ends_with("Z"));
    CHECK(op["started_at"] <= op["finished_at"]);
  }
  CHECK(arbiter.events("w.rollout_start").size() == 3);
  CHECK(arbiter.events("w.rollout_start")[2].data["batch"] == 2);
}

TEST_CASE("incr during a rollout waits its turn in the operation queue", "[integration][rolling]") {
  TempDir dir;
  Arbiter arbiter(dir, "w.ini",
                  endpoints(dir) + watcher("w", "sleep 300 print listening forever", "numprocesses = 2"));
  arbiter.wait_events("w.start");
  Client c(ctl_endpoint(dir));
  CHECK(rolling(c, "w", Json::object(), false)["status"] == "ok");
  auto reply = c.call("incr", {{"name", "w"}});
  CHECK(reply["numprocesses"] == 3);
  auto events = arbiter.events();
  auto done = index_of(events, [](const Event& e) { return e.topic == "watcher.w.rollout_done"; });
  auto third = index_of(
      events, [](const Event& e) { return e.topic == "watcher.w.spawn" && e.data["process_id"] == 3; });
  INFO(arbiter.log());
  REQUIRE(done >= 0);
  CHECK(third > done);
}

TEST_CASE("restart --rolling --wait: exit 0 when the rollout is done, 1 when it failed",
          "[integration][rolling]") {
  TempDir dir;
  auto broken = dir / "broken";
  Arbiter arbiter(dir, "w.ini", hangs_once_told(dir, broken, "numprocesses = 2\nready.start_timeout = 1"));
  arbiter.wait_events("w.start");
  std::string config = arbiter.config().string();

  auto ok = run_trapeze(dir, {"restart", "w", "--rolling", "--wait", "-c", config});
  INFO(ok.out << ok.err);
  CHECK(ok.status == 0);
  CHECK(arbiter.events("w.rollout_done").size() == 1);

  write_file(broken, "");
  auto bad = run_trapeze(
      dir, {"restart", "w", "--rolling", "--batch", "2", "--max-retry", "0", "--wait", "-c", config});
  INFO(bad.out << bad.err);
  CHECK(bad.status == 1);
  CHECK(bad.err.find("not ready after 1s") != std::string::npos);

  auto usage = run_trapeze(dir, {"restart", "w", "--batch", "2", "-c", config});
  CHECK(usage.status == 2);
  CHECK(usage.err.find("--rolling") != std::string::npos);
}

TEST_CASE("restart --rolling --wait: exit 3 when the arbiter goes away mid-rollout, not a wait forever",
          "[integration][rolling]") {
  TempDir dir;
  auto broken = dir / "broken";
  // The replacement never gets ready and its start_timeout is far away: only the arbiter's
  // death can end the client's wait.
  Arbiter arbiter(dir, "w.ini", hangs_once_told(dir, broken, "ready.start_timeout = 600"));
  arbiter.wait_events("w.start");
  write_file(broken, "");
  auto started = std::chrono::steady_clock::now();
  auto client = std::async(std::launch::async, [&] {
    return run_trapeze(dir, {"restart", "w", "--rolling", "--wait", "-c", arbiter.config().string()});
  });
  arbiter.wait_events("w.rollout_start");
  CHECK(arbiter.stop(SIGKILL) == 128 + SIGKILL);
  // The reply's wait (5 s) and the probe's (5 s), with room for a loaded machine.
  REQUIRE(client.wait_for(60s) == std::future_status::ready);
  auto r = client.get();
  INFO(r.out << r.err);
  CHECK(r.status == 3);
  CHECK(r.err.find("no answer from") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - started >= 10s);
}

TEST_CASE("reloadconfig rolls a watcher whose command changed and leaves the others alone",
          "[integration][rolling]") {
  TempDir dir;
  std::string a = watcher("a", "print listening forever", "numprocesses = 2");
  std::string b = watcher("b", "print listening forever", "numprocesses = 2");
  Arbiter arbiter(dir, "r.ini", endpoints(dir) + a + b);
  arbiter.wait_events("a.start");
  arbiter.wait_events("b.start");
  Client c(ctl_endpoint(dir));
  auto a_before = listed(c, "a"), b_before = listed(c, "b");

  write_file(arbiter.config(),
             endpoints(dir) + watcher("a", "print listening print again forever", "numprocesses = 2") + b);
  auto reply = c.call("reloadconfig", {{"waiting", true}});
  CHECK(reply["status"] == "ok");
  INFO(arbiter.log());
  CHECK(arbiter.events("a.rollout_done").size() == 1);
  CHECK(arbiter.events("b.rollout_start").empty());
  CHECK(listed(c, "b") == b_before);
  std::set<pid_t> a_after;
  REQUIRE(wait_until([&] {
    a_after = listed(c, "a");
    return a_after.size() == 2;
  }));
  for (pid_t pid : a_after) CHECK_FALSE(a_before.count(pid));
  CHECK(fewest_ready_during_rollout(arbiter.events(), "a") >= 1);
  CHECK(c.call("get", {{"name", "a"}, {"keys", {"args"}}})["options"]["args"] ==
        "print listening print again forever");
  CHECK(arbiter.events("a.stop").empty());  // replaced process by process, never stopped
}

TEST_CASE("reload NAME is circus's graceful reload: every replacement before its old process goes",
          "[integration][rolling]") {
  TempDir dir;
  Arbiter arbiter(dir, "g.ini", endpoints(dir) + watcher("g", "print listening forever", "numprocesses = 3"));
  arbiter.wait_events("g.start");
  Client c(ctl_endpoint(dir));
  auto reply = c.call("reload", {{"name", "g"}, {"waiting", true}});
  CHECK(reply["status"] == "ok");
  auto start = arbiter.events("g.rollout_start");
  REQUIRE(start.size() == 1);
  CHECK(start[0].data["batch"] == 3);
  CHECK(start[0].data["surge"] == true);
  CHECK(fewest_ready_during_rollout(arbiter.events(), "g") >= 3);
}
