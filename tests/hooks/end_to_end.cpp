// Hooks in the real arbiter: real plugin .so files, real children, the events file and a real
// control client. Every hook point at its moment, circus's veto effects, failures that are
// ignored or not, timeouts, and a slow hook that holds up nothing else.
#include <sys/stat.h>

#include <algorithm>
#include <fstream>

#include "../bus/zmq_support.hpp"

using namespace trapeze::testing;

namespace {

const char* const kPoints[] = {"before_start",  "after_start",  "before_spawn", "after_spawn",
                               "before_stop",   "after_stop",   "before_signal", "after_signal",
                               "before_reap",   "after_reap"};

std::string plugin(const char* symbol) { return fmt::format("{}:{}", TEST_PLUGIN_BEHAVIOURS, symbol); }

std::string watcher_section(const std::string& name, const std::string& extra) {
  return fmt::format("[watcher:{}]\ncmd = {}\nargs = forever\n{}", name, child(), extra);
}

std::vector<std::string> lines_of(const fs::path& p) {
  std::vector<std::string> out;
  std::istringstream in(read_file(p));
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::vector<std::string> hook_names(const std::vector<Event>& events) {
  std::vector<std::string> out;
  for (auto& e : events) out.push_back(e.data["name"].get<std::string>());
  return out;
}

}  // namespace

TEST_CASE("hooks: every point runs at its moment, once, in order", "[integration][hooks]") {
  TempDir dir;
  auto record = dir / "record.txt";
  std::string hooks;
  for (const char* point : kPoints)
    hooks += fmt::format("hooks.{0} = {1}\nhooks.{0}.options.file = {2}\n", point, plugin("record"), record.string());
  Arbiter arbiter(dir, "all.ini", watcher_section("w", hooks));
  auto spawn = arbiter.wait_events("w.spawn");
  arbiter.wait_events("w.start");
  pid_t pid = spawn[0].data["process_pid"];
  CHECK(arbiter.stop() == 0);

  std::vector<std::string> want = {
      "before_start 0 0 0",
      "before_spawn 0 0 0",
      fmt::format("after_spawn {} 0 0", pid),
      "after_start 0 0 0",
      "before_stop 0 0 0",
      fmt::format("before_signal {} 15 0", pid),
      fmt::format("after_signal {} 15 0", pid),
      fmt::format("before_reap {} 0 -15", pid),
      fmt::format("after_reap {} 0 -15", pid),
      "after_stop 0 0 0",
  };
  CHECK(lines_of(record) == want);

  // One hook_success per call, circus's keys plus ours, in the same order, seq increasing.
  auto success = arbiter.events("w.hook_success");
  std::vector<std::string> names = hook_names(success);
  CHECK(names == std::vector<std::string>{"before_start", "before_spawn", "after_spawn", "after_start",
                                          "before_stop", "before_signal", "after_signal", "before_reap",
                                          "after_reap", "after_stop"});
  for (std::size_t i = 0; i < success.size(); ++i) {
    CHECK(success[i].data["time"].is_number_float());
    CHECK(success[i].data["duration_ms"].get<double>() >= 0);
    if (i > 0) CHECK(success[i].data["seq"] > success[i - 1].data["seq"]);
  }
  CHECK(arbiter.events("w.hook_failure").empty());
  // The reap event comes after before_reap, the start event after after_start.
  auto all = arbiter.events();
  auto index = [&](const std::string& topic, const std::string& hook = "") {
    for (std::size_t i = 0; i < all.size(); ++i)
      if (all[i].topic == topic && (hook.empty() || all[i].data["name"] == hook)) return i;
    return all.size();
  };
  CHECK(index("watcher.w.hook_success", "after_start") < index("watcher.w.start"));
  CHECK(index("watcher.w.hook_success", "before_reap") < index("watcher.w.reap"));
  CHECK(index("watcher.w.reap") < index("watcher.w.hook_success", "after_reap"));
}

TEST_CASE("hooks: a vetoed before_start leaves the watcher stopped and later groups unstarted",
          "[integration][hooks]") {
  TempDir dir;
  Arbiter arbiter(dir, "veto.ini",
                  endpoints(dir) +
                      watcher_section("redis", "priority = 1\nhooks.before_start = " + plugin("refuse") + "\n") +
                      watcher_section("worker", "priority = 2\n"));
  auto failure = arbiter.wait_events("redis.hook_failure");
  CHECK(failure[0].data["name"] == "before_start");
  CHECK(failure[0].data["error"] == "vetoed");
  auto blocked = arbiter.wait_events("worker.start_blocked");
  CHECK(blocked[0].data["blocker"] == "redis");
  Client c(fmt::format("ipc://{}/control", dir.path().string()));
  CHECK(c.call("status")["statuses"] == Json({{"redis", "stopped"}, {"worker", "stopped"}}));
  CHECK(arbiter.events(".spawn").empty());
  CHECK(arbiter.log().find("arbiter: watcher worker waits for redis, which is not running") != std::string::npos);
  // Started by hand later, the hook is asked again.
  c.call("start", {{"name", "redis"}});
  arbiter.wait_events("redis.hook_failure", 2);
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("hooks: a failing hook stops the start unless its failure is ignored", "[integration][hooks]") {
  TempDir dir;
  Arbiter arbiter(dir, "fail.ini",
                  watcher_section("strict", "hooks.before_start = " + plugin("fail") + "\n") +
                      watcher_section("lenient", "hooks.before_start = " + plugin("fail") + ", true\n") +
                      watcher_section("cpp", fmt::format("hooks.before_start = {}:throws\n"
                                                         "hooks.before_start.options.port = 6379\n",
                                                         TEST_PLUGIN_CPP)));
  arbiter.wait_events("lenient.start");
  auto strict = arbiter.wait_events("strict.hook_failure");
  CHECK(strict[0].data["error"] == "database is down");
  auto lenient = arbiter.wait_events("lenient.hook_failure");
  CHECK(lenient[0].data["error"] == "database is down");
  auto cpp = arbiter.wait_events("cpp.hook_failure");
  CHECK(cpp[0].data["error"] == "connection refused on port 6379");
  CHECK(arbiter.events("strict.spawn").empty());
  CHECK(arbiter.events("cpp.spawn").empty());
  CHECK(arbiter.events("lenient.spawn").size() == 1);
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("hooks: a vetoed after_start stops the watcher", "[integration][hooks]") {
  TempDir dir;
  Arbiter arbiter(dir, "after.ini", watcher_section("w", "hooks.after_start = " + plugin("refuse") + "\n"));
  auto stop = arbiter.wait_events("w.stop");
  CHECK(arbiter.events("w.spawn").size() == 1);
  CHECK(arbiter.events("w.reap").size() == 1);
  CHECK(arbiter.events("w.start").empty());
  CHECK(arbiter.log().find("its after_start hook refused the start: stopping") != std::string::npos);
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("hooks: a vetoed before_spawn skips that spawn and retries it with backoff", "[integration][hooks]") {
  TempDir dir;
  Arbiter arbiter(dir, "spawn.ini",
                  watcher_section("w", "max_retry = 2\nhooks.before_spawn = " + plugin("refuse") + "\n"));
  auto failed = arbiter.wait_events("w.failed");
  auto refused = arbiter.events("w.spawn_failed");
  REQUIRE(refused.size() == 3);  // the first try and max_retry retries
  for (auto& e : refused) CHECK(e.data["error"] == "its before_spawn hook refused it");
  // Backoff between the tries: 100 ms, then 200 ms.
  CHECK(refused[1].data["time"].get<double>() - refused[0].data["time"].get<double>() >= 0.09);
  CHECK(refused[2].data["time"].get<double>() - refused[1].data["time"].get<double>() >= 0.19);
  CHECK(arbiter.events("w.spawn").empty());
  CHECK(arbiter.events("w.hook_failure").size() == 3);
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("hooks: a vetoed after_spawn stops that process and retries the slot", "[integration][hooks]") {
  TempDir dir;
  Arbiter arbiter(dir, "after_spawn.ini",
                  watcher_section("w", "max_retry = 1\nhooks.after_spawn = " + plugin("refuse") + "\n"));
  arbiter.wait_events("w.failed");
  auto spawns = arbiter.events("w.spawn");
  auto reaps = arbiter.events("w.reap");
  REQUIRE(spawns.size() == 2);
  REQUIRE(reaps.size() == 2);  // each refused process was stopped and reaped
  CHECK(reaps[0].data["process_pid"] == spawns[0].data["process_pid"]);
  CHECK(reaps[0].data["exit_code"] == -SIGTERM);
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("hooks: a vetoed before_signal keeps the stop signal, never SIGKILL", "[integration][hooks]") {
  TempDir dir;
  Arbiter arbiter(dir, "signal.ini",
                  watcher_section("w", "graceful_timeout = 0.5\nhooks.before_signal = " + plugin("refuse") + "\n"));
  arbiter.wait_events("w.start");
  CHECK(arbiter.stop() == 0);
  auto reaps = arbiter.events("w.reap");
  REQUIRE(reaps.size() == 1);
  CHECK(reaps[0].data["exit_code"] == -SIGKILL);  // SIGTERM kept back; SIGKILL cannot be
  CHECK(hook_names(arbiter.events("w.hook_failure")) == std::vector<std::string>{"before_signal", "before_signal"});
  CHECK(arbiter.events("w.kill").size() == 1);
}

TEST_CASE("hooks: a hook past its timeout fails, is cancelled, and shows in dstats", "[integration][hooks]") {
  TempDir dir;
  Arbiter arbiter(dir, "timeout.ini",
                  endpoints(dir) + watcher_section("w", "hooks.before_start = " + plugin("stubborn") +
                                                            "\nhooks.before_start.timeout = 300ms\n"
                                                            "hooks.before_start.options.seconds = 3\n"));
  auto failure = arbiter.wait_events("w.hook_failure");
  CHECK(failure[0].data["error"] == "timed out after 300ms");
  CHECK(failure[0].data["duration_ms"].get<double>() >= 300);
  Client c(fmt::format("ipc://{}/control", dir.path().string()));
  auto hooks = c.call("dstats")["info"]["hooks"];
  CHECK(hooks["timeouts"] == 1);
  CHECK(hooks["abandoned"] == 1);  // the stubborn hook still sleeps
  CHECK(c.call("status", {{"name", "w"}})["status"] == "stopped");
  REQUIRE(wait_until([&] { return c.call("dstats")["info"]["hooks"]["abandoned"] == 0; }, 20s));
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("hooks: a hook sleeping 5 s holds up nothing else", "[integration][hooks]") {
  TempDir dir;
  Arbiter arbiter(dir, "slow.ini",
                  endpoints(dir) +
                      watcher_section("slow", "hooks.before_start = " + plugin("sleepy") +
                                                  "\nhooks.before_start.options.seconds = 5\n") +
                      watcher_section("fast", ""));
  Client c(fmt::format("ipc://{}/control", dir.path().string()));
  arbiter.wait_events("fast.start");
  CHECK(arbiter.events("slow.hook_success").empty());  // still sleeping
  std::vector<double> ms;
  for (int i = 0; i < 9; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    CHECK(c.call("status", {{"name", "slow"}})["status"] == "starting");
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  // And a command that changes something: incr fast.
  CHECK(c.call("incr", {{"name", "fast"}})["numprocesses"] == 2);
  arbiter.wait_events("fast.spawn", 2);
  std::sort(ms.begin(), ms.end());
  INFO("status round trips while the hook sleeps (ms): " << fmt::format("{}", fmt::join(ms, ", ")));
  CHECK(ms[4] < 50);  // the median
  CHECK(arbiter.events("slow.hook_success").empty());
  auto ok = arbiter.wait_events("slow.hook_success");
  CHECK(ok[0].data["duration_ms"].get<double>() >= 5000);
  arbiter.wait_events("slow.start");
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("hooks: an unusable plugin is a config error at load, with file:line", "[integration][hooks]") {
  TempDir dir;
  auto config = dir / "bad.ini";
  write_file(config, watcher_section("w", "hooks.before_start = " + plugin("no_such_hook") + "\n"));
  auto r = run_trapeze(dir, {"run", config.string()});
  CHECK(r.status == 2);
  CHECK(r.err == fmt::format("{}:4: hooks.before_start: plugin '{}' has no function 'no_such_hook'\n",
                             config.string(), TEST_PLUGIN_BEHAVIOURS));
  // A copy that others may write is refused before it is opened.
  auto copy = dir / "open.so";
  fs::copy_file(TEST_PLUGIN_BEHAVIOURS, copy);
  ::chmod(copy.c_str(), 0666);
  write_file(config, watcher_section("w", "hooks.before_start = " + copy.string() + ":go_on\n"));
  r = run_trapeze(dir, {"run", config.string()});
  CHECK(r.status == 2);
  CHECK(r.err.find("bad.ini:4: hooks.before_start: ") != std::string::npos);
  CHECK(r.err.find("writable by") != std::string::npos);
}
