// Who can reach the arbiter and what its children run as: the events socket is private like
// the control socket, a uid drop takes the supplementary groups with it, plugins come only
// from the plugin directories, env values never reach an event or the log, and a watcher
// that would run as root says so.
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "faults.hpp"

using namespace trapeze::testing;

namespace {

// "arbiter: control on ipc://A, events on ipc://B" -> B
std::string logged_events_path(const std::string& log) {
  auto at = log.find(", events on ipc://");
  REQUIRE(at != std::string::npos);
  at += std::strlen(", events on ipc://");
  return log.substr(at, log.find('\n', at) - at);
}

// In a child that became `uid`: connect(2) to the unix socket at `path`; returns its errno
// (0: connected), or -1 if the child could not become `uid`.
int connect_as(uid_t uid, gid_t gid, const std::string& path) {
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setgid(gid) != 0 || setuid(uid) != 0) _exit(255);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) _exit(0);
    _exit(errno & 0x7f);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) == 255) return -1;
  return WEXITSTATUS(status);
}

}  // namespace

TEST_CASE("security: the default events socket, like the control socket, refuses another uid",
          "[integration][faults][security]") {
  // tests/bus/control.cpp checks the control socket; this is the PUB side.
  TempDir dir;
  Arbiter arbiter(dir, "private.ini", fmt::format("[watcher:w]\ncmd = {}\nargs = forever\n", child()));
  arbiter.wait_events("w.start");
  std::string path = logged_events_path(arbiter.log());
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(::stat(fs::path(path).parent_path().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  CHECK(st.st_uid == geteuid());
  if (geteuid() != 0) {
    WARN("not root: no second uid to try; only the modes are checked");
    CHECK(arbiter.stop() == 0);
    return;
  }
  CHECK(connect_as(0, 0, path) == 0);  // the owner gets in
  CHECK(connect_as(65534, 65534, path) == EACCES);
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("security: a uid or gid drop leaves none of the arbiter's supplementary groups",
          "[integration][faults][security]") {
  // tests/integration/spawning.cpp checks uid and gid together; here the arbiter itself holds
  // extra groups (adm, sudo), and each way of dropping must shed them.
  if (geteuid() != 0) {
    WARN("not root: no uid/gid drop to test");
    return;
  }
  TempDir dir;
  fs::permissions(dir.path(), fs::perms::all);  // nobody writes its pidfile here
  std::vector<gid_t> saved(static_cast<std::size_t>(getgroups(0, nullptr)));
  getgroups(static_cast<int>(saved.size()), saved.data());
  const gid_t extra[] = {4, 27};
  REQUIRE(setgroups(2, extra) == 0);  // inherited by the arbiter forked next
  Arbiter arbiter(
      dir, "drop.ini",
      fmt::format("[watcher:user]\ncmd = {0}\nargs = pidfile {1}/user forever\nuid = nobody\n"
                  "[watcher:both]\ncmd = {0}\nargs = pidfile {1}/both forever\nuid = 65534\ngid = nogroup\n"
                  "[watcher:group]\ncmd = {0}\nargs = pidfile {1}/group forever\ngid = nogroup\n"
                  "[watcher:root]\ncmd = {0}\nargs = pidfile {1}/root forever\n",
                  child(), dir.path().string()));
  REQUIRE(setgroups(saved.size(), saved.data()) == 0);
  for (const char* w : {"user", "both", "group", "root"})
    REQUIRE(wait_until([&] { return fs::exists(dir / w); }));
  auto pid = [&](const char* w) { return static_cast<pid_t>(std::stoi(read_file(dir / w))); };
  CHECK(proc_status(arbiter.pid(), "Groups") == "4 27");
  CHECK(proc_status(pid("root"), "Groups") == "4 27");  // no drop asked: the arbiter's own
  for (const char* w : {"user", "both"}) {
    INFO(w);
    CHECK(proc_status(pid(w), "Uid") == "65534\t65534\t65534\t65534");
    CHECK(proc_status(pid(w), "Gid") == "65534\t65534\t65534\t65534");
    CHECK(proc_status(pid(w), "Groups") == "65534");  // nobody's group list: nogroup alone
  }
  CHECK(proc_status(pid("group"), "Uid") == "0\t0\t0\t0");
  CHECK(proc_status(pid("group"), "Gid") == "65534\t65534\t65534\t65534");
  CHECK(proc_status(pid("group"), "Groups") == "65534");
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("security: env values reach no event and no log line", "[integration][faults][security]") {
  TempDir dir;
  const std::string secret = "s3cr3t-Value-9f2c", inherited = "inh3rited-Token-77ab",
                    changed = "ch4nged-Value-31d0";
  auto config = [&](const std::string& value) {
    return circus_section(dir) +
           fmt::format("[watcher:app]\ncmd = {0}\nargs = sleep 100 exit 1\nmin_uptime = 0.05\ncheck_flapping = false\n"
                       "[env:app]\nDB_PASSWORD = {1}\n"
                       "[watcher:copier]\ncmd = {0}\nargs = forever\ncopy_env = true\n"
                       "ready.exec = {0} exit 0\n"
                       "[env:copier]\nDB_PASSWORD = {1}\n",
                       child(), value);
  };
  Arbiter arbiter(dir, "secret.ini", config(secret), {}, {"API_TOKEN=" + inherited});
  EventTail tail(events_file(dir));
  Client control(control_endpoint(dir));
  Subscriber bus(events_endpoint(dir), control);
  std::vector<Event> seen;
  auto drain = [&] {
    while (auto e = bus.next(10ms)) seen.push_back(*e);
  };
  tail.wait(arbiter, "copier.start", 1, 20s);
  tail.wait(arbiter, "app.reap", 3, 20s);
  // The values do reach the children (the test would prove nothing if they were not set).
  auto environ_of_copier = [&] {
    auto pids = control.call("list", {{"name", "copier"}})["pids"];
    REQUIRE(!pids.empty());
    return read_file(fmt::format("/proc/{}/environ", pids[0].get<pid_t>()));
  };
  std::string env = environ_of_copier();
  CHECK(env.find("DB_PASSWORD=" + secret) != std::string::npos);
  CHECK(env.find("API_TOKEN=" + inherited) != std::string::npos);
  // Everything that publishes or logs about a watcher: queries, a count change, a restart,
  // a reload that changes the value (its processes are replaced by a rollout), a stop.
  for (const char* q : {"status", "list", "stats", "options", "dstats"}) control.call(q, {{"name", "app"}});
  control.call("incr", {{"name", "copier"}});
  control.call("restart", {{"name", "app"}});
  write_file(arbiter.config(), config(changed));
  control.call("reloadconfig");
  tail.wait(arbiter, "app.rollout_done", 1, 20s);
  tail.wait(arbiter, "app.reap", tail.count("app.reap") + 3, 20s);
  tail.wait(arbiter, "copier.rollout_done", 1, 20s);
  CHECK(environ_of_copier().find("DB_PASSWORD=" + changed) != std::string::npos);
  drain();
  CHECK(arbiter.stop() == 0);
  drain();

  std::string everything = read_file(events_file(dir)) + "\n" + arbiter.log();
  for (auto& e : seen) everything += e.topic + " " + e.data.dump() + "\n";
  CHECK(seen.size() > 20);
  CHECK(everything.find("DB_PASSWORD") == std::string::npos);
  for (const auto& value : {secret, inherited, changed}) {
    INFO(value);
    CHECK(everything.find(value) == std::string::npos);
  }
}

TEST_CASE("security: a watcher that would run as root while the arbiter runs as root gets a warning",
          "[integration][faults][security]") {
  if (geteuid() != 0) {
    WARN("not root: the warning is for root only (tests/conf covers the rule)");
    return;
  }
  TempDir dir;
  auto config = dir / "root.ini";
  write_file(config, fmt::format("[watcher:asroot]\ncmd = {0}\nargs = forever\n"
                                 "[watcher:dropped]\ncmd = {0}\nargs = forever\nuid = nobody\n",
                                 child()));
  auto r = run_trapeze(dir, {"check", config.string()});
  CHECK(r.status == 0);
  CHECK(r.err == config.string() +
                     ":1: warning: uid: the arbiter runs as root and no uid is given: the processes of "
                     "watcher asroot will run as root\n");
  // trapeze run says the same at start: here a second run of the same config, which prints its
  // warnings and then finds the first one running.
  std::string warning = r.err;
  Arbiter arbiter(dir, "root.ini", read_file(config));
  arbiter.wait_events("asroot.start");
  r = run_trapeze(dir, {"run", config.string(), "--pidfile", (dir / "arbiter.pid").string()});
  CHECK(r.status == 1);
  CHECK(r.err.rfind(warning, 0) == 0);
  CHECK(r.err.find("an arbiter already runs") != std::string::npos);
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("security: a dotted hook name is looked up only in plugin_dirs", "[integration][faults][security]") {
  // Writable plugin files are refused: tests/conf/bad_configs.cpp ("a hook plugin writable by
  // group or others is refused") and tests/hooks/end_to_end.cpp (at load, through trapeze run).
  TempDir dir;
  fs::create_directories(dir / "plugins");
  fs::create_directories(dir / "evil");
  fs::copy_file(TRAPEZE_STOCK_PLUGIN, dir / "evil" / "hooks.so");
  ::chmod((dir / "evil" / "hooks.so").c_str(), 0755);
  auto config = dir / "hooked.ini";
  std::string text = fmt::format("[circus]\nplugin_dirs = {}\n[watcher:w]\ncmd = {}\nargs = forever\nuid = nobody\n"
                                 "hooks.before_start = evil.hooks.wait_file\n",
                                 (dir / "plugins").string(), child());
  write_file(config, text);
  // Beside the config, but the config named its plugin directories: not looked at.
  auto r = run_trapeze(dir, {"check", config.string()});
  CHECK(r.status != 0);
  CHECK(r.err.find(":7: hooks.before_start: cannot find evil/hooks.so or evil.hooks.so for hook "
                   "'evil.hooks.wait_file' in the plugin directories: " +
                   (dir / "plugins").string()) != std::string::npos);
  // In a plugin directory, and not writable by others: loaded.
  fs::create_directories(dir / "plugins" / "evil");
  fs::copy_file(dir / "evil" / "hooks.so", dir / "plugins" / "evil" / "hooks.so");
  r = run_trapeze(dir, {"check", config.string()});
  CHECK(r.status == 0);
  // The same file made group-writable: refused again.
  ::chmod((dir / "plugins" / "evil" / "hooks.so").c_str(), 0775);
  r = run_trapeze(dir, {"check", config.string()});
  CHECK(r.status != 0);
  CHECK(r.err.find("writable by group or others") != std::string::npos);
}
