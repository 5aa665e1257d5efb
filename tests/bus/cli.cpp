// The trapeze client as a user runs it against a real arbiter: output, --json, exit codes.
#include "zmq_support.hpp"

using namespace trapeze::testing;

TEST_CASE("cli: status, list, incr and errors against a running arbiter", "[integration][bus]") {
  TempDir dir;
  Arbiter arbiter(dir, "cli.ini", fmt::format("[watcher:web]\ncmd = {}\nargs = forever\n", child()));
  arbiter.wait_events("web.start");
  std::string cfg = arbiter.config().string();

  auto r = run_trapeze(dir, {"-c", cfg, "status"});
  CHECK(r.status == 0);
  CHECK(r.out == "WATCHER  STATUS\nweb      active\n");
  r = run_trapeze(dir, {"status", "web", "-c", cfg});
  pid_t pid = arbiter.events("web.spawn")[0].data["process_pid"];
  CHECK(r.out == fmt::format("active\nPID{0}  WID  STATE  READY\n{1}  1    ready  yes\n",
                             std::string(std::to_string(pid).size() - 3, ' '), pid));
  r = run_trapeze(dir, {"-c", cfg, "--json", "numwatchers"});
  CHECK(Json::parse(r.out)["numwatchers"] == 1);
  r = run_trapeze(dir, {"-c", cfg, "incr", "web", "2"});
  CHECK(r.status == 0);
  CHECK(r.out == "3\n");
  r = run_trapeze(dir, {"-c", cfg, "status", "nope"});
  CHECK(r.status == 1);
  CHECK(r.err == "trapeze: error: program nope not found\n");
  r = run_trapeze(dir, {"status"});
  CHECK(r.status == 2);
  CHECK(r.err == "trapeze: no arbiter given: use -c CONFIG, --endpoint ENDPOINT or $TRAPEZE_ENDPOINT\n");
  r = run_trapeze(dir, {"--endpoint", fmt::format("ipc://{}/nobody-here", dir.path().string()), "--timeout", "0.3", "status"});
  CHECK(r.status == 3);
  CHECK(r.err.find("trapeze: no answer from ipc://") == 0);

  // listen: the events of a decr, as they happen.
  pid_t listener = fork();
  if (listener == 0) {
    int o = ::open((dir / "listen.out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(o, 1);
    execl(TRAPEZE_BINARY, TRAPEZE_BINARY, "listen", "-c", cfg.c_str(), "--json", "watcher.web.reap", "--count", "1",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  // Until the subscription is live, decr/incr pairs go unheard: repeat them.
  int status = 0;
  REQUIRE(wait_until([&] {
    run_trapeze(dir, {"-c", cfg, "decr", "web"});
    run_trapeze(dir, {"-c", cfg, "incr", "web"});
    return waitpid(listener, &status, WNOHANG) == listener;
  }, std::chrono::seconds(20)));
  auto line = Json::parse(read_file(dir / "listen.out"));
  CHECK(line["topic"] == "watcher.web.reap");
  CHECK(line["data"]["exit_code"] == -SIGTERM);
  CHECK(arbiter.stop() == 0);
}
