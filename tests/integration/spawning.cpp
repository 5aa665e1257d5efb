// What a child gets: its fds, environment, limits, user, process group; and how a failed
// exec is reported.
#include <fmt/format.h>

#include "support.hpp"

using namespace trapeze::testing;

TEST_CASE("a child inherits only 0, 1 and 2, in its own process group", "[integration][watcher]") {
  TempDir dir;
  auto fds = dir / "fds";
  auto me = dir / "pid";
  Arbiter arbiter(dir, "fds.ini",
                  fmt::format("[watcher:w]\ncmd = {}\nargs = pidfile {} fds {} forever\n", child(),
                              me.string(), fds.string()));
  REQUIRE(wait_until([&] { return fs::exists(fds) && fs::exists(me); }));
  CHECK(read_file(fds) == "0\n1\n2\n");
  pid_t pid = std::stoi(read_file(me));
  CHECK(getpgid(pid) == pid);
  CHECK(proc_status(pid, "SigBlk") == "0000000000000000");
  CHECK(proc_status(pid, "SigIgn") == "0000000000000000");  // the arbiter ignores SIGPIPE
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("environment: only the config's variables, or the arbiter's with copy_env",
          "[integration][watcher]") {
  TempDir dir;
  auto a = dir / "a.out";
  auto b = dir / "b.out";
  Arbiter arbiter(
      dir, "env.ini",
      fmt::format(
          "[watcher:bare]\ncmd = {0}\nargs = env FROM_CONFIG env FROM_ARBITER env NOTIFY_SOCKET exit 0\n"
          "respawn = false\nstdout_stream.class = FileStream\nstdout_stream.filename = {1}\n"
          "[env:bare]\nFROM_CONFIG = yes\n"
          "[watcher:copied]\ncmd = {0}\nargs = env FROM_CONFIG env FROM_ARBITER env NOTIFY_SOCKET exit 0\n"
          "copy_env = true\nrespawn = false\n"
          "stdout_stream.class = FileStream\nstdout_stream.filename = {2}\n",
          child(), a.string(), b.string()),
      {}, {"FROM_ARBITER=inherited", "NOTIFY_SOCKET=/nonexistent/notify"});
  arbiter.wait_events(".reap", 2);
  CHECK(read_file(a) == "FROM_CONFIG=yes\nFROM_ARBITER unset\nNOTIFY_SOCKET unset\n");
  CHECK(read_file(b) == "FROM_CONFIG unset\nFROM_ARBITER=inherited\nNOTIFY_SOCKET unset\n");
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("rlimits and umask apply to the child", "[integration][watcher]") {
  TempDir dir;
  auto me = dir / "pid";
  Arbiter arbiter(dir, "limits.ini",
                  fmt::format("[watcher:w]\ncmd = {}\nargs = pidfile {} forever\nrlimit_nofile = 123\n"
                              "rlimit_core = 0\numask = 027\n",
                              child(), me.string()));
  REQUIRE(wait_until([&] { return fs::exists(me); }));
  pid_t pid = std::stoi(read_file(me));
  std::string limits = read_file(fmt::format("/proc/{}/limits", pid));
  CHECK_THAT(limits, Catch::Matches(R"((.|\n)*Max open files\s+123\s+123\s+files(.|\n)*)"));
  CHECK_THAT(limits, Catch::Matches(R"((.|\n)*Max core file size\s+0\s+0\s+bytes(.|\n)*)"));
  CHECK(proc_status(pid, "Umask") == "0027");
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("uid and gid: the child runs as the user and group given", "[integration][watcher]") {
  if (geteuid() != 0) {
    WARN("not root: uid/gid drop not tested");
    return;
  }
  TempDir dir;
  fs::permissions(dir.path(), fs::perms::all);  // nobody writes its pidfile here
  auto me = dir / "pid";
  Arbiter arbiter(dir, "uid.ini",
                  fmt::format("[watcher:w]\ncmd = {}\nargs = pidfile {} forever\nuid = nobody\ngid = 65534\n",
                              child(), me.string()));
  REQUIRE(wait_until([&] { return fs::exists(me); }));
  pid_t pid = std::stoi(read_file(me));
  CHECK(proc_status(pid, "Uid") == "65534\t65534\t65534\t65534");
  CHECK(proc_status(pid, "Gid") == "65534\t65534\t65534\t65534");
  CHECK(proc_status(pid, "Groups") == "65534");
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("a failed exec is reported with its errno and counted as a failed start",
          "[integration][watcher]") {
  TempDir dir;
  Arbiter arbiter(dir, "noexec.ini", "[watcher:w]\ncmd = /nonexistent/server\nmax_retry = 2\n");
  auto failed = arbiter.wait_events("w.failed");
  CHECK(failed[0].data["reason"] ==
        "cannot spawn: cannot exec '/nonexistent/server': No such file or directory");
  CHECK(arbiter.events("w.spawn_failed").size() == 3);
  CHECK(arbiter.events("w.spawn").empty());
  CHECK(
      arbiter.log().find("watcher w: cannot spawn process 1: cannot exec '/nonexistent/server': No such file "
                         "or directory") != std::string::npos);
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("working_dir that does not exist fails the spawn with its name", "[integration][watcher]") {
  TempDir dir;
  Arbiter arbiter(
      dir, "cwd.ini",
      fmt::format("[watcher:w]\ncmd = {}\nargs = forever\nworking_dir = /nonexistent/dir\nmax_retry = 0\n",
                  child()));
  auto failed = arbiter.wait_events("w.failed");
  CHECK(failed[0].data["reason"] ==
        "cannot spawn: cannot change directory to '/nonexistent/dir': No such file or directory");
  CHECK(arbiter.stop() == 0);
}
