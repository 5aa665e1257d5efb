// Processes killed under the arbiter, and the arbiter itself killed: 1000 children SIGKILLed
// at once, and an arbiter SIGKILLed in the middle of a stop with charm dispatches queued, then
// started again on the same config.
#include <algorithm>

#include "faults.hpp"

using namespace trapeze::testing;

TEST_CASE("faults: 1000 children SIGKILLed at once: every one reaped once and respawned, no zombie, "
          "status answered throughout",
          "[integration][faults]") {
  // exits.cpp kills 500 with respawn off; here the watcher respawns them all at once.
  TempDir dir;
  Arbiter arbiter(dir, "thousand.ini",
                  circus_section(dir) + fmt::format("[watcher:w]\ncmd = {}\nargs = forever\nnumprocesses = 1000\n"
                                                    "min_uptime = 0\ncheck_flapping = false\n",
                                                    child()));
  EventTail tail(events_file(dir));
  tail.wait(arbiter, "w.start", 1, 180s);
  std::vector<pid_t> first;
  for (auto& e : tail.poll())
    if (e.topic == "watcher.w.spawn") first.push_back(e.data["process_pid"].get<pid_t>());
  REQUIRE(first.size() == 1000);

  Client control(control_endpoint(dir));
  for (pid_t pid : first) ::kill(pid, SIGKILL);
  // The loop has 1000 reaps and 1000 spawns to do: a status request still gets its turn.
  int answered = 0;
  auto deadline = std::chrono::steady_clock::now() + 180s;
  while (tail.count("w.spawn") < 2000 && std::chrono::steady_clock::now() < deadline) {
    auto reply = control.raw(R"({"id":"s","command":"status","properties":{"name":"w"}})", 20s);
    REQUIRE(reply);
    CHECK((*reply)["status"] == "active");  // circus: a named status is the state
    ++answered;
  }
  tail.wait(arbiter, "w.spawn", 2000, 10s);
  CHECK(answered >= 1);

  std::map<pid_t, int> reaps;
  for (auto& e : tail.poll())
    if (e.topic == "watcher.w.reap") {
      ++reaps[e.data["process_pid"].get<pid_t>()];
      CHECK(e.data["exit_code"] == -SIGKILL);
    }
  CHECK(reaps.size() == 1000);
  for (pid_t pid : first) CHECK(reaps[pid] == 1);
  // The replacements are new processes, all alive, and the arbiter lists exactly them.
  std::set<pid_t> second;
  for (auto& e : tail.poll())
    if (e.topic == "watcher.w.spawn") second.insert(e.data["process_pid"].get<pid_t>());
  CHECK(second.size() == 2000);
  auto list = control.call("list", {{"name", "w"}});
  REQUIRE(list["pids"].size() == 1000);
  for (auto& p : list["pids"]) {
    CHECK(alive(p.get<pid_t>()));
    CHECK(std::find(first.begin(), first.end(), p.get<pid_t>()) == first.end());
  }
  CHECK(zombie_children(arbiter.pid()).empty());

  CHECK(arbiter.stop(SIGTERM, 120s) == 0);
  std::map<pid_t, int> spawned, reaped;
  for (auto& e : tail.poll()) {
    if (e.topic == "watcher.w.spawn") ++spawned[e.data["process_pid"].get<pid_t>()];
    if (e.topic == "watcher.w.reap") ++reaped[e.data["process_pid"].get<pid_t>()];
  }
  CHECK(spawned == reaped);  // exactly one reap per spawn, across the kill and the stop
  for (auto& [pid, n] : spawned) CHECK(n == 1);
}

namespace {

// dispatch: records "start KEY" and "done KEY" in the charm's `dispatched`, its pid in `pid`;
// waits (bounded) while the file `hold` exists.
const char* const kDispatch = R"SH(#!/bin/sh
dir=$(dirname "$0")
key=${JUJU_NOTICE_KEY:-${JUJU_DISPATCH_PATH#hooks/}}
echo $$ > "$dir/pid"
echo "start $key" >> "$dir/dispatched"
n=0
while [ -e "$dir/hold" ] && [ $n -lt 3000 ]; do sleep 0.01; n=$((n+1)); done
echo "done $key" >> "$dir/dispatched"
)SH";

std::vector<std::string> lines_with(const fs::path& file, const std::string& prefix) {
  std::vector<std::string> out;
  std::istringstream in(read_file(file));
  for (std::string l; std::getline(in, l);)
    if (l.rfind(prefix, 0) == 0) out.push_back(l);
  return out;
}

// A process of the test's own, unknown to any arbiter, in its own process group.
pid_t start_bystander() {
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    execl(child().c_str(), child().c_str(), "forever", static_cast<char*>(nullptr));
    _exit(127);
  }
  setpgid(pid, pid);
  return pid;
}

}  // namespace

TEST_CASE("faults: an arbiter SIGKILLed mid-stop with dispatches queued: the next one dispatches them, "
          "starts its watchers and kills nothing it does not own",
          "[integration][faults]") {
  // tests/juju/waker.cpp runs 50 rounds of SIGKILL against the queue alone; this is one round
  // with the whole arbiter busy, and checks what the next arbiter leaves alone.
  Subreaper subreaper;
  TempDir dir;
  auto charm = dir / "charm";
  fs::create_directories(charm);
  write_file(charm / "dispatch", kDispatch);
  fs::permissions(charm / "dispatch", fs::perms::owner_all);
  auto queue = dir / "queue.json";
  std::string config =
      circus_section(dir) +
      fmt::format("[juju]\nunit = app/0\ncharm_dir = {0}\nmode = direct\nqueue_file = {1}\nbackoff = 50ms\n"
                  "[watcher:w]\ncmd = {2}\nargs = forever\nnumprocesses = 3\njuju.on_ready = false\n"
                  "[watcher:stubborn]\ncmd = {2}\nargs = ignore TERM forever\ngraceful_timeout = 60\n"
                  "juju.on_ready = false\n",
                  charm.string(), queue.string(), child());
  pid_t bystander = start_bystander();

  Arbiter first(dir, "same.ini", config);
  EventTail tail(events_file(dir));
  tail.wait(first, "w.start", 1, 30s);
  tail.wait(first, "stubborn.start", 1, 30s);
  std::set<pid_t> orphans = first.live_pids();
  REQUIRE(orphans.size() == 4);

  write_file(charm / "hold", "");
  for (const char* key : {"k1", "k2", "k3"})
    REQUIRE(run_trapeze(dir, {"-c", first.config().string(), "notify", "-w", "w", key}).status == 0);
  REQUIRE(wait_until([&] { return !lines_with(charm / "dispatched", "start k1").empty(); }, 20s));
  // Mid-operation: stubborn ignores SIGTERM, so the stop waits out its 60 s graceful_timeout.
  Client control(control_endpoint(dir));
  control.send("stop", {{"name", "stubborn"}, {"waiting", false}}, "stop");
  REQUIRE(wait_until([&] { return first.log().find("watcher stubborn: stopping") != std::string::npos; }, 20s));
  first.stop(SIGKILL);

  // The dispatch that was running is an orphan of the dead arbiter: the test stops it, by its
  // group, as waker.cpp does, so that the next arbiter's run of k1 is the only one.
  pid_t dispatch = std::stoi(read_file(charm / "pid"));
  REQUIRE(kill_group_and_reap(dispatch));
  fs::remove(charm / "hold");
  // The queue on disk is whole: k1 started (an attempt recorded), k2 and k3 waiting.
  auto saved = Json::parse(read_file(queue));
  INFO("queue file: " << saved.dump());
  REQUIRE(saved.dump().find("k1") != std::string::npos);
  REQUIRE(saved.dump().find("k2") != std::string::npos);
  REQUIRE(saved.dump().find("k3") != std::string::npos);
  // What trapeze does today, as circus does: the killed arbiter's children go on running,
  // orphaned (here adopted by the test's subreaper; on a host, by init or the service manager).
  for (pid_t pid : orphans) CHECK(alive(pid));

  {
    Arbiter second(dir, "same.ini", config);
    tail.wait(second, "w.start", 2, 30s);
    tail.wait(second, "stubborn.start", 2, 30s);
    // At least once: k1 again, then k2 and k3, each to completion, one at a time.
    REQUIRE(wait_until(
        [&] {
          auto done = lines_with(charm / "dispatched", "done ");
          return done == std::vector<std::string>{"done k1", "done k2", "done k3"};
        },
        30s));
    // Its own watchers run new processes; the orphans and the bystander are untouched.
    Client c2(control_endpoint(dir));
    auto list = c2.call("list", {{"name", "w"}});
    REQUIRE(list["pids"].size() == 3);
    for (auto& p : list["pids"]) CHECK(orphans.count(p.get<pid_t>()) == 0);
    auto mine = c2.call("list", {{"name", "stubborn"}})["pids"];
    REQUIRE(mine.size() == 1);
    // Its stubborn process ignores SIGTERM too: once its stop has begun, the test ends that
    // process itself rather than wait out graceful_timeout.
    ::kill(second.pid(), SIGTERM);
    auto stopping = [&] {
      std::string log = second.log();
      std::size_t n = 0;
      for (auto at = log.find("watcher stubborn: stopping"); at != std::string::npos;
           at = log.find("watcher stubborn: stopping", at + 1))
        ++n;
      return n == 2;
    };
    REQUIRE(wait_until(stopping, 20s));
    ::kill(-mine[0].get<pid_t>(), SIGKILL);
    CHECK(second.stop() == 0);
  }
  for (pid_t pid : orphans) CHECK(alive(pid));
  CHECK(alive(bystander));

  for (pid_t pid : orphans) CHECK(kill_group_and_reap(pid));
  ::kill(bystander, SIGKILL);
  ::waitpid(bystander, nullptr, 0);
}
