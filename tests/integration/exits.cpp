// Exactly one spawn and one final reap per process, whoever ended it, and the reap only after
// the output was written.
#include <fmt/format.h>

#include <map>

#include "support.hpp"

using namespace trapeze::testing;

TEST_CASE("the reap comes after the output: a child exits with its output still in the pipe",
          "[integration][watcher]") {
  TempDir dir;
  auto out = dir / "out.log";
  // 3 MB: more than the pipe holds, so most of it is still unread when the child has exited.
  Arbiter arbiter(dir, "buffered.ini",
                  fmt::format("[watcher:w]\ncmd = {}\nargs = spam 3000000 exit 0\nrespawn = false\n"
                              "stdout_stream.class = FileStream\nstdout_stream.filename = {}\n",
                              child(), out.string()));
  arbiter.wait_events("w.reap");
  // No waiting here: by the time the reap is published, every byte is in the file.
  CHECK(fs::file_size(out) == 3000000);
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("the reap waits for a grandchild that keeps stdout open", "[integration][watcher]") {
  TempDir dir;
  auto gc = (dir / "gc.pid").string();
  auto me = (dir / "child.pid").string();
  Arbiter arbiter(
      dir, "gc.ini",
      fmt::format("[watcher:w]\ncmd = {}\nargs = pidfile {} grandchild {} exit 0\nrespawn = false\n", child(),
                  me, gc));
  REQUIRE(wait_until([&] { return fs::exists(gc) && fs::exists(me); }));
  pid_t pid = std::stoi(read_file(me));
  pid_t grandchild = std::stoi(read_file(gc));
  // The child is gone (collected by the arbiter) ...
  REQUIRE(wait_until([&] { return !alive(pid) && zombie_children(arbiter.pid()).empty(); }));
  // ... but its stdout is still open in the grandchild: no reap yet.
  CHECK(arbiter.events("w.reap").empty());
  ::kill(grandchild, SIGKILL);
  auto reaps = arbiter.wait_events("w.reap");
  CHECK(reaps[0].data["process_pid"] == pid);
  CHECK(reaps[0].data["exit_code"] == 0);
  CHECK(arbiter.stop() == 0);
  CHECK(arbiter.events("w.reap").size() == 1);
}

TEST_CASE("500 children killed at once: one reap each, no zombie", "[integration][watcher]") {
  TempDir dir;
  Arbiter arbiter(
      dir, "many.ini",
      fmt::format("[watcher:w]\ncmd = {}\nargs = forever\nnumprocesses = 500\nrespawn = false\n", child()));
  auto spawns = arbiter.wait_events("w.spawn", 500, std::chrono::seconds(60));
  arbiter.wait_events("w.start");
  for (auto& s : spawns) ::kill(s.data["process_pid"].get<pid_t>(), SIGKILL);
  auto reaps = arbiter.wait_events("w.reap", 500, std::chrono::seconds(60));
  std::map<pid_t, int> count;
  for (auto& r : reaps) {
    ++count[r.data["process_pid"].get<pid_t>()];
    CHECK(r.data["exit_code"] == -SIGKILL);
  }
  CHECK(count.size() == 500);
  for (auto& s : spawns) CHECK(count[s.data["process_pid"].get<pid_t>()] == 1);
  CHECK(zombie_children(arbiter.pid()).empty());
  CHECK(arbiter.stop() == 0);
  CHECK(arbiter.events("w.reap").size() == 500);
}

TEST_CASE("every spawn has exactly one reap across crash, max_age and stop", "[integration][watcher]") {
  TempDir dir;
  Arbiter arbiter(dir, "mix.ini",
                  fmt::format("[watcher:crash]\ncmd = {0}\nargs = sleep 50 exit 1\nmin_uptime = 0\n"
                              "check_flapping = false\nmax_retry = -1\n"
                              "[watcher:aging]\ncmd = {0}\nargs = forever\nnumprocesses = 3\nmax_age = 0.2\n"
                              "max_age_variance = 0.1\n",
                              child()));
  arbiter.wait_events("crash.spawn", 6);
  arbiter.wait_events("aging.spawn", 9);
  CHECK(arbiter.stop() == 0);
  std::map<pid_t, int> spawned, reaped;
  for (auto& e : arbiter.events()) {
    if (e.topic.ends_with(".spawn")) ++spawned[e.data["process_pid"].get<pid_t>()];
    if (e.topic.ends_with(".reap")) ++reaped[e.data["process_pid"].get<pid_t>()];
  }
  CHECK(spawned == reaped);
  for (auto& [pid, n] : spawned) CHECK(n == 1);
}
