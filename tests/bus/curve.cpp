// CURVE on a tcp:// control socket and bus: the allowed client gets answers and events; a
// client with another key, or without CURVE, gets nothing.
#include "zmq_support.hpp"

using namespace trapeze::testing;

TEST_CASE("curve: only a listed client key reaches a tcp:// arbiter", "[integration][bus]") {
  TempDir dir;
  REQUIRE(run_trapeze(dir, {"keygen", (dir / "arbiter.key").string()}).status == 0);
  REQUIRE(run_trapeze(dir, {"keygen", (dir / "admin.key").string()}).status == 0);
  REQUIRE(run_trapeze(dir, {"keygen", (dir / "stranger.key").string()}).status == 0);
  CHECK((fs::status(dir / "arbiter.key").permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write));
  write_file(dir / "clients", "# who may drive this arbiter\n" + read_file(dir / "admin.key.pub"));
  int control = free_port(), events = free_port();
  Arbiter arbiter(dir, "curve.ini",
                  fmt::format("[circus]\nendpoint = tcp://127.0.0.1:{}\npubsub_endpoint = tcp://127.0.0.1:{}\n"
                              "curve_keypair = arbiter.key\ncurve_clients = clients\n"
                              "[watcher:web]\ncmd = {}\nargs = forever\n",
                              control, events, child()));
  arbiter.wait_events("web.start");
  std::string endpoint = fmt::format("tcp://127.0.0.1:{}", control);
  std::string server_key = (dir / "arbiter.key.pub").string();

  auto r = run_trapeze(dir, {"--endpoint", endpoint, "--curve-server-key", server_key, "--curve-keypair",
                             (dir / "admin.key").string(), "status", "web"});
  CHECK(r.status == 0);
  CHECK(r.out.rfind("active\n", 0) == 0);
  // The bus, with the same keys: events arrive.
  r = run_trapeze(dir, {"--endpoint", endpoint, "--curve-server-key", server_key, "--curve-keypair",
                        (dir / "admin.key").string(), "--timeout", "10", "reloadconfig"});
  CHECK(r.status == 0);

  // Another key: refused (no answer), and the arbiter says why.
  r = run_trapeze(dir, {"--endpoint", endpoint, "--curve-server-key", server_key, "--curve-keypair",
                        (dir / "stranger.key").string(), "--timeout", "1", "status", "web"});
  CHECK(r.status == 3);
  REQUIRE(wait_until([&] { return arbiter.log().find("refused a CURVE client") != std::string::npos; }));
  // No CURVE at all: no answer either.
  r = run_trapeze(dir, {"--endpoint", endpoint, "--timeout", "1", "status", "web"});
  CHECK(r.status == 3);
  Client plain(endpoint);
  CHECK_FALSE(plain.raw(R"({"id":"x","command":"status"})", std::chrono::milliseconds(500)));
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("curve: listen receives the bus with the keys", "[integration][bus]") {
  TempDir dir;
  REQUIRE(run_trapeze(dir, {"keygen", (dir / "arbiter.key").string()}).status == 0);
  int control = free_port(), events = free_port();
  Arbiter arbiter(dir, "curve-listen.ini",
                  fmt::format("[circus]\nendpoint = tcp://127.0.0.1:{}\npubsub_endpoint = tcp://127.0.0.1:{}\n"
                              "curve_keypair = arbiter.key\n[watcher:web]\ncmd = {}\nargs = forever\n",
                              control, events, child()));
  arbiter.wait_events("web.start");
  std::string endpoint = fmt::format("tcp://127.0.0.1:{}", control);
  std::string key = (dir / "arbiter.key.pub").string();
  // A listener with an ephemeral keypair (no curve_clients: any client with the server key).
  auto out = dir / "listen.out";
  pid_t listener = fork();
  if (listener == 0) {
    int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(o, 1);
    std::string events_endpoint = fmt::format("tcp://127.0.0.1:{}", events);
    execl(TRAPEZE_BINARY, TRAPEZE_BINARY, "--curve-server-key", key.c_str(), "listen", "--events-endpoint",
          events_endpoint.c_str(), "--count", "1", "watcher.web.", static_cast<char*>(nullptr));
    _exit(127);
  }
  // Until the subscription is live, each incr makes a spawn event.
  int status = 0;
  bool done = wait_until([&] {
    run_trapeze(dir, {"--endpoint", endpoint, "--curve-server-key", key, "incr", "web"});
    return waitpid(listener, &status, WNOHANG) == listener;
  }, std::chrono::seconds(20));
  if (!done) ::kill(listener, SIGKILL), waitpid(listener, &status, 0);
  REQUIRE(done);
  CHECK(read_file(out).rfind("watcher.web.", 0) == 0);
  CHECK(arbiter.stop() == 0);
}
