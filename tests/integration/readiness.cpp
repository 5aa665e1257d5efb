// Readiness in the real arbiter: each kind of check against a real child that becomes ready
// at a moment it records (stamp), the ready events, and a check that never passes.
#include "support.hpp"

using namespace trapeze::testing;

namespace {

double stamp_of(const fs::path& p) { return std::stod(read_file(p)); }

// Starts a one-process watcher with `ready` options whose child runs `args`; waits for the
// watcher to be active; returns the process's ready event and the watcher's.
struct Started {
  Event process_ready, watcher_ready;
};

Started start_and_wait(Arbiter& arbiter) {
  auto start = arbiter.wait_events("w.start");
  Started out;
  for (auto& e : arbiter.events("w.ready")) {
    if (e.data.contains("process_pid"))
      out.process_ready = e;
    else
      out.watcher_ready = e;
  }
  REQUIRE(out.process_ready.data.contains("process_pid"));
  return out;
}

std::string config(const std::string& ready, const std::string& args) {
  return fmt::format("[watcher:w]\ncmd = {}\nargs = {}\n{}", child(), args, ready);
}

}  // namespace

TEST_CASE("readiness: tcp, once the port accepts", "[integration][readiness]") {
  TempDir dir;
  int port = free_port();
  auto stamp = dir / "stamp";
  Arbiter arbiter(dir, "tcp.ini",
                  config(fmt::format("ready.tcp = 127.0.0.1:{}\nready.interval = 50ms\n", port),
                         fmt::format("sleep 300 stamp {} serve {}", stamp.string(), port)));
  auto s = start_and_wait(arbiter);
  CHECK(s.process_ready.data["time"].get<double>() >= stamp_of(stamp));
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("readiness: http, once GET answers 2xx with the body", "[integration][readiness]") {
  TempDir dir;
  int port = free_port();
  auto stamp = dir / "stamp";
  Arbiter arbiter(dir, "http.ini",
                  config(fmt::format("ready.http = http://127.0.0.1:{}/health\nready.body = ready\n"
                                     "ready.interval = 50ms\n",
                                     port),
                         fmt::format("sleep 300 stamp {} serve {}", stamp.string(), port)));
  auto s = start_and_wait(arbiter);
  CHECK(s.process_ready.data["time"].get<double>() >= stamp_of(stamp));
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("readiness: exec, once the command exits 0", "[integration][readiness]") {
  TempDir dir;
  auto flag = dir / "flag";
  Arbiter arbiter(dir, "exec.ini",
                  config(fmt::format("ready.exec = test -s {}\nready.interval = 50ms\n", flag.string()),
                         fmt::format("sleep 300 stamp {} forever", flag.string())));
  auto s = start_and_wait(arbiter);
  CHECK(s.process_ready.data["time"].get<double>() >= stamp_of(flag));
  CHECK(zombie_children(arbiter.pid()).empty());  // every probe command was reaped
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("readiness: log, on a line completed after a pause", "[integration][readiness]") {
  TempDir dir;
  auto stamp = dir / "stamp";
  Arbiter arbiter(dir, "log.ini",
                  config("ready.log = Ready to accept connections$\n",
                         fmt::format("print starting partial Ready.to sleep 300 partial x stamp {} sleep 100 "
                                     "print done partial 'Ready to accept' sleep 200 print ' connections' forever",
                                     stamp.string())));
  auto s = start_and_wait(arbiter);
  CHECK(s.process_ready.data["time"].get<double>() >= stamp_of(stamp) + 0.2);
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("readiness: sd_notify READY=1", "[integration][readiness]") {
  TempDir dir;
  auto stamp = dir / "stamp";
  auto env = dir / "env";
  Arbiter arbiter(dir, "notify.ini",
                  config("ready.notify = true\n",
                         fmt::format("sleep 300 notify STATUS=warming stamp {} notify READY=1 forever", stamp.string())));
  auto s = start_and_wait(arbiter);
  CHECK(s.process_ready.data["time"].get<double>() >= stamp_of(stamp));
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("readiness: s6's notification fd", "[integration][readiness]") {
  TempDir dir;
  auto stamp = dir / "stamp";
  Arbiter arbiter(dir, "fd.ini",
                  config("ready.notification_fd = 5\n",
                         fmt::format("sleep 300 stamp {} readyfd 5 forever", stamp.string())));
  auto s = start_and_wait(arbiter);
  CHECK(s.process_ready.data["time"].get<double>() >= stamp_of(stamp));
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("readiness: a check that never passes fails the watcher with the reason", "[integration][readiness]") {
  TempDir dir;
  int port = free_port();
  Arbiter arbiter(dir, "never.ini",
                  config(fmt::format("ready.http = http://127.0.0.1:{}/\nready.interval = 50ms\n"
                                     "ready.start_timeout = 1s\n",
                                     port),
                         fmt::format("serve503 {}", port)));
  auto failed = arbiter.wait_events("w.failed");
  CHECK(failed[0].data["reason"] ==
        fmt::format("not ready after 1s (pid {}: http://127.0.0.1:{}/: status 503)",
                    arbiter.events("w.spawn")[0].data["process_pid"].get<pid_t>(), port));
  CHECK(arbiter.events("w.ready").empty());
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("readiness: a watcher that never gets ready blocks only those after it, until it recovers",
          "[integration][readiness]") {
  TempDir dir;
  auto flag = dir / "flag";
  auto cfg = fmt::format(
      "[watcher:db]\ncmd = {0}\nargs = forever\npriority = 1\nready.exec = test -e {1}\nready.interval = 50ms\n"
      "ready.start_timeout = 1s\n"
      "[watcher:peer]\ncmd = {0}\nargs = forever\npriority = 1\n"
      "[watcher:app]\ncmd = {0}\nargs = forever\npriority = 2\n",
      child(), flag.string());
  Arbiter arbiter(dir, "gate.ini", cfg);
  auto failed = arbiter.wait_events("db.failed");
  auto blocked = arbiter.wait_events("app.start_blocked");
  CHECK(blocked[0].data["blocker"] == "db");
  CHECK(arbiter.events("peer.start").size() == 1);  // same group: not held back
  CHECK(arbiter.events("app.spawn").empty());
  // db recovers: started again, now ready; app follows.
  write_file(flag, "ok\n");
  auto r = run_trapeze(dir, {"-c", arbiter.config().string(), "start", "db"});
  CHECK(r.status == 0);
  arbiter.wait_events("db.start");
  auto app = arbiter.wait_events("app.start");
  auto all = arbiter.events();
  auto seq_of = [&](const std::string& topic) {
    for (auto& e : all)
      if (e.topic == topic) return e.data["seq"].get<long long>();
    return -1LL;
  };
  CHECK(seq_of("watcher.db.start") < seq_of("watcher.app.spawn"));
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("readiness: depends_on orders watchers of one priority", "[integration][readiness]") {
  TempDir dir;
  int port = free_port();
  auto cfg = fmt::format(
      "[watcher:worker]\ncmd = {0}\nargs = forever\ndepends_on = cache\n"
      "[watcher:cache]\ncmd = {0}\nargs = sleep 300 serve {1}\nready.tcp = 127.0.0.1:{1}\nready.interval = 50ms\n",
      child(), port);
  Arbiter arbiter(dir, "deps.ini", cfg);
  arbiter.wait_events("worker.start");
  auto all = arbiter.events();
  long long cache_start = -1, worker_spawn = -1;
  for (auto& e : all) {
    if (e.topic == "watcher.cache.start") cache_start = e.data["seq"];
    if (e.topic == "watcher.worker.spawn" && worker_spawn < 0) worker_spawn = e.data["seq"];
  }
  CHECK(cache_start > 0);
  CHECK(cache_start < worker_spawn);
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("liveness: threshold failures make a check down, restart replaces the processes, then recovery",
          "[integration][readiness]") {
  TempDir dir;
  auto flag = dir / "alive";
  write_file(flag, "yes\n");
  Arbiter arbiter(dir, "live.ini",
                  fmt::format("[watcher:w]\ncmd = {}\nargs = forever\nnumprocesses = 2\n"
                              "check.alive.exec = test -e {}\ncheck.alive.period = 100ms\n"
                              "check.alive.threshold = 3\non_check_failure = restart\n",
                              child(), flag.string()));
  arbiter.wait_events("w.start");
  auto before = arbiter.events("w.spawn");
  REQUIRE(before.size() == 2);
  auto r = run_trapeze(dir, {"-c", arbiter.config().string(), "checks"});
  CHECK(r.status == 0);
  CHECK(r.out.find("w        alive  exec  up") != std::string::npos);
  fs::remove(flag);
  auto failed = arbiter.wait_events("w.check_failed");
  CHECK(failed[0].data["check"] == "alive");
  CHECK(failed[0].data["failures"] == 3);
  CHECK(failed[0].data["error"].get<std::string>().find("exited 1") != std::string::npos);
  // Restarted: both processes replaced.
  arbiter.wait_events("w.spawn", 4);
  for (auto& reap : arbiter.events("w.reap")) CHECK(reap.data["expected"] == true);
  r = run_trapeze(dir, {"-c", arbiter.config().string(), "--json", "checks", "w"});
  auto j = Json::parse(r.out);
  CHECK(j["checks"][0]["status"] == "down");
  write_file(flag, "yes\n");
  auto recovered = arbiter.wait_events("w.check_recovered");
  CHECK(recovered[0].data["check"] == "alive");
  CHECK(arbiter.events("w.check_failed").size() == 1);  // once per time it goes down
  CHECK(arbiter.stop() == 0);
}
