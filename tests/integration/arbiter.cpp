// The arbiter as a whole: signals, reload, daemon mode and its pidfile, systemd's notify
// protocol, streams through the real binary, and what it leaves behind.
#include <sys/socket.h>
#include <sys/un.h>

#include <fmt/format.h>

#include "support.hpp"

using namespace trapeze::testing;

namespace {

std::string watcher(const std::string& name, const std::string& args, const std::string& extra = "") {
  return fmt::format("[watcher:{}]\ncmd = {}\nargs = {}\n{}\n", name, child(), args, extra);
}

// Runs the binary to completion; returns its exit code and what it wrote to stderr.
std::pair<int, std::string> run_command(const std::vector<std::string>& args, const fs::path& err_file) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(err_file)};
}

}  // namespace

TEST_CASE("SIGINT and SIGQUIT stop everything and exit 0, like SIGTERM", "[integration][watcher]") {
  for (int sig : {SIGINT, SIGQUIT}) {
    TempDir dir;
    Arbiter arbiter(dir, "sig.ini", watcher("w", "forever", "numprocesses = 3"));
    auto spawns = arbiter.wait_events("w.spawn", 3);
    CHECK(arbiter.stop(sig) == 0);
    CHECK(arbiter.events("w.reap").size() == 3);
    for (auto& s : spawns) CHECK_FALSE(alive(s.data["process_pid"].get<pid_t>()));
  }
}

TEST_CASE("SIGHUP reloads: changed watchers restart, new ones start, removed ones stop", "[integration][watcher]") {
  // (numprocesses-only changes adjust the count; see the next test for a restart)
  TempDir dir;
  auto hups = dir / "hups";
  auto armed = dir / "armed";  // written once the SIGHUP handler is in place
  std::string same =
      watcher("same", fmt::format("onhup {} pidfile {} forever", hups.string(), armed.string()), "send_hup = true");
  Arbiter arbiter(dir, "reload.ini", same + watcher("changed", "forever") + watcher("removed", "forever"));
  arbiter.wait_events("removed.start");
  arbiter.wait_events("changed.start");
  REQUIRE(wait_until([&] { return fs::exists(armed); }));
  auto same_pid = arbiter.events("same.spawn")[0].data["process_pid"];
  write_file(arbiter.config(),
             same + watcher("changed", "forever", "numprocesses = 2") + watcher("added", "forever"));
  ::kill(arbiter.pid(), SIGHUP);
  arbiter.wait_events("added.start");
  arbiter.wait_events("removed.remove");
  // Only numprocesses changed: one more process, nothing restarted.
  arbiter.wait_events("changed.updated");
  arbiter.wait_events("changed.spawn", 2);
  CHECK(arbiter.events("changed.reap").empty());
  CHECK(arbiter.events("same.spawn").size() == 1);
  CHECK(alive(same_pid.get<pid_t>()));
  CHECK(arbiter.events("arbiter.reload").size() == 1);
  // Unchanged, with send_hup: told to reread its files, not restarted.
  REQUIRE(wait_until([&] { return read_file(hups) == "HUP\n"; }));

  // A broken config is refused and everything keeps running.
  write_file(arbiter.config(), "[watcher:same]\nnumprocesses = many\n");
  ::kill(arbiter.pid(), SIGHUP);
  REQUIRE(wait_until([&] { return arbiter.log().find("reload refused") != std::string::npos; }));
  CHECK(arbiter.log().find("numprocesses") != std::string::npos);
  CHECK(alive(same_pid.get<pid_t>()));
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("SIGHUP reload replaces the processes of a watcher whose command changed", "[integration][watcher]") {
  TempDir dir;
  Arbiter arbiter(dir, "reload2.ini", watcher("w", "forever"));
  arbiter.wait_events("w.start");
  write_file(arbiter.config(), watcher("w", "sleep 100000"));
  ::kill(arbiter.pid(), SIGHUP);
  arbiter.wait_events("w.updated");
  // Rolled, not stopped: the old process goes, its replacement runs the new command.
  arbiter.wait_events("w.rollout_done");
  CHECK(arbiter.events("w.start").size() == 1);
  auto reaps = arbiter.events("w.reap");
  REQUIRE(reaps.size() == 1);
  CHECK(reaps[0].data["exit_code"] == -SIGTERM);
  CHECK(arbiter.events("w.spawn").size() == 2);
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("a second arbiter for the same config: --daemon exits 0, foreground exits 1", "[integration][watcher]") {
  TempDir dir;
  auto config = dir / "d.ini";
  auto pidfile = dir / "d.pid";
  auto events = dir / "events.jsonl";
  auto marker = dir / "child.pid";
  write_file(config, watcher("w", fmt::format("pidfile {} forever", marker.string())));
  std::vector<std::string> args = {TRAPEZE_BINARY, "run", config.string(), "--daemon", "--pidfile", pidfile.string(),
                                   "--events-file", events.string(), "--log-output", (dir / "d.log").string()};
  auto [rc, err] = run_command(args, dir / "err1");
  REQUIRE(rc == 0);
  // The daemon wrote its pid before the first process returned.
  pid_t daemon = std::stoi(read_file(pidfile));
  CHECK(alive(daemon));
  CHECK(getsid(daemon) != getsid(0));  // a session of its own
  REQUIRE(wait_until([&] { return fs::exists(marker); }));

  auto [rc2, err2] = run_command(args, dir / "err2");
  CHECK(rc2 == 0);
  // As root, the config's own warning (w has no uid) comes first, as at every start.
  std::string root_warning = geteuid() == 0 ? config.string() +
                                                  ":1: warning: uid: the arbiter runs as root and no uid is given: "
                                                  "the processes of watcher w will run as root\n"
                                            : "";
  CHECK(err2 == root_warning + fmt::format("trapeze: an arbiter already runs for {} (pid {}, pidfile {})\n",
                                           config.string(), daemon, pidfile.string()));
  std::vector<std::string> foreground(args);
  foreground.erase(std::find(foreground.begin(), foreground.end(), "--daemon"));
  CHECK(run_command(foreground, dir / "err3").first == 1);

  // The daemon holds no fd of its caller: only its own (log, pidfile, loop, pipes of its child).
  std::string fd2 = fs::read_symlink(fmt::format("/proc/{}/fd/2", daemon)).string();
  CHECK(fd2 == (dir / "d.log").string());
  CHECK(fs::read_symlink(fmt::format("/proc/{}/fd/0", daemon)).string() == "/dev/null");

  ::kill(daemon, SIGTERM);
  REQUIRE(wait_until([&] { return !alive(daemon); }));
  CHECK_FALSE(fs::exists(pidfile));
  CHECK_FALSE(alive(std::stoi(read_file(marker))));
}

TEST_CASE("under systemd: READY=1 once every watcher is active, STOPPING=1 on shutdown", "[integration][watcher]") {
  TempDir dir;
  auto sock_path = dir / "notify.sock";
  int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(sock >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, sock_path.c_str(), sizeof addr.sun_path - 1);
  REQUIRE(bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  std::string env = "NOTIFY_SOCKET=" + sock_path.string();
  Arbiter arbiter(dir, "notify.ini", watcher("w", "forever", "warmup_delay = 0.2"), {}, {env});

  auto receive = [&] {
    char buf[512];
    std::string got;
    REQUIRE(wait_until([&] {
      ssize_t n = recv(sock, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) got.assign(buf, static_cast<std::size_t>(n));
      return n > 0;
    }));
    return got;
  };
  std::string ready = receive();
  CHECK(ready.rfind("READY=1\n", 0) == 0);
  // Sent only after the watcher was active.
  CHECK(arbiter.events("w.start").size() == 1);
  CHECK(arbiter.stop() == 0);
  CHECK(receive() == "STOPPING=1");
  ::close(sock);
}

TEST_CASE("streams: FileStream rotation, StdoutStream prefixes, time_format", "[integration][watcher]") {
  TempDir dir;
  auto log = dir / "out.log";
  auto timed = dir / "timed.log";
  Arbiter arbiter(
      dir, "streams.ini",
      watcher("rot", "spam 5000 exit 0",
              fmt::format("respawn = false\nstdout_stream.class = FileStream\nstdout_stream.filename = {}\n"
                          "stdout_stream.max_bytes = 1000\nstdout_stream.backup_count = 2\n",
                          log.string())) +
          watcher("stamped", "print hello partial tail exit 0",
                  fmt::format("respawn = false\nstdout_stream.class = FileStream\nstdout_stream.filename = {}\n"
                              "stdout_stream.time_format = %Y\n",
                              timed.string())));
  arbiter.wait_events("rot.reap");
  auto reap = arbiter.wait_events("stamped.reap");
  CHECK(fs::file_size(log) <= 1000);
  CHECK(fs::file_size(dir / "out.log.1") <= 1000);
  CHECK(fs::exists(dir / "out.log.2"));
  CHECK_FALSE(fs::exists(dir / "out.log.3"));
  pid_t pid = reap[0].data["process_pid"];
  std::string year = fmt::format("{:%Y}", fmt::localtime(std::time(nullptr)));
  CHECK(read_file(timed) == fmt::format("{0} [{1}] | hello\n{0} [{1}] | tail\n", year, pid));
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("an arbiter that respawned 20 times holds no more fds than at start", "[integration][watcher]") {
  TempDir dir;
  Arbiter arbiter(dir, "fds.ini",
                  watcher("w", "sleep 20 exit 0", "check_flapping = false\nmin_uptime = 0\nmax_retry = -1") +
                      watcher("steady", "forever"));
  arbiter.wait_events("steady.start");
  // The count moves as w's process comes and goes (a pidfd and two pipes): compare the most
  // seen over the first respawns with the least seen after many. A leak of one fd per
  // respawn would put the second 15 or more above the first.
  std::size_t early_max = 0, late_min = SIZE_MAX;
  REQUIRE(wait_until([&] {
    std::size_t n = open_fd_count(arbiter.pid());
    std::size_t reaps = arbiter.events("w.reap").size();
    if (reaps < 5) early_max = std::max(early_max, n);
    if (reaps >= 20) late_min = std::min(late_min, n);
    return reaps >= 25;
  }, std::chrono::seconds(60)));
  INFO("early max " << early_max << ", late min " << late_min);
  CHECK(early_max > 0);
  CHECK(late_min <= early_max);
  CHECK(zombie_children(arbiter.pid()).empty());
  CHECK(arbiter.stop() == 0);
}
