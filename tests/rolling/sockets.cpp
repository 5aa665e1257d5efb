// circus's [socket:NAME]: bound by the arbiter, inherited by the children that use_sockets,
// $(circus.sockets.NAME) is their fd; listsockets; so_reuseport; bind errors with file:line.
#include <sys/stat.h>

#include "../bus/zmq_support.hpp"
#include "http.hpp"

using namespace trapeze::testing;

namespace {

std::string ctl_endpoint(const TempDir& dir) { return fmt::format("ipc://{}/control", dir.path().string()); }

std::set<std::string> lines_of(const std::string& text) {
  std::set<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.insert(line);
  return out;
}

bool listed_contains(Client& c, const std::string& name, long pid) {
  Json reply = c.call("list", {{"name", name}});  // kept: a loop over a temporary's member dangles
  for (auto& p : reply["pids"])
    if (p.get<long>() == pid) return true;
  return false;
}

}  // namespace

TEST_CASE("sockets: bound before the watchers, passed by fd, listed as circus lists them", "[integration][rolling]") {
  TempDir dir;
  int port = free_port();
  auto fds = dir / "fds";
  auto unix_path = dir / "app.sock";
  Arbiter arbiter(dir, "s.ini",
                  endpoints(dir) +
                      fmt::format("[socket:web]\nhost = 127.0.0.1\nport = {}\n\n"
                                  "[socket:local]\npath = {}\numask = 077\n\n",
                                  port, unix_path.string()) +
                      fmt::format("[watcher:web]\ncmd = {0}\nargs = fds {1} print $(circus.sockets.web) "
                                  "print listening servefd $(circus.sockets.web)\nuse_sockets = true\n"
                                  "ready.log = listening\n\n"
                                  "[watcher:plain]\ncmd = {0}\nargs = fds {1}.plain forever\n",
                                  child(), fds.string()));
  arbiter.wait_events("web.start");
  arbiter.wait_events("plain.start");
  Client c(ctl_endpoint(dir));

  auto reply = c.call("listsockets");
  INFO(reply.dump());
  REQUIRE(reply["sockets"].size() == 2);
  std::map<std::string, int> fd_of;
  for (auto& s : reply["sockets"]) {
    auto text = s[1].get<std::string>();
    if (text == fmt::format("socket 'web' at 127.0.0.1:{}", port)) fd_of["web"] = s[0];
    if (text == fmt::format("socket 'local' at {}", unix_path.string())) fd_of["local"] = s[0];
  }
  REQUIRE(fd_of.size() == 2);
  CHECK(reply["sockets"][0][0] < reply["sockets"][1][0]);  // by fd

  // The child has both sockets at the arbiter's numbers, and its command says which.
  auto inherited = lines_of(read_file(fds));
  CHECK(inherited.count(std::to_string(fd_of["web"])));
  CHECK(inherited.count(std::to_string(fd_of["local"])));
  CHECK(lines_of(c.call("logs", {{"name", "web"}})["output"]).count(std::to_string(fd_of["web"])));
  // A watcher without use_sockets gets neither.
  auto plain = lines_of(read_file(fs::path(fds.string() + ".plain")));
  CHECK_FALSE(plain.count(std::to_string(fd_of["web"])));
  CHECK(plain == std::set<std::string>{"0", "1", "2"});

  auto a = http_get(port);
  REQUIRE(a.ok);
  CHECK(listed_contains(c, "web", std::stol(a.body)));

  struct stat st {};
  REQUIRE(::stat(unix_path.c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  CHECK((st.st_mode & 0777) == 0700);  // umask 077

  CHECK(arbiter.stop() == 0);
  CHECK_FALSE(fs::exists(unix_path));  // removed with the socket
  CHECK(http_get(port).refused);
}

TEST_CASE("sockets: so_reuseport gives each process its own socket on the port", "[integration][rolling]") {
  TempDir dir;
  int port = free_port();
  Arbiter arbiter(dir, "r.ini",
                  endpoints(dir) + fmt::format("[socket:web]\nhost = 127.0.0.1\nport = {}\nso_reuseport = true\n\n", port) +
                      fmt::format("[watcher:web]\ncmd = {}\nargs = print listening servefd $(circus.sockets.web)\n"
                                  "use_sockets = true\nnumprocesses = 2\nready.log = listening\n",
                                  child()));
  arbiter.wait_events("web.start");
  Client c(ctl_endpoint(dir));
  // The kernel spreads connections over the two sockets by their source port.
  std::set<std::string> answered_by;
  for (int i = 0; i < 400 && answered_by.size() < 2; ++i) {
    auto a = http_get(port);
    REQUIRE(a.ok);
    answered_by.insert(a.body);
  }
  CHECK(answered_by.size() == 2);
  CHECK(c.call("listsockets")["sockets"].empty());  // nothing held by the arbiter itself
}

TEST_CASE("sockets: a port that cannot be bound stops the arbiter with file:line", "[integration][rolling]") {
  TempDir dir;
  int port = free_port();
  int holder = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(holder, 1) == 0);
  auto config = dir / "busy.ini";
  write_file(config, endpoints(dir) + fmt::format("[socket:web]\nhost = 127.0.0.1\nport = {}\n", port));
  auto run = run_trapeze(dir, {"run", config.string(), "--pidfile", (dir / "pid").string()});
  ::close(holder);
  CHECK(run.status == 1);
  auto expected = fmt::format("{}:4: socket web: cannot bind 127.0.0.1:{}: Address already in use", config.string(), port);
  INFO(run.out << run.err);
  CHECK((run.err + run.out).find(expected) != std::string::npos);
}

TEST_CASE("sockets: an on_demand watcher starts on the first connection", "[integration][rolling]") {
  TempDir dir;
  int port = free_port();
  Arbiter arbiter(dir, "d.ini",
                  endpoints(dir) + fmt::format("[socket:web]\nhost = 127.0.0.1\nport = {}\n\n", port) +
                      fmt::format("[watcher:web]\ncmd = {}\nargs = print listening servefd $(circus.sockets.web)\n"
                                  "use_sockets = true\non_demand = true\nready.log = listening\n\n"
                                  "[watcher:other]\ncmd = {}\nargs = forever\n",
                                  child(), child()));
  arbiter.wait_events("other.start");
  Client c(ctl_endpoint(dir));
  CHECK(c.call("status", {{"name", "web"}})["status"] == "stopped");
  CHECK(arbiter.events("web.spawn").empty());
  auto a = http_get(port);  // waits in the backlog until the process accepts it
  INFO(a.error << "\n" << arbiter.log());
  REQUIRE(a.ok);
  arbiter.wait_events("web.spawn", 1);
  // Stopped again, it waits for the next connection.
  CHECK(c.call("stop", {{"name", "web"}, {"waiting", true}})["status"] == "ok");
  CHECK(http_get(port).ok);
  arbiter.wait_events("web.spawn", 2);  // the events file may trail the answer by a loop turn
}
