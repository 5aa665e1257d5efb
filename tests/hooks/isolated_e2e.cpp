// Isolated hooks in the real arbiter: a plugin that dereferences NULL in before_start, with
// isolate = true, fails its hook and nothing else; vetoes, errors and logs cross the host
// boundary; a hung host is killed at its timeout and leaves no zombie; run and check load an
// isolated plugin in a host. (The same segfaulting hook without isolate is not tested: it
// would kill the arbiter, which is the reason isolate exists.)
#include "../bus/zmq_support.hpp"

using namespace trapeze::testing;

namespace {

std::string crashy(const char* symbol) {
  return fmt::format("{}:{}", TEST_PLUGIN_CRASHY, symbol);
}
std::string behaviours(const char* symbol) {
  return fmt::format("{}:{}", TEST_PLUGIN_BEHAVIOURS, symbol);
}

std::string watcher_section(const std::string& name, const std::string& extra) {
  return fmt::format("[watcher:{}]\ncmd = {}\nargs = forever\n{}", name, child(), extra);
}

// A hook host or a zombie among the children of `arbiter`.
bool any_host_or_zombie(pid_t arbiter) {
  for (const auto& p : processes()) {
    if (p.ppid != arbiter) continue;
    if (p.state == 'Z' || read_file(fmt::format("/proc/{}/cmdline", p.pid)).find("hook-host") != std::string::npos)
      return true;
  }
  return false;
}

}  // namespace

TEST_CASE("isolated hooks: a segfaulting before_start fails the hook, the arbiter serves on",
          "[integration][hooks]") {
  TempDir dir;
  const std::string hook = "hooks.before_start = " + crashy("segfault");
  Arbiter arbiter(dir, "segv.ini",
                  endpoints(dir) + watcher_section("strict", hook + "\nhooks.before_start.isolate = true\n") +
                      watcher_section("lenient", hook + ", true\nhooks.before_start.isolate = true\n"));
  auto strict = arbiter.wait_events("strict.hook_failure");
  CHECK(strict[0].data["name"] == "before_start");
  CHECK(strict[0].data["error"] == "crashed: SIGSEGV");
  auto lenient = arbiter.wait_events("lenient.hook_failure");
  CHECK(lenient[0].data["error"] == "crashed: SIGSEGV");
  // ignore_hook_failure: the start goes on; without it, the start is aborted.
  arbiter.wait_events("lenient.start");
  CHECK(arbiter.events("lenient.spawn").size() == 1);
  CHECK(arbiter.events("strict.spawn").empty());
  CHECK(arbiter.events("strict.start").empty());

  Client c(fmt::format("ipc://{}/control", dir.path().string()));
  CHECK(c.call("status")["statuses"] == Json({{"lenient", "active"}, {"strict", "stopped"}}));
  // Asked again, it crashes again, and the arbiter is still there to say so.
  c.call("start", {{"name", "strict"}});
  auto again = arbiter.wait_events("strict.hook_failure", 2);
  CHECK(again[1].data["error"] == "crashed: SIGSEGV");
  CHECK(c.call("status", {{"name", "strict"}})["status"] == "stopped");
  CHECK(c.call("dstats")["info"]["hooks"]["abandoned"] == 0);
  // What the hook logged before it crashed reached the arbiter's log.
  CHECK(arbiter.log().find("watcher strict: hook before_start: about to dereference NULL") !=
        std::string::npos);
  CHECK(arbiter.log().find("watcher strict: hook before_start failed: crashed: SIGSEGV") !=
        std::string::npos);
  CHECK_FALSE(any_host_or_zombie(arbiter.pid()));
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("isolated hooks: a veto, an error message and a log line cross from the host",
          "[integration][hooks]") {
  TempDir dir;
  Arbiter arbiter(dir, "answers.ini",
                  endpoints(dir) +
                      watcher_section("vetoed", "hooks.before_start = " + behaviours("refuse") +
                                                    "\nhooks.before_start.isolate = true\n") +
                      watcher_section("failing", "hooks.before_start = " + behaviours("fail") +
                                                     "\nhooks.before_start.isolate = true\n"
                                                     "hooks.before_start.options.message = redis said no\n") +
                      watcher_section("chatty", "hooks.after_spawn = " + crashy("chatty") +
                                                    "\nhooks.after_spawn.isolate = true\n"
                                                    "hooks.after_spawn.options.text = from pid land\n"));
  CHECK(arbiter.wait_events("vetoed.hook_failure")[0].data["error"] == "vetoed");
  CHECK(arbiter.wait_events("failing.hook_failure")[0].data["error"] == "redis said no");
  auto ok = arbiter.wait_events("chatty.hook_success");
  CHECK(ok[0].data["name"] == "after_spawn");
  arbiter.wait_events("chatty.start");
  CHECK(
      arbiter.log().find("[warning] watcher chatty: hook after_spawn: a word from the host: from pid land") !=
      std::string::npos);
  Client c(fmt::format("ipc://{}/control", dir.path().string()));
  CHECK(c.call("status")["statuses"] ==
        Json({{"chatty", "active"}, {"failing", "stopped"}, {"vetoed", "stopped"}}));
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("isolated hooks: a hung host is killed at its timeout and leaves no zombie",
          "[integration][hooks]") {
  TempDir dir;
  Arbiter arbiter(dir, "hang.ini",
                  endpoints(dir) + watcher_section("w", "hooks.before_start = " + crashy("hangs") +
                                                            "\nhooks.before_start.isolate = true\n"
                                                            "hooks.before_start.timeout = 300ms\n"));
  auto failure = arbiter.wait_events("w.hook_failure");
  CHECK(failure[0].data["error"] == "timed out after 300ms");
  CHECK(failure[0].data["duration_ms"].get<double>() >= 300);
  Client c(fmt::format("ipc://{}/control", dir.path().string()));
  auto hooks = c.call("dstats")["info"]["hooks"];
  CHECK(hooks["timeouts"] == 1);
  CHECK(hooks["abandoned"] == 0);  // unlike an in-process hook: the host was killed, the thread is back
  CHECK(c.call("status", {{"name", "w"}})["status"] == "stopped");
  // The result is posted only after the host was reaped: no host, no zombie, right now.
  CHECK_FALSE(any_host_or_zombie(arbiter.pid()));
  CHECK(arbiter.log().find("watcher w: hook before_start timed out after 300ms; its host (pid ") !=
        std::string::npos);
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("isolated hooks: run and check load the plugin in a host, never in trapeze",
          "[integration][hooks]") {
  TempDir dir;
  auto config = dir / "isolated.ini";
  write_file(config, watcher_section("w", "hooks.before_start = " + behaviours("no_such_hook") +
                                              "\nhooks.before_start.isolate = true\n"));
  auto r = run_trapeze(dir, {"run", config.string()});
  CHECK(r.status == 2);
  CHECK(r.err == fmt::format("{}:4: hooks.before_start: plugin '{}' has no function 'no_such_hook'\n",
                             config.string(), TEST_PLUGIN_BEHAVIOURS));
  r = run_trapeze(dir, {"check", config.string()});
  CHECK(r.status == 2);
  CHECK(r.err.find("hooks.before_start: plugin '") != std::string::npos);

  // A plugin whose hooks crash loads fine: check passes and shows isolate.
  write_file(config, watcher_section("w", "hooks.before_start = " + crashy("segfault") +
                                              "\nhooks.before_start.isolate = true\n"));
  r = run_trapeze(dir, {"check", config.string()});
  CHECK(r.status == 0);
  CHECK(r.out.find("isolate = true") != std::string::npos);

  // A plugin whose constructor crashes is opened in a host only: check survives to say so.
  write_file(config, watcher_section("w", fmt::format("hooks.before_start = {}:never_reached\n"
                                                      "hooks.before_start.isolate = true\n",
                                                      TEST_PLUGIN_CTOR_CRASH)));
  r = run_trapeze(dir, {"check", config.string()});
  CHECK(r.status == 2);
  // As root, the warning for a watcher without uid follows the plugin's error.
  std::string root_warning = geteuid() == 0 ? config.string() +
                                                  ":1: warning: uid: the arbiter runs as root and no uid is given: "
                                                  "the processes of watcher w will run as root\n"
                                            : "";
  CHECK(r.err == fmt::format("{}:4: hooks.before_start: cannot load plugin '{}' in a hook host: crashed: SIGSEGV\n",
                             config.string(), TEST_PLUGIN_CTOR_CRASH) +
                     root_warning);
  r = run_trapeze(dir, {"run", config.string()});
  CHECK(r.status == 2);
  CHECK(r.err.find("in a hook host: crashed: SIGSEGV") != std::string::npos);

  // The host subcommand is not for people: not in --help, and it says so when run.
  r = run_trapeze(dir, {"--help"});
  CHECK(r.out.find("hook-host") == std::string::npos);
  r = run_trapeze(dir, {"hook-host"});
  CHECK(r.status == 2);
  CHECK(r.err == "trapeze hook-host: fd 3 is not a socket: trapeze starts this itself, for isolated hooks\n");
}
