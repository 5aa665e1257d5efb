// circus's control protocol against the real arbiter: every command and its reply shape,
// commands queued rather than refused, reloadconfig, and bad input of every kind.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "zmq_support.hpp"

using namespace trapeze::testing;

namespace {

std::string watcher(const std::string& name, const std::string& args, const std::string& extra = "") {
  return fmt::format("[watcher:{}]\ncmd = {}\nargs = {}\n{}\n", name, child(), args, extra);
}

std::string ctl_endpoint(const TempDir& dir) { return fmt::format("ipc://{}/control", dir.path().string()); }

void check_ok(const Json& reply, const std::string& id = "t") {
  INFO(reply.dump());
  CHECK(reply["status"] == "ok");
  CHECK(reply["id"] == id);
  CHECK(reply["time"].is_number_float());
}

}  // namespace

TEST_CASE("control: queries and their circus reply shapes", "[integration][bus]") {
  TempDir dir;
  Arbiter arbiter(dir, "q.ini",
                  endpoints(dir) + watcher("web", "print hello forever", "numprocesses = 2") +
                      watcher("db", "forever", "priority = 1"));
  arbiter.wait_events("db.start");
  Client c(ctl_endpoint(dir));

  auto r = c.call("status");
  check_ok(r);
  CHECK(r["statuses"] == Json({{"db", "active"}, {"web", "active"}}));
  r = c.call("status", {{"name", "web"}});
  CHECK(r["status"] == "active");  // circus's quirk: the state in place of "ok"
  CHECK(r["id"] == "t");

  r = c.call("list");
  CHECK(r["watchers"] == Json({"db", "web"}));
  r = c.call("list", {{"name", "web"}});
  REQUIRE(r["pids"].size() == 2);
  for (auto& pid : r["pids"]) CHECK(alive(pid.get<pid_t>()));

  CHECK(c.call("numprocesses")["numprocesses"] == 3);
  r = c.call("numprocesses", {{"name", "web"}});
  CHECK(r["numprocesses"] == 2);
  CHECK(r["watcher_name"] == "web");
  CHECK(c.call("numwatchers")["numwatchers"] == 2);

  r = c.call("options", {{"name", "web"}});
  CHECK(r["options"]["numprocesses"] == 2);
  CHECK(r["options"]["cmd"] == child());
  r = c.call("get", {{"name", "web"}, {"keys", {"numprocesses", "graceful_timeout"}}});
  CHECK(r["options"] == Json({{"graceful_timeout", "30s"}, {"numprocesses", 2}}));
  r = c.call("get", {{"name", "web"}, {"keys", {"nope"}}});
  CHECK(r["status"] == "error");
  CHECK(r["reason"] == "'nope' option not found");

  r = c.call("globaloptions");
  CHECK(r["options"]["endpoint"] == ctl_endpoint(dir));
  CHECK(r["options"]["pubsub_endpoint"] == fmt::format("ipc://{}/events", dir.path().string()));
  r = c.call("globaloptions", {{"option", "endpoint"}});
  CHECK(r["options"].size() == 1);

  r = c.call("stats", {{"name", "web"}});
  CHECK(r["name"] == "web");
  REQUIRE(r["info"].size() == 2);
  for (auto& [pid, info] : r["info"].items()) {
    CHECK(info["pid"] == std::stoi(pid));
    CHECK(info["mem_info1"].get<long long>() > 0);
    CHECK(info["cmdline"].get<std::string>().find("test_child") != std::string::npos);
  }
  r = c.call("stats");
  CHECK(r["infos"]["db"].size() == 1);
  r = c.call("dstats");
  CHECK(r["info"]["pid"] == arbiter.pid());
  CHECK(r["info"]["watchers"]["web"]["spawns"] == 2);
  CHECK(c.call("listsockets")["sockets"] == Json::array());

  REQUIRE(wait_until([&] { return c.call("logs", {{"name", "web"}})["output"] == "hello\nhello\n"; }));
  CHECK(c.call("logs", {{"name", "web"}, {"lines", 1}})["output"] == "hello\n");

  r = c.call("status", {{"name", "nope"}});
  CHECK(r == Json({{"status", "error"}, {"reason", "program nope not found"}, {"errno", 3}, {"time", r["time"]}, {"id", "t"}}));
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("control: start, stop, restart, incr, decr, signal, kill, add, set, rm, quit", "[integration][bus]") {
  TempDir dir;
  Arbiter arbiter(dir, "m.ini", endpoints(dir) + watcher("web", "forever", "graceful_timeout = 5"));
  arbiter.wait_events("web.start");
  Client c(ctl_endpoint(dir));

  check_ok(c.call("stop", {{"name", "web"}, {"waiting", true}}));
  CHECK(c.call("status", {{"name", "web"}})["status"] == "stopped");
  check_ok(c.call("start", {{"name", "web"}, {"waiting", true}}));
  CHECK(c.call("status", {{"name", "web"}})["status"] == "active");
  auto before = c.call("list", {{"name", "web"}})["pids"];
  check_ok(c.call("restart", {{"name", "web"}, {"waiting", true}}));
  CHECK(c.call("list", {{"name", "web"}})["pids"] != before);

  auto r = c.call("incr", {{"name", "web"}, {"nb", 2}});
  check_ok(r);
  CHECK(r["numprocesses"] == 3);
  REQUIRE(wait_until([&] { return c.call("list", {{"name", "web"}})["pids"].size() == 3; }));
  CHECK(c.call("decr", {{"name", "web"}})["numprocesses"] == 2);
  REQUIRE(wait_until([&] { return c.call("list", {{"name", "web"}})["pids"].size() == 2; }));

  // kill: the process goes, the watcher replaces it.
  pid_t victim = c.call("list", {{"name", "web"}})["pids"][0];
  check_ok(c.call("kill", {{"name", "web"}, {"pid", victim}, {"signum", "KILL"}}));
  REQUIRE(wait_until([&] {
    auto pids = c.call("list", {{"name", "web"}})["pids"];
    return pids.size() == 2 && std::find(pids.begin(), pids.end(), Json(victim)) == pids.end();
  }));
  // signal: delivered to the pid given.
  pid_t target = c.call("list", {{"name", "web"}})["pids"][0];
  check_ok(c.call("signal", {{"name", "web"}, {"pid", target}, {"signum", 9}}));
  REQUIRE(wait_until([&] { return !alive(target); }));
  r = c.call("signal", {{"name", "web"}, {"signum", "NOPE"}});
  CHECK(r["reason"] == "signal invalid");

  r = c.call("add", {{"name", "extra"}, {"cmd", child()}, {"args", "forever"}, {"options", {{"numprocesses", 2}}},
                     {"start", true}});
  check_ok(r);
  REQUIRE(wait_until([&] { return c.call("status", {{"name", "extra"}})["status"] == "active"; }));
  r = c.call("add", {{"name", "extra"}, {"cmd", child()}});
  CHECK(r["reason"] == "watcher extra already exists");
  r = c.call("add", {{"name", "bad"}, {"cmd", child()}, {"options", {{"graceful_timeout", "soon"}}}});
  CHECK(r["status"] == "error");
  CHECK(r["reason"].get<std::string>().find("graceful_timeout: expected a duration") == 0);
  // No value can write another option, or another section, into the INI text it becomes.
  r = c.call("add", {{"name", "sneaky"}, {"cmd", child() + "\nuid = 0"}});
  CHECK(r["reason"] == "cmd: line breaks are not allowed");
  r = c.call("add", {{"name", "sneaky"}, {"cmd", child()}, {"args", "forever\r\n[watcher:other]\ncmd = x"}});
  CHECK(r["reason"] == "args: line breaks are not allowed");
  r = c.call("add", {{"name", "sneaky]\ncmd = x\n[watcher:two"}, {"cmd", child()}});
  CHECK(r["reason"] == "name: line breaks are not allowed");
  r = c.call("add", {{"name", "sneaky"}, {"cmd", child()}, {"options", {{"args", "a\rb"}}}});
  CHECK(r["reason"] == "option args: line breaks are not allowed");
  CHECK(c.call("status", {{"name", "sneaky"}})["status"] == "error");

  check_ok(c.call("set", {{"name", "extra"}, {"options", {{"numprocesses", 1}}}}));
  REQUIRE(wait_until([&] { return c.call("list", {{"name", "extra"}})["pids"].size() == 1; }));
  check_ok(c.call("set", {{"name", "extra"}, {"options", {{"graceful_timeout", "2s"}}}, {"waiting", true}}));
  CHECK(c.call("get", {{"name", "extra"}, {"keys", {"graceful_timeout"}}})["options"]["graceful_timeout"] == "2s");
  r = c.call("set", {{"name", "extra"}, {"options", {{"uid", "root"}}}});
  CHECK(r["reason"] == "option uid cannot be set at run time");

  check_ok(c.call("rm", {{"name", "extra"}, {"waiting", true}}));
  CHECK(c.call("list")["watchers"] == Json({"web"}));

  check_ok(c.call("quit"));
  REQUIRE(wait_until([&] { return arbiter.exited(); }));
  CHECK(arbiter.exit_code() == 0);
  CHECK(arbiter.events("arbiter.stop").size() == 1);
}

TEST_CASE("control: a command that arrives while another runs is queued, not refused", "[integration][bus]") {
  TempDir dir;
  auto armed = dir / "armed";
  Arbiter arbiter(dir, "queue.ini",
                  endpoints(dir) + watcher("slow", fmt::format("ignore TERM pidfile {} forever", armed.string()),
                                           "graceful_timeout = 1"));
  arbiter.wait_events("slow.start");
  REQUIRE(wait_until([&] { return fs::exists(armed); }));
  Client c(ctl_endpoint(dir));
  c.send("stop", {{"name", "slow"}, {"waiting", true}}, "1");
  c.send("start", {{"name", "slow"}, {"waiting", true}}, "2");
  c.send("status", {{"name", "slow"}}, "3");
  // The query is answered at once, while the stop waits for graceful_timeout.
  auto first = c.receive();
  REQUIRE(first);
  CHECK((*first)["id"] == "3");
  CHECK((*first)["status"] == "stopping");
  auto second = c.receive();
  auto third = c.receive();
  REQUIRE(second);
  REQUIRE(third);
  CHECK((*second)["id"] == "1");
  CHECK((*second)["status"] == "ok");
  CHECK((*third)["id"] == "2");
  CHECK((*third)["status"] == "ok");
  CHECK(c.call("status", {{"name", "slow"}})["status"] == "active");
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("control: reloadconfig keeps, adjusts, restarts, adds and removes", "[integration][bus]") {
  TempDir dir;
  std::string head = endpoints(dir);
  Arbiter arbiter(dir, "rc.ini",
                  head + watcher("keep", "forever") + watcher("count", "forever") + watcher("change", "forever") +
                      watcher("gone", "forever"));
  arbiter.wait_events("gone.start");
  Client c(ctl_endpoint(dir));
  auto pids = [&](const std::string& w) { return c.call("list", {{"name", w}})["pids"]; };
  auto keep = pids("keep"), count = pids("count"), change = pids("change");
  write_file(arbiter.config(), head + watcher("keep", "forever") + watcher("count", "forever", "numprocesses = 3") +
                                   watcher("change", "forever", "graceful_timeout = 3") + watcher("new", "forever"));
  check_ok(c.call("reloadconfig", {{"waiting", true}}));
  CHECK(pids("keep") == keep);
  auto counted = pids("count");
  CHECK(counted.size() == 3);
  CHECK(std::find(counted.begin(), counted.end(), count[0]) != counted.end());
  CHECK(pids("change") != change);
  CHECK(c.call("status")["statuses"] == Json({{"change", "active"}, {"count", "active"}, {"keep", "active"}, {"new", "active"}}));
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("control: bad requests get an error reply and change nothing", "[integration][bus]") {
  TempDir dir;
  Arbiter arbiter(dir, "bad.ini", endpoints(dir) + watcher("web", "forever"));
  arbiter.wait_events("web.start");
  Client c(ctl_endpoint(dir));
  struct Case {
    std::string frame;
    int errno_;
    std::string reason;
  };
  std::string huge = R"({"id":"h","command":"status","properties":{"name":")" + std::string(1 << 20, 'x') + R"("}})";
  std::string deep = std::string(100, '[') + std::string(100, ']');
  std::vector<Case> cases = {
      {"", 1, "json invalid"},
      {"   ", 1, "json invalid"},
      {"{", 1, "json invalid"},
      {"not json", 1, "json invalid"},
      {"{\"command\": \"status\",}", 1, "json invalid"},
      {"\"status\"", 3, "a request must be a JSON object"},
      {"[]", 3, "a request must be a JSON object"},
      {"42", 3, "a request must be a JSON object"},
      {"null", 3, "a request must be a JSON object"},
      {R"({"id": "x"})", 3, "message invalid: 'command' is missing"},
      {R"({"id": "x", "command": 5})", 3, "'command' must be a string, got 5"},
      {R"({"id": "x", "command": null})", 3, "'command' must be a string, got null"},
      {R"({"id": "x", "command": "dance"})", 2, "unknown command: \"dance\""},
      {R"({"id": "x", "command": ""})", 2, "unknown command: \"\""},
      {R"({"id": "x", "command": "status", "properties": []})", 3, "'properties' must be an object, got []"},
      {R"({"id": "x", "command": "status", "properties": "web"})", 3, "'properties' must be an object, got \"web\""},
      {R"({"id": "x", "command": "status", "properties": {"name": 3}})", 3, "property 'name' must be a string, got 3"},
      {R"({"id": "x", "command": "status", "properties": {"name": ""}})", 3, "property 'name' must not be empty"},
      {R"({"id": "x", "command": "incr", "properties": {}})", 3, "message invalid 'name' is missing"},
      {R"({"id": "x", "command": "incr", "properties": {"name": "web", "nb": "two"}})", 3, "property 'nb' must be an integer, got \"two\""},
      {R"({"id": "x", "command": "incr", "properties": {"name": "web", "nb": -1}})", 3, "property 'nb' must not be negative, got -1"},
      {R"({"id": "x", "command": "incr", "properties": {"name": "web", "nb": 1.5}})", 3, "property 'nb' must be an integer, got 1.5"},
      {R"({"id": "x", "command": "get", "properties": {"name": "web", "keys": "cmd"}})", 3, "property 'keys' must be a list of strings, got \"cmd\""},
      {R"({"id": "x", "command": "get", "properties": {"name": "web", "keys": [1]}})", 3, "property 'keys' must be a list of strings, got [1]"},
      {R"({"id": "x", "command": "set", "properties": {"name": "web", "options": 3}})", 3, "property 'options' must be an object, got 3"},
      {R"({"id": "x", "command": "signal", "properties": {"name": "web"}})", 3, "message invalid 'signum' is missing"},
      {R"({"id": "x", "command": "signal", "properties": {"name": "web", "signum": true}})", 3, "property 'signum' must be a signal number or name, got true"},
      {R"({"id": "x", "command": "signal", "properties": {"name": "web", "signum": "SIGFOO"}})", 3, "signal invalid"},
      {R"({"id": "x", "command": "signal", "properties": {"name": "web", "signum": "99999999999999999999"}})", 3, "signal invalid"},
      {R"({"id": "x", "command": "kill", "properties": {"name": "web", "signum": "SIG99999999999999999999"}})", 3, "signal invalid"},
      {R"({"id": "x", "command": "stop", "properties": {"name": "web", "waiting": "yes"}})", 3, "property 'waiting' must be true or false, got \"yes\""},
      {R"({"id": "x", "command": "status", "msg_type": 7})", 3, "msg_type must be a string"},
      {"{\"id\": \"x\", \"command\": \"status\", \"properties\": {\"name\": \"\xff\xfe\"}}", 1, "json invalid"},
      {huge, 3, fmt::format("message too large: {} bytes, the limit is 1048576", huge.size())},
      {deep, 3, "message nested deeper than 64 levels"},
  };
  for (const auto& k : cases) {
    INFO("frame: " << k.frame.substr(0, 80));
    auto reply = c.raw(k.frame);
    REQUIRE(reply);
    CHECK((*reply)["status"] == "error");
    CHECK((*reply)["errno"] == k.errno_);
    CHECK((*reply)["reason"] == k.reason);
  }
  // A command for a watcher that does not exist, and the arbiter still answers and runs.
  auto r = c.call("incr", {{"name", "nope"}});
  CHECK(r["reason"] == "program nope not found");
  CHECK(c.call("status", {{"name", "web"}})["status"] == "active");
  CHECK(arbiter.events("web.spawn").size() == 1);
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("control: the default socket is private to the arbiter's user", "[integration][bus]") {
  TempDir dir;
  Arbiter arbiter(dir, "private.ini", watcher("web", "forever"));
  arbiter.wait_events("web.start");
  std::string log = arbiter.log();
  auto at = log.find("control on ipc://");
  REQUIRE(at != std::string::npos);
  std::string path = log.substr(at + 17, log.find(',', at) - at - 17);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(::stat(fs::path(path).parent_path().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  // Our own user gets an answer.
  Client c("ipc://" + path);
  CHECK(c.call("status", {{"name", "web"}})["status"] == "active");
  if (geteuid() == 0) {
    // Another user cannot even reach the socket.
    pid_t pid = fork();
    if (pid == 0) {
      if (setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
      int s = socket(AF_UNIX, SOCK_STREAM, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
      if (connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) _exit(11);
      _exit(errno == EACCES ? 0 : 12);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  } else {
    WARN("not root: the other-user check is skipped");
  }
  CHECK(arbiter.stop() == 0);
}
