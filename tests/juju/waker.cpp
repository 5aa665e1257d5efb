// The charm waker in the real arbiter: a fake charm whose dispatch records what it was run
// with, a fake juju-exec on PATH, real workload events, notices through the CLI, retries, one
// dispatch at a time, and no request lost when the arbiter is SIGKILLed.
#include <sys/stat.h>

#include <algorithm>
#include <map>

#include "../integration/support.hpp"

using namespace trapeze::testing;

namespace {

// dispatch appends "start KEY" and "done KEY" lines (KEY: the event, or the notice key) and
// its environment to dispatched.env; fails while the file `fails` holds a positive count;
// waits while the file `hold` exists; notes any overlap of two dispatches.
const char* const kDispatch = R"SH(#!/bin/sh
dir=$(dirname "$0")
key=${JUJU_NOTICE_KEY:-${JUJU_DISPATCH_PATH#hooks/}}
mkdir "$dir/lock" 2>/dev/null || echo "overlap $key" >> "$dir/overlap"
echo $$ > "$dir/pid"
echo "start $key" >> "$dir/dispatched"
{
  echo "== $key"
  echo "JUJU_DISPATCH_PATH=$JUJU_DISPATCH_PATH"
  echo "JUJU_WORKLOAD_NAME=$JUJU_WORKLOAD_NAME"
  echo "JUJU_UNIT_NAME=${JUJU_UNIT_NAME-unset}"
  echo "JUJU_CHARM_DIR=${JUJU_CHARM_DIR-unset}"
  echo "JUJU_CONTEXT_ID=${JUJU_CONTEXT_ID-unset}"
  echo "OPERATOR_DISPATCH=${OPERATOR_DISPATCH-unset}"
  echo "JUJU_PEBBLE_CHECK_NAME=${JUJU_PEBBLE_CHECK_NAME-unset}"
  echo "JUJU_NOTICE_ID=${JUJU_NOTICE_ID-unset} JUJU_NOTICE_TYPE=${JUJU_NOTICE_TYPE-unset}"
  echo "TRAPEZE_NOTICE_size=${TRAPEZE_NOTICE_size-unset}"
} >> "$dir/dispatched.env"
n=0
while [ -e "$dir/hold" ] && [ $n -lt 1000 ]; do sleep 0.01; n=$((n+1)); done
if [ -s "$dir/fails" ] && [ "$(cat "$dir/fails")" -gt 0 ]; then
  echo $(( $(cat "$dir/fails") - 1 )) > "$dir/fails"
  rmdir "$dir/lock"
  echo "the charm is broken" >&2
  exit 1
fi
echo "done $key" >> "$dir/dispatched"
rmdir "$dir/lock"
)SH";

// juju-exec UNIT COMMAND: refuses a hook context, records its argv, runs COMMAND in the charm.
const char* const kJujuExec = R"SH(#!/bin/sh
[ -n "$JUJU_CONTEXT_ID" ] && { echo "juju-exec: inside a hook context" >&2; exit 3; }
echo "$1|$2" >> "$JUJU_CHARM_DIR/juju-exec.log"
cd "$JUJU_CHARM_DIR" && exec sh -c "$2"
)SH";

struct Charm {
  explicit Charm(const TempDir& dir) : path(dir / "charm") {
    fs::create_directories(path);
    write_file(path / "dispatch", kDispatch);
    fs::permissions(path / "dispatch", fs::perms::owner_all);
    fs::create_directories(dir / "bin");
    write_file(dir / "bin" / "juju-exec", kJujuExec);
    fs::permissions(dir / "bin" / "juju-exec", fs::perms::owner_all);
  }
  std::vector<std::string> lines(const std::string& prefix = "") const {
    std::vector<std::string> out;
    std::istringstream in(read_file(path / "dispatched"));
    for (std::string l; std::getline(in, l);)
      if (l.rfind(prefix, 0) == 0) out.push_back(l);
    return out;
  }
  std::string env() const { return read_file(path / "dispatched.env"); }
  fs::path path;
};

std::string juju_config(const TempDir& dir, const Charm& charm, const std::string& mode,
                        const std::string& watchers, const std::string& extra = "") {
  return fmt::format("[circus]\nendpoint = ipc://{0}/control\npubsub_endpoint = ipc://{0}/events\n"
                     "[juju]\nunit = app/0\ncharm_dir = {1}\nmode = {2}\nqueue_file = {0}/queue.json\n"
                     "backoff = 50ms\n{3}{4}",
                     dir.path().string(), charm.path.string(), mode, extra, watchers);
}

std::string sleeper(const std::string& name, int n = 1) {
  return fmt::format("[watcher:{}]\ncmd = {}\nargs = forever\nnumprocesses = {}\n", name, child(), n);
}

}  // namespace

TEST_CASE("waker: ready dispatches the charm event, with the hook context left behind", "[integration][juju]") {
  TempDir dir;
  Charm charm(dir);
  Arbiter arbiter(dir, "ready.ini", juju_config(dir, charm, "direct", sleeper("redis")), {},
                  {"JUJU_CONTEXT_ID=app/0-install-123", "OPERATOR_DISPATCH=1"});
  auto ok = arbiter.wait_events("juju.dispatch_success");
  CHECK(ok[0].data["event"] == "redis-workload-ready");
  CHECK(ok[0].data["attempt"] == 1);
  CHECK(charm.lines() == std::vector<std::string>{"start redis-workload-ready", "done redis-workload-ready"});
  std::string env = charm.env();
  CHECK(env.find("JUJU_DISPATCH_PATH=hooks/redis-workload-ready\n") != std::string::npos);
  CHECK(env.find("JUJU_WORKLOAD_NAME=redis\n") != std::string::npos);
  CHECK(env.find("JUJU_UNIT_NAME=app/0\n") != std::string::npos);
  CHECK(env.find("JUJU_CHARM_DIR=" + charm.path.string() + "\n") != std::string::npos);
  CHECK(env.find("JUJU_CONTEXT_ID=unset\n") != std::string::npos);
  CHECK(env.find("OPERATOR_DISPATCH=unset\n") != std::string::npos);
  // The ready event is on the bus before the dispatch is queued.
  CHECK(arbiter.events("redis.ready").back().data["seq"] < ok[0].data["seq"]);
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("waker: exec mode goes through juju-exec with the unit and the variables", "[integration][juju]") {
  TempDir dir;
  Charm charm(dir);
  std::string path = "PATH=" + (dir / "bin").string() + ":" + std::getenv("PATH");
  std::string charm_dir = "JUJU_CHARM_DIR=" + charm.path.string();
  Arbiter arbiter(dir, "exec.ini", juju_config(dir, charm, "exec", sleeper("web")), {},
                  {path, charm_dir, "JUJU_CONTEXT_ID=app/0-start-9"});
  arbiter.wait_events("juju.dispatch_success");
  std::string log = read_file(charm.path / "juju-exec.log");
  CHECK(log.rfind("app/0|", 0) == 0);
  CHECK(log.find("JUJU_DISPATCH_PATH='hooks/web-workload-ready'") != std::string::npos);
  CHECK(log.find("JUJU_WORKLOAD_NAME='web'") != std::string::npos);
  CHECK(log.find("./dispatch") != std::string::npos);
  CHECK(charm.lines("done") == std::vector<std::string>{"done web-workload-ready"});
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("waker: exits, notices, names set to false, and equal requests collapse", "[integration][juju]") {
  TempDir dir;
  Charm charm(dir);
  Arbiter arbiter(dir, "notice.ini",
                  juju_config(dir, charm, "direct", sleeper("w") + "juju.on_ready = false\n"
                                                                   "juju.on_exit = w-crashed\n"));
  arbiter.wait_events("w.start");
  std::string cfg = arbiter.config().string();
  // A process that exits unasked: w-crashed.
  ::kill(arbiter.events("w.spawn")[0].data["process_pid"].get<pid_t>(), SIGKILL);
  arbiter.wait_events("juju.dispatch_success");
  CHECK(charm.lines("done") == std::vector<std::string>{"done w-crashed"});
  // A notice while the charm is busy: held, then three equal ones collapse into one.
  write_file(charm.path / "hold", "");
  auto r = run_trapeze(dir, {"-c", cfg, "notify", "--watcher", "w", "example.com/backup", "size=10"});
  CHECK(r.status == 0);
  CHECK(r.out == "w-workload-notice queued\n");
  REQUIRE(wait_until([&] { return charm.lines("start").size() == 2; }));
  for (int i = 0; i < 3; ++i) run_trapeze(dir, {"-c", cfg, "notify", "-w", "w", "example.com/backup", "size=10"});
  r = run_trapeze(dir, {"-c", cfg, "dispatches"});
  CHECK(r.out.find("running") != std::string::npos);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 3);  // header, the running one, one queued
  fs::remove(charm.path / "hold");
  arbiter.wait_events("juju.dispatch_success", 3);
  CHECK(charm.lines("done") ==
        std::vector<std::string>{"done w-crashed", "done example.com/backup", "done example.com/backup"});
  std::string env = charm.env();
  CHECK(env.find("JUJU_NOTICE_ID=1 JUJU_NOTICE_TYPE=custom") != std::string::npos);
  CHECK(env.find("TRAPEZE_NOTICE_size=10") != std::string::npos);
  CHECK(env.find("JUJU_DISPATCH_PATH=hooks/w-workload-ready") == std::string::npos);  // on_ready = false
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("waker: a failing dispatch is retried with backoff, then given up", "[integration][juju]") {
  TempDir dir;
  Charm charm(dir);
  write_file(charm.path / "fails", "100\n");
  Arbiter arbiter(dir, "fail.ini", juju_config(dir, charm, "direct", sleeper("w"), "max_retry = 2\n"));
  auto failure = arbiter.wait_events("juju.dispatch_failure");
  CHECK(failure[0].data["event"] == "w-workload-ready");
  CHECK(failure[0].data["attempts"] == 3);
  CHECK(failure[0].data["exit_code"] == 1);
  CHECK(failure[0].data["stderr_tail"] == "the charm is broken\n");
  CHECK(charm.lines("start").size() == 3);
  CHECK(arbiter.events("juju.dispatch_success").empty());
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("waker: a burst of 100 requests runs one dispatch at a time, in order", "[integration][juju]") {
  TempDir dir;
  Charm charm(dir);
  Arbiter arbiter(dir, "burst.ini", juju_config(dir, charm, "direct", sleeper("w") + "juju.on_ready = false\n"));
  arbiter.wait_events("w.start");
  std::string cfg = arbiter.config().string();
  std::vector<pid_t> senders;
  for (int i = 0; i < 100; ++i) run_trapeze(dir, {"-c", cfg, "notify", "-w", "w", fmt::format("k{:03}", i)});
  arbiter.wait_events("juju.dispatch_success", 100, std::chrono::seconds(120));
  auto done = charm.lines("done");
  REQUIRE(done.size() == 100);
  for (int i = 0; i < 100; ++i) CHECK(done[i] == fmt::format("done k{:03}", i));
  CHECK_FALSE(fs::exists(charm.path / "overlap"));
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("waker: an arbiter SIGKILLed with requests queued and one running loses none", "[integration][juju]") {
  TempDir dir;
  Charm charm(dir);
  std::string cfg_text = juju_config(dir, charm, "direct", "[watcher:w]\ncmd = " + child() +
                                                               "\nargs = forever\nnumprocesses = 0\n"
                                                               "juju.on_ready = false\n");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(200);
  int rounds = 0;
  for (; rounds < 50 && std::chrono::steady_clock::now() < deadline; ++rounds) {
    INFO("round " << rounds);
    write_file(charm.path / "hold", "");
    std::string a = fmt::format("r{}-a", rounds), b = fmt::format("r{}-b", rounds), c = fmt::format("r{}-c", rounds);
    {
      Arbiter first(dir, "crash.ini", cfg_text);
      first.wait_events("w.start");
      std::string cfg = first.config().string();
      for (auto& key : {a, b, c}) REQUIRE(run_trapeze(dir, {"-c", cfg, "notify", "-w", "w", key}).status == 0);
      REQUIRE(wait_until([&] {
        auto started = charm.lines("start " + a);
        return !started.empty();
      }));
      ::kill(first.pid(), SIGKILL);
      first.stop(SIGKILL);
      // The dispatch it was running is ours to stop, by its process group.
      pid_t running = std::stoi(read_file(charm.path / "pid"));
      ::kill(-running, SIGKILL);
      fs::remove_all(charm.path / "lock");
    }
    fs::remove(charm.path / "hold");
    Arbiter second(dir, "crash.ini", cfg_text);
    // At least once each: the one that was running runs again.
    REQUIRE(wait_until([&] {
      auto done = charm.lines("done ");
      return std::count(done.begin(), done.end(), "done " + a) >= 1 &&
             std::count(done.begin(), done.end(), "done " + b) >= 1 &&
             std::count(done.begin(), done.end(), "done " + c) >= 1;
    }, std::chrono::seconds(20)));
    // The queue is empty before this arbiter stops (a dispatch cut short by the stop would run
    // again in the next round).
    std::string cfg = second.config().string();
    REQUIRE(wait_until([&] {
      auto r = run_trapeze(dir, {"-c", cfg, "--json", "dispatches"});
      return r.status == 0 && r.out.find("\"dispatches\":[]") != std::string::npos;
    }));
    CHECK(second.stop() == 0);
  }
  CHECK(rounds >= 10);  // bounded in time on a slow machine, but never trivially short
  CHECK_FALSE(fs::exists(charm.path / "overlap"));
}

TEST_CASE("waker: a check going down and up again dispatches with the check's name", "[integration][juju]") {
  TempDir dir;
  Charm charm(dir);
  auto flag = dir / "alive";
  write_file(flag, "yes\n");
  Arbiter arbiter(dir, "check.ini",
                  juju_config(dir, charm, "direct",
                              sleeper("db") + "juju.on_ready = false\ncheck.ping.exec = test -e " + flag.string() +
                                  "\ncheck.ping.period = 100ms\ncheck.ping.threshold = 1\n"));
  arbiter.wait_events("db.start");
  fs::remove(flag);
  arbiter.wait_events("juju.dispatch_success");
  write_file(flag, "yes\n");
  arbiter.wait_events("juju.dispatch_success", 2);
  CHECK(charm.lines("done") ==
        std::vector<std::string>{"done db-workload-check-failed", "done db-workload-check-recovered"});
  CHECK(charm.env().find("JUJU_PEBBLE_CHECK_NAME=ping\n") != std::string::npos);
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("waker: a dispatch that cannot start counts as a failed attempt", "[integration][juju]") {
  TempDir dir;
  Charm charm(dir);
  fs::remove(charm.path / "dispatch");
  Arbiter arbiter(dir, "missing.ini", juju_config(dir, charm, "direct", sleeper("w"), "max_retry = 1\n"));
  auto failure = arbiter.wait_events("juju.dispatch_failure");
  CHECK(failure[0].data["attempts"] == 2);
  CHECK(failure[0].data["exit_code"] == 127);
  CHECK(failure[0].data["stderr_tail"].get<std::string>().find("cannot exec") != std::string::npos);
  CHECK(arbiter.stop() == 0);
}
