// The stock plugins (stock.so), loaded with the arbiter's PluginLoader and run either
// directly, with a call struct that records what the hook logs, or through the HookRunner
// (timeouts and cancellation). The servers they talk to are started here, on loopback, on
// ports the kernel picks: a fake redis, a tiny HTTP server, listeners that appear late, and
// a real redis-server when one is installed.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "trapeze/hooks/plugin.hpp"
#include "trapeze/hooks/runner.hpp"
#include "../hooks/inbox.hpp"

using namespace std::chrono_literals;
using trapeze::hooks::HookOutcome;
using trapeze::hooks::HookRequest;
using trapeze::hooks::HookResult;
using trapeze::hooks::HookRunner;
using trapeze::hooks::Options;
using trapeze::hooks::PluginLoader;
using Clock = std::chrono::steady_clock;

namespace {

// ---- the plugin -------------------------------------------------------------------------

PluginLoader& loader() {
  static PluginLoader l;
  return l;
}

trapeze_hook_fn hook(const char* symbol) {
  return loader().load(TEST_PLUGIN_STOCK, symbol);
}

struct LogLine {
  trapeze_log_level level;
  std::string message;
};

// Calls a hook on the test thread with a call struct of our own, recording its log lines
// and its error. cancel() may be called from another thread.
class DirectCall {
 public:
  explicit DirectCall(Options options, Options watcher = {})
      : options_(std::move(options)), watcher_(std::move(watcher)) {
    call_.struct_size = sizeof call_;
    call_.abi_version = TRAPEZE_HOOK_ABI_VERSION;
    call_.hook_name = "before_start";
    call_.watcher_name = "web";
    call_.watcher_option = [](const trapeze_hook_call* c, const char* key) {
      return find(self(c).watcher_, key);
    };
    call_.hook_option = [](const trapeze_hook_call* c, const char* key) {
      return find(self(c).options_, key);
    };
    call_.log = [](const trapeze_hook_call* c, trapeze_log_level level, const char* message) {
      self(c).logs.push_back({level, message});
    };
    call_.set_error = [](const trapeze_hook_call* c, const char* message) { self(c).error = message; };
    call_.cancelled = [](const trapeze_hook_call* c) { return self(c).cancelled_.load(); };
    call_.host = this;
  }
  DirectCall(const DirectCall&) = delete;
  DirectCall& operator=(const DirectCall&) = delete;

  trapeze_hook_result run(const char* symbol) {
    logs.clear();
    error.clear();
    auto start = Clock::now();
    trapeze_hook_result r = hook(symbol)(&call_);
    seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return r;
  }
  void cancel() { cancelled_.store(1); }

  bool logged(trapeze_log_level level, const std::string& message) const {
    return std::any_of(logs.begin(), logs.end(),
                       [&](const LogLine& l) { return l.level == level && l.message == message; });
  }
  // Every line, for failure messages.
  std::string log_text() const {
    std::string text;
    for (const auto& l : logs) text += std::to_string(static_cast<int>(l.level)) + " " + l.message + "\n";
    return text;
  }

  std::vector<LogLine> logs;
  std::string error;
  double seconds = 0;  // how long the last run took

 private:
  static DirectCall& self(const trapeze_hook_call* c) { return *static_cast<DirectCall*>(c->host); }
  static const char* find(const Options& options, const char* key) {
    auto it = options.find(key);
    return it == options.end() ? nullptr : it->second.c_str();
  }
  Options options_, watcher_;
  std::atomic<int> cancelled_{0};
  trapeze_hook_call call_{};
};

using trapeze::testing::Inbox;
using trapeze::testing::run_one;

HookRequest request(const char* symbol, Options options, std::chrono::milliseconds timeout = 20s) {
  HookRequest r;
  r.fn = hook(symbol);
  r.hook_name = "before_start";
  r.watcher_name = "web";
  r.hook_options = std::move(options);
  r.timeout = timeout;
  return r;
}

// Polls `pred` until it holds or `timeout` passes.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 10s) {
  auto deadline = Clock::now() + timeout;
  while (!pred()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// ---- servers ------------------------------------------------------------------------------

// Reads from FD until TERMINATOR has come, the peer closes, LIMIT bytes, or 5 s pass.
std::string read_until(int fd, std::string_view terminator, std::size_t limit = 65536) {
  std::string got;
  auto deadline = Clock::now() + 5s;
  while (got.find(terminator) == std::string::npos && got.size() < limit && Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

// Writes DATA, stopping quietly when the peer has gone (as clients that read enough do).
void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

// A TCP server on 127.0.0.1 (or ::1) that hands each connection to `serve`, one at a time,
// on its own thread, then closes it. Port 0: the kernel picks one.
class Server {
 public:
  using Serve = std::function<void(int fd, Server& server)>;

  explicit Server(Serve serve, int family = AF_INET, std::uint16_t port = 0) : serve_(std::move(serve)) {
    fd_ = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_storage addr{};
    socklen_t len = 0;
    if (family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
      a->sin6_family = AF_INET6;
      a->sin6_addr = in6addr_loopback;
      a->sin6_port = htons(port);
      len = sizeof *a;
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&addr);
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a->sin_port = htons(port);
      len = sizeof *a;
    }
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd_, 64) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ::close(fd_);
      fd_ = -1;
      return;
    }
    port_ = ntohs(family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                     : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    thread_ = std::thread([this] { accept_loop(); });
  }
  ~Server() {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
  }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  bool listening() const { return fd_ >= 0; }
  std::uint16_t port() const { return port_; }
  std::string port_text() const { return std::to_string(port_); }
  bool stopping() const { return stopping_; }
  int connections() const { return connections_; }
  // What `serve` recorded, in order.
  void record(std::string request) {
    std::lock_guard lock(mu_);
    requests_.push_back(std::move(request));
  }
  std::vector<std::string> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  void accept_loop() {
    while (!stopping_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int client = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      serve_(client, *this);
      ::close(client);
      ++connections_;  // after serving: the count says the exchange is over
    }
  }

  Serve serve_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  mutable std::mutex mu_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

// A loopback port with nothing listening: bound by the kernel's choice, then closed.
std::uint16_t closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), len) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string endpoint(std::uint16_t port) {
  return "127.0.0.1:" + std::to_string(port);
}

// The error for an unusable timeout or interval.
std::string bad_duration(const std::string& option, const std::string& text) {
  return "option " + option +
         " must be a positive number of seconds or a duration like 250ms, 5s or 2m, not '" + text + "'";
}

// Serve functions.
void accept_only(int, Server&) {}

Server::Serve redis_replying(std::string reply) {
  return [reply](int fd, Server& s) {
    s.record(read_until(fd, "\r\n"));
    write_all(fd, reply);
  };
}

// Reads what comes and never answers, until the client hangs up or the server stops.
void silent(int fd, Server& s) {
  while (!s.stopping()) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char buf[512];
    if (::recv(fd, buf, sizeof buf, 0) <= 0) return;
  }
}

std::string http_response(int status, const std::string& body) {
  return "HTTP/1.0 " + std::to_string(status) +
         " Whatever\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

Server::Serve http_replying(int status, std::string body) {
  return [status, body](int fd, Server& s) {
    s.record(read_until(fd, "\r\n\r\n"));
    write_all(fd, http_response(status, body));
  };
}

// A directory removed with its contents at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "trapeze-plugins-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string path(const std::string& name = "") const { return name.empty() ? path_ : path_ + "/" + name; }

 private:
  std::string path_;
};

void touch(const std::string& path) {
  std::ofstream(path) << "ready\n";
}

}  // namespace

// ---- check_redis --------------------------------------------------------------------------

TEST_CASE("check_redis: a PONG reply continues", "[unit][plugins]") {
  Server redis(redis_replying("+PONG\r\n"));
  REQUIRE(redis.listening());
  DirectCall call({{"port", redis.port_text()}});
  CHECK(call.run("check_redis") == TRAPEZE_HOOK_CONTINUE);
  CHECK(call.error.empty());
  CHECK(call.logged(TRAPEZE_LOG_DEBUG, "redis at " + endpoint(redis.port()) + " answered PONG"));
  REQUIRE(eventually([&] { return redis.connections() == 1; }));
  CHECK(redis.requests() == std::vector<std::string>{"PING\r\n"});

  // The same through the runner, as the arbiter calls it.
  Inbox inbox;
  HookRunner runner(inbox.post(), 1);
  auto r =
      run_one(runner, inbox, request("check_redis", {{"host", "127.0.0.1"}, {"port", redis.port_text()}}));
  CHECK(r.outcome == HookOutcome::proceed);
}

TEST_CASE("check_redis: any other reply vetoes, and the warning quotes it", "[unit][plugins]") {
  auto vetoes_with = [](const std::string& reply, const std::string& why) {
    Server redis(redis_replying(reply));
    REQUIRE(redis.listening());
    DirectCall call({{"port", redis.port_text()}});
    CHECK(call.run("check_redis") == TRAPEZE_HOOK_VETO);
    INFO(call.log_text());
    CHECK(call.logged(TRAPEZE_LOG_WARNING, "redis at " + endpoint(redis.port()) + ": " + why));
  };
  vetoes_with("-NOAUTH Authentication required.\r\n", "replied '-NOAUTH Authentication required.' to PING");
  vetoes_with("HTTP/1.1 400 Bad Request\r\n\r\n", "replied 'HTTP/1.1 400 Bad Request' to PING");
  vetoes_with("+PONG with\x1b[31m colour\r\n", "replied '+PONG with?[31m colour' to PING");
  vetoes_with("", "closed the connection without replying");
  vetoes_with(std::string(300, 'x'), "replied '" + std::string(40, 'x') + "...', which is not redis");
}

TEST_CASE("check_redis: connection refused vetoes with a warning", "[unit][plugins]") {
  auto port = closed_port();
  DirectCall call({{"port", std::to_string(port)}});
  CHECK(call.run("check_redis") == TRAPEZE_HOOK_VETO);
  INFO(call.log_text());
  CHECK(call.logged(TRAPEZE_LOG_WARNING, "redis at " + endpoint(port) + ": connection refused"));
  CHECK(call.seconds < 5);
}

TEST_CASE("check_redis: a server that never replies vetoes at the timeout", "[unit][plugins]") {
  Server redis(silent);
  REQUIRE(redis.listening());
  DirectCall call({{"port", redis.port_text()}, {"timeout", "0.3"}});
  CHECK(call.run("check_redis") == TRAPEZE_HOOK_VETO);
  INFO(call.log_text());
  CHECK(call.logged(TRAPEZE_LOG_WARNING, "redis at " + endpoint(redis.port()) + ": no reply within 0.3s"));
  CHECK(call.seconds >= 0.29);
  CHECK(call.seconds < 10);
  // It hung up: the server saw the end of the connection.
  CHECK(eventually([&] { return redis.connections() == 1; }));
}

TEST_CASE("check_redis: unusable options are errors that name them", "[unit][plugins]") {
  auto error_of = [](Options options) {
    DirectCall call(std::move(options));
    CHECK(call.run("check_redis") == TRAPEZE_HOOK_ERROR);
    return call.error;
  };
  CHECK(error_of({{"port", "redis"}}) == "option port must be a number from 1 to 65535, not 'redis'");
  CHECK(error_of({{"port", "0"}}) == "option port must be a number from 1 to 65535, not '0'");
  CHECK(error_of({{"port", "65536"}}) == "option port must be a number from 1 to 65535, not '65536'");
  CHECK(error_of({{"port", "-1"}}) == "option port must be a number from 1 to 65535, not '-1'");
  CHECK(error_of({{"timeout", "-1"}}) == bad_duration("timeout", "-1"));
  CHECK(error_of({{"timeout", "nan"}}) == bad_duration("timeout", "nan"));
  CHECK(error_of({{"timeout", "2x"}}) == bad_duration("timeout", "2x"));
  CHECK(error_of({{"timeout", "ms"}}) == bad_duration("timeout", "ms"));
  CHECK(error_of({{"host", ""}}) == "option host must not be empty");
}

TEST_CASE("check_redis: host names and IPv6", "[unit][plugins]") {
  // "localhost" goes through the resolver thread, and may name ::1 before 127.0.0.1: the
  // hook tries each address until one answers.
  Server redis(redis_replying("+PONG\r\n"));
  REQUIRE(redis.listening());
  DirectCall by_name({{"host", "localhost"}, {"port", redis.port_text()}});
  CHECK(by_name.run("check_redis") == TRAPEZE_HOOK_CONTINUE);
  INFO(by_name.log_text());

  Server redis6(redis_replying("+PONG\r\n"), AF_INET6);
  if (!redis6.listening()) {
    WARN("no IPv6 loopback here: the IPv6 part is skipped");
    return;
  }
  DirectCall v6({{"host", "::1"}, {"port", redis6.port_text()}});
  CHECK(v6.run("check_redis") == TRAPEZE_HOOK_CONTINUE);
  CHECK(v6.logged(TRAPEZE_LOG_DEBUG, "redis at [::1]:" + redis6.port_text() + " answered PONG"));
}

TEST_CASE("check_redis: the runner's timeout cancels it mid-read", "[unit][plugins]") {
  Server redis(silent);
  REQUIRE(redis.listening());
  Inbox inbox;
  HookRunner runner(inbox.post(), 1);
  auto r =
      run_one(runner, inbox, request("check_redis", {{"port", redis.port_text()}, {"timeout", "60"}}, 300ms));
  CHECK(r.outcome == HookOutcome::timed_out);
  // The hook noticed, hung up and returned: its thread is not abandoned for long.
  CHECK(inbox.wait_until([&] { return runner.stats().abandoned == 0; }, 5s));
  CHECK(eventually([&] { return redis.connections() == 1; }));
}

TEST_CASE("check_redis against a real redis-server", "[integration][plugins]") {
  const char* binary = "/usr/bin/redis-server";
  if (::access(binary, X_OK) != 0) {
    WARN("no " << binary << ": the real redis test is skipped");
    return;
  }
  TempDir dir;
  auto port = std::to_string(closed_port());
  std::vector<std::string> args{binary, "--port",       port, "--bind", "127.0.0.1", "--save",
                                "",     "--appendonly", "no", "--dir",  dir.path()};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, binary, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(rc == 0);
  // Stops redis however the test ends.
  auto stop = [&pid] {
    if (pid <= 0) return;
    ::kill(pid, SIGTERM);
    for (int i = 0; i < 500 && ::waitpid(pid, nullptr, WNOHANG) == 0; ++i) std::this_thread::sleep_for(10ms);
    if (::waitpid(pid, nullptr, WNOHANG) == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    pid = -1;
  };
  struct Guard {
    std::function<void()> fn;
    ~Guard() { fn(); }
  } guard{stop};

  DirectCall up({{"port", port}, {"timeout", "20"}, {"interval", "0.05"}});
  REQUIRE(up.run("wait_tcp") == TRAPEZE_HOOK_CONTINUE);
  DirectCall ping({{"port", port}});
  CHECK(ping.run("check_redis") == TRAPEZE_HOOK_CONTINUE);
  INFO(ping.log_text());

  stop();
  CHECK(ping.run("check_redis") == TRAPEZE_HOOK_VETO);
  CHECK(ping.logged(TRAPEZE_LOG_WARNING, "redis at 127.0.0.1:" + port + ": connection refused"));
}

// ---- wait_tcp -----------------------------------------------------------------------------

TEST_CASE("wait_tcp: waits, then continues once a listener appears", "[unit][plugins]") {
  auto port = closed_port();
  std::optional<Server> late;
  std::thread opener([&] {
    std::this_thread::sleep_for(300ms);  // the scenario: the service comes up later
    late.emplace(accept_only, AF_INET, port);
  });
  DirectCall call({{"port", std::to_string(port)}, {"interval", "0.05"}, {"timeout", "20"}});
  auto result = call.run("wait_tcp");
  opener.join();
  INFO(call.log_text());
  REQUIRE(late->listening());
  CHECK(result == TRAPEZE_HOOK_CONTINUE);
  CHECK(call.logged(TRAPEZE_LOG_INFO, "waiting for " + endpoint(port) + " (connection refused)"));
  CHECK(std::any_of(call.logs.begin(), call.logs.end(), [&](const LogLine& l) {
    return l.level == TRAPEZE_LOG_INFO && l.message.rfind(endpoint(port) + " is ready after ", 0) == 0;
  }));
  CHECK(eventually([&] { return late->connections() >= 1; }));
}

TEST_CASE("wait_tcp: an open port continues at once, by address or by name", "[unit][plugins]") {
  Server server(accept_only);
  REQUIRE(server.listening());
  DirectCall call({{"port", server.port_text()}});
  CHECK(call.run("wait_tcp") == TRAPEZE_HOOK_CONTINUE);
  CHECK(call.logged(TRAPEZE_LOG_DEBUG, endpoint(server.port()) + " is ready"));
  DirectCall by_name({{"host", "localhost"}, {"port", server.port_text()}, {"timeout", "10"}});
  CHECK(by_name.run("wait_tcp") == TRAPEZE_HOOK_CONTINUE);

  Server server6(accept_only, AF_INET6);
  if (!server6.listening()) {
    WARN("no IPv6 loopback here: the IPv6 part is skipped");
    return;
  }
  DirectCall v6({{"host", "::1"}, {"port", server6.port_text()}, {"timeout", "10"}});
  CHECK(v6.run("wait_tcp") == TRAPEZE_HOOK_CONTINUE);
  CHECK(v6.logged(TRAPEZE_LOG_DEBUG, "[::1]:" + server6.port_text() + " is ready"));
}

TEST_CASE("wait_tcp: gives up after its timeout option, saying why", "[unit][plugins]") {
  auto port = closed_port();
  DirectCall call({{"port", std::to_string(port)}, {"timeout", "0.5"}, {"interval", "0.1"}});
  CHECK(call.run("wait_tcp") == TRAPEZE_HOOK_VETO);
  INFO(call.log_text());
  CHECK(call.logged(TRAPEZE_LOG_WARNING,
                    "gave up waiting for " + endpoint(port) + " after 0.5s (connection refused)"));
  CHECK(call.seconds >= 0.49);
  CHECK(call.seconds < 10);
  // Durations may be written as the config writes them.
  DirectCall in_ms({{"port", std::to_string(port)}, {"timeout", "250ms"}, {"interval", "0.1s"}});
  CHECK(in_ms.run("wait_tcp") == TRAPEZE_HOOK_VETO);
  CHECK(in_ms.logged(TRAPEZE_LOG_WARNING,
                     "gave up waiting for " + endpoint(port) + " after 0.25s (connection refused)"));
  // One line about the wait, not one per try.
  CHECK(std::count_if(call.logs.begin(), call.logs.end(),
                      [](const LogLine& l) { return l.level == TRAPEZE_LOG_INFO; }) == 1);
}

TEST_CASE("wait_tcp: a name that does not resolve keeps it waiting, and says so", "[unit][plugins]") {
  // .invalid never resolves (RFC 6761). Whether the resolver says so at once or hangs, the
  // hook gives up at its timeout.
  DirectCall call({{"host", "nonexistent.invalid"}, {"port", "80"}, {"timeout", "0.5"}});
  CHECK(call.run("wait_tcp") == TRAPEZE_HOOK_VETO);
  INFO(call.log_text());
  CHECK(std::any_of(call.logs.begin(), call.logs.end(), [](const LogLine& l) {
    return l.level == TRAPEZE_LOG_WARNING &&
           l.message.rfind(
               "gave up waiting for nonexistent.invalid:80 after 0.5s (cannot resolve "
               "nonexistent.invalid: ",
               0) == 0;
  }));
  CHECK(call.seconds < 10);
}

TEST_CASE("wait_tcp: the runner's timeout cancels it and no thread is left behind", "[unit][plugins]") {
  auto port = closed_port();
  Inbox inbox;
  HookRunner runner(inbox.post(), 1);
  auto r = run_one(runner, inbox, request("wait_tcp", {{"port", std::to_string(port)}}, 300ms));
  CHECK(r.outcome == HookOutcome::timed_out);
  CHECK(r.error == "timed out after 300ms");
  REQUIRE(inbox.wait_until([&] { return runner.stats().abandoned == 0; }, 5s));
  CHECK(runner.stats().threads == 1);
  // The thread serves again.
  Server server(accept_only);
  REQUIRE(server.listening());
  CHECK(run_one(runner, inbox, request("wait_tcp", {{"port", server.port_text()}})).outcome ==
        HookOutcome::proceed);
}

TEST_CASE("wait_tcp: cancelled from another thread, it returns a veto soon", "[unit][plugins]") {
  auto port = closed_port();
  DirectCall call({{"port", std::to_string(port)}, {"interval", "5"}});
  std::thread canceller([&] {
    std::this_thread::sleep_for(200ms);
    call.cancel();
  });
  auto result = call.run("wait_tcp");  // would wait forever without the cancellation
  canceller.join();
  CHECK(result == TRAPEZE_HOOK_VETO);
  CHECK(call.seconds < 4);  // the 5 s pause was cut short
}

TEST_CASE("wait_tcp: missing and unusable options are errors", "[unit][plugins]") {
  auto error_of = [](Options options) {
    DirectCall call(std::move(options));
    CHECK(call.run("wait_tcp") == TRAPEZE_HOOK_ERROR);
    return call.error;
  };
  CHECK(error_of({}) == "option port is required");
  CHECK(error_of({{"host", "db"}}) == "option port is required");
  CHECK(error_of({{"port", "http"}}) == "option port must be a number from 1 to 65535, not 'http'");
  CHECK(error_of({{"port", "80"}, {"interval", "0"}}) == bad_duration("interval", "0"));
  CHECK(error_of({{"port", "80"}, {"timeout", "soon"}}) == bad_duration("timeout", "soon"));
  CHECK(error_of({{"port", "80"}, {"timeout", "inf"}}) == bad_duration("timeout", "inf"));
}

// ---- wait_http ----------------------------------------------------------------------------

TEST_CASE("wait_http: a 2xx continues, and the request is an HTTP/1.0 GET with a Host header",
          "[unit][plugins]") {
  Server http(http_replying(200, "ok"));
  REQUIRE(http.listening());
  auto url = "http://127.0.0.1:" + http.port_text() + "/health?verbose=1#top";
  DirectCall call({{"url", url}});
  CHECK(call.run("wait_http") == TRAPEZE_HOOK_CONTINUE);
  INFO(call.log_text());
  CHECK(call.logged(TRAPEZE_LOG_DEBUG, url + " is ready"));
  REQUIRE(eventually([&] { return http.connections() == 1; }));
  CHECK(http.requests().at(0) ==
        "GET /health?verbose=1 HTTP/1.0\r\nHost: 127.0.0.1:" + http.port_text() +
            "\r\nUser-Agent: trapeze-wait_http\r\nAccept: */*\r\nConnection: close\r\n\r\n");

  // No path: "/". 204, no body.
  Server empty(http_replying(204, ""));
  REQUIRE(empty.listening());
  DirectCall bare({{"url", "http://localhost:" + empty.port_text()}});
  CHECK(bare.run("wait_http") == TRAPEZE_HOOK_CONTINUE);
  REQUIRE(eventually([&] { return empty.connections() == 1; }));
  CHECK(empty.requests().at(0).rfind("GET / HTTP/1.0\r\nHost: localhost:" + empty.port_text() + "\r\n", 0) ==
        0);
}

TEST_CASE("wait_http: waits through 503s until a 200", "[unit][plugins]") {
  Server http([](int fd, Server& s) {
    read_until(fd, "\r\n\r\n");
    write_all(fd, s.connections() < 2 ? http_response(503, "starting") : http_response(200, "up"));
  });
  REQUIRE(http.listening());
  auto url = "http://127.0.0.1:" + http.port_text() + "/";
  DirectCall call({{"url", url}, {"interval", "0.05"}, {"timeout", "20"}});
  CHECK(call.run("wait_http") == TRAPEZE_HOOK_CONTINUE);
  INFO(call.log_text());
  CHECK(call.logged(TRAPEZE_LOG_INFO, "waiting for " + url + " (status 503)"));
  CHECK(eventually([&] { return http.connections() == 3; }));
}

TEST_CASE("wait_http: expect must be in the body", "[unit][plugins]") {
  Server starting(http_replying(200, "status: starting"));
  REQUIRE(starting.listening());
  auto url = "http://127.0.0.1:" + starting.port_text() + "/status";
  DirectCall lacking({{"url", url}, {"expect", "ready"}, {"timeout", "0.5"}, {"interval", "0.1"}});
  CHECK(lacking.run("wait_http") == TRAPEZE_HOOK_VETO);
  INFO(lacking.log_text());
  CHECK(lacking.logged(TRAPEZE_LOG_WARNING,
                       "gave up waiting for " + url + " after 0.5s (the body lacks 'ready')"));

  Server ready(http_replying(200, "status: ready"));
  REQUIRE(ready.listening());
  DirectCall found({{"url", "http://127.0.0.1:" + ready.port_text() + "/status"}, {"expect", "ready"}});
  CHECK(found.run("wait_http") == TRAPEZE_HOOK_CONTINUE);
}

TEST_CASE("wait_http: reads at most 64 KiB of body, and stops once expect is found", "[unit][plugins]") {
  std::string early(1 << 20, 'x'), late(1 << 20, 'x');
  early.replace(100, 5, "ready");
  late.replace(200000, 5, "ready");
  Server big_early(http_replying(200, early));
  Server big_late(http_replying(200, late));
  REQUIRE(big_early.listening());
  REQUIRE(big_late.listening());
  DirectCall found({{"url", "http://127.0.0.1:" + big_early.port_text() + "/"}, {"expect", "ready"}});
  CHECK(found.run("wait_http") == TRAPEZE_HOOK_CONTINUE);
  DirectCall too_far(
      {{"url", "http://127.0.0.1:" + big_late.port_text() + "/"}, {"expect", "ready"}, {"timeout", "0.5"}});
  CHECK(too_far.run("wait_http") == TRAPEZE_HOOK_VETO);
  INFO(too_far.log_text());
  CHECK(std::any_of(too_far.logs.begin(), too_far.logs.end(), [](const LogLine& l) {
    return l.level == TRAPEZE_LOG_WARNING && l.message.find("(the body lacks 'ready')") != std::string::npos;
  }));

  // A server that keeps the connection open after the body: the text is enough.
  Server lingering([](int fd, Server& s) {
    read_until(fd, "\r\n\r\n");
    write_all(fd, "HTTP/1.1 200 OK\r\n\r\nall ready");
    silent(fd, s);
  });
  REQUIRE(lingering.listening());
  DirectCall open(
      {{"url", "http://127.0.0.1:" + lingering.port_text() + "/"}, {"expect", "ready"}, {"timeout", "20"}});
  CHECK(open.run("wait_http") == TRAPEZE_HOOK_CONTINUE);
  CHECK(open.seconds < 4);  // did not wait for the connection to end
}

TEST_CASE("wait_http: refused, not HTTP, or hung up: each says so", "[unit][plugins]") {
  auto reason_for = [](const std::string& url) {
    DirectCall call({{"url", url}, {"timeout", "0.3"}, {"interval", "0.1"}});
    CHECK(call.run("wait_http") == TRAPEZE_HOOK_VETO);
    for (const auto& l : call.logs)
      if (l.level == TRAPEZE_LOG_WARNING) return l.message;
    return std::string("(no warning)");
  };
  auto port = std::to_string(closed_port());
  CHECK(reason_for("http://127.0.0.1:" + port + "/") ==
        "gave up waiting for http://127.0.0.1:" + port + "/ after 0.3s (connection refused)");

  Server garbage([](int fd, Server&) {
    read_until(fd, "\r\n\r\n");
    write_all(fd, "SSH-2.0-OpenSSH_9.2\r\n\r\n");
  });
  REQUIRE(garbage.listening());
  auto url = "http://127.0.0.1:" + garbage.port_text() + "/";
  CHECK(reason_for(url) ==
        "gave up waiting for " + url + " after 0.3s (not an HTTP response: 'SSH-2.0-OpenSSH_9.2')");

  Server hangs_up([](int fd, Server&) { read_until(fd, "\r\n\r\n"); });
  REQUIRE(hangs_up.listening());
  url = "http://127.0.0.1:" + hangs_up.port_text() + "/";
  CHECK(reason_for(url) ==
        "gave up waiting for " + url + " after 0.3s (the connection closed without a response)");
}

TEST_CASE("wait_http: URLs it cannot use are errors that quote them", "[unit][plugins]") {
  auto error_of = [](Options options) {
    DirectCall call(std::move(options));
    CHECK(call.run("wait_http") == TRAPEZE_HOOK_ERROR);
    return call.error;
  };
  CHECK(error_of({}) == "option url is required");
  CHECK(error_of({{"url", "https://example.com/"}}) ==
        "option url 'https://example.com/': https is not supported, only http://");
  CHECK(error_of({{"url", "ftp://example.com/"}}) ==
        "option url must start with http://, not 'ftp://example.com/'");
  CHECK(error_of({{"url", "example.com"}}) == "option url must start with http://, not 'example.com'");
  CHECK(error_of({{"url", "http:///health"}}) == "option url 'http:///health' has no host");
  CHECK(error_of({{"url", "http://:8080/"}}) == "option url 'http://:8080/' has no host");
  CHECK(error_of({{"url", "http://web:99999/"}}) ==
        "option url 'http://web:99999/' has a bad port (not 1 to 65535)");
  CHECK(error_of({{"url", "http://web:/"}}) == "option url 'http://web:/' has a bad port (not 1 to 65535)");
  CHECK(error_of({{"url", "http://[::1/"}}) == "option url 'http://[::1/' has a '[' without its ']'");
  CHECK(error_of({{"url", "http://[::1]x/"}}) == "option url 'http://[::1]x/' is malformed after ']'");
  CHECK(error_of({{"url", "http://web/a b"}}) ==
        "option url 'http://web/a b' contains a space or a control character");
  CHECK(error_of({{"url", "http://web/\r\nX: y"}}) ==
        "option url 'http://web/\r\nX: y' contains a space or a control character");
  CHECK(error_of({{"url", "http://user:pw@web/"}}) ==
        "option url 'http://user:pw@web/': user info (user@host) is not supported");
  CHECK(error_of({{"url", "http://web/"}, {"interval", "-2"}}) == bad_duration("interval", "-2"));
}

TEST_CASE("wait_http: an IPv6 address in brackets", "[unit][plugins]") {
  Server http(http_replying(200, "ok"), AF_INET6);
  if (!http.listening()) {
    WARN("no IPv6 loopback here: skipped");
    return;
  }
  DirectCall call({{"url", "http://[::1]:" + http.port_text() + "/"}, {"timeout", "10"}});
  CHECK(call.run("wait_http") == TRAPEZE_HOOK_CONTINUE);
  INFO(call.log_text());
  REQUIRE(eventually([&] { return http.connections() == 1; }));
  CHECK(http.requests().at(0).find("\r\nHost: [::1]:" + http.port_text() + "\r\n") != std::string::npos);
}

TEST_CASE("wait_http: the runner's timeout cancels it while a server says nothing", "[unit][plugins]") {
  Server http(silent);
  REQUIRE(http.listening());
  Inbox inbox;
  HookRunner runner(inbox.post(), 1);
  auto r = run_one(runner, inbox,
                   request("wait_http", {{"url", "http://127.0.0.1:" + http.port_text() + "/"}}, 300ms));
  CHECK(r.outcome == HookOutcome::timed_out);
  CHECK(inbox.wait_until([&] { return runner.stats().abandoned == 0; }, 5s));
  CHECK(eventually([&] { return http.connections() == 1; }));
}

// ---- wait_file ----------------------------------------------------------------------------

TEST_CASE("wait_file: waits, then continues once the file exists", "[unit][plugins]") {
  TempDir dir;
  auto path = dir.path("ready");
  std::thread creator([&] {
    std::this_thread::sleep_for(300ms);  // the scenario: the file comes later
    touch(path);
  });
  DirectCall call({{"path", path}, {"interval", "0.05"}, {"timeout", "20"}});
  auto result = call.run("wait_file");
  creator.join();
  INFO(call.log_text());
  CHECK(result == TRAPEZE_HOOK_CONTINUE);
  CHECK(call.logged(TRAPEZE_LOG_INFO, "waiting for " + path + " (no such file or directory)"));
}

TEST_CASE("wait_file: a relative path is the watcher's working_dir's", "[unit][plugins]") {
  TempDir dir;
  touch(dir.path("ready"));
  DirectCall call({{"path", "ready"}, {"timeout", "0.3"}}, {{"working_dir", dir.path()}});
  CHECK(call.run("wait_file") == TRAPEZE_HOOK_CONTINUE);
  CHECK(call.logged(TRAPEZE_LOG_DEBUG, dir.path("ready") + " is ready"));
  DirectCall slash({{"path", "ready"}, {"timeout", "0.3"}}, {{"working_dir", dir.path() + "/"}});
  CHECK(slash.run("wait_file") == TRAPEZE_HOOK_CONTINUE);
  DirectCall absent({{"path", "nothing"}, {"timeout", "0.3"}}, {{"working_dir", dir.path()}});
  CHECK(absent.run("wait_file") == TRAPEZE_HOOK_VETO);
  CHECK(absent.logged(TRAPEZE_LOG_WARNING, "gave up waiting for " + dir.path("nothing") +
                                               " after 0.3s (no such file or directory)"));
}

TEST_CASE("wait_file: options, and cancellation", "[unit][plugins]") {
  DirectCall none(Options{});
  CHECK(none.run("wait_file") == TRAPEZE_HOOK_ERROR);
  CHECK(none.error == "option path is required");
  DirectCall bad(Options{{"path", "/x"}, {"timeout", "0"}});
  CHECK(bad.run("wait_file") == TRAPEZE_HOOK_ERROR);
  CHECK(bad.error == bad_duration("timeout", "0"));

  Inbox inbox;
  HookRunner runner(inbox.post(), 1);
  auto r = run_one(runner, inbox, request("wait_file", {{"path", "/nonexistent/trapeze/ready"}}, 300ms));
  CHECK(r.outcome == HookOutcome::timed_out);
  CHECK(inbox.wait_until([&] { return runner.stats().abandoned == 0; }, 5s));
}

// ---- all together -------------------------------------------------------------------------

TEST_CASE("stock hooks: many calls at once, each with its own answer", "[unit][plugins]") {
  Server redis(redis_replying("+PONG\r\n"));
  Server http(http_replying(200, "ready"));
  Server tcp(accept_only);
  REQUIRE((redis.listening() && http.listening() && tcp.listening()));
  TempDir dir;
  touch(dir.path("ready"));
  auto refused = std::to_string(closed_port());

  Inbox inbox;
  HookRunner runner(inbox.post(), 4);
  std::vector<std::pair<HookRequest, HookOutcome>> calls;
  for (int i = 0; i < 8; ++i) {
    calls.emplace_back(request("check_redis", {{"port", redis.port_text()}}), HookOutcome::proceed);
    calls.emplace_back(request("check_redis", {{"port", refused}}), HookOutcome::veto);
    calls.emplace_back(request("wait_tcp", {{"port", tcp.port_text()}}), HookOutcome::proceed);
    calls.emplace_back(
        request("wait_http", {{"url", "http://127.0.0.1:" + http.port_text() + "/"}, {"expect", "ready"}}),
        HookOutcome::proceed);
    calls.emplace_back(request("wait_file", {{"path", dir.path("ready")}}), HookOutcome::proceed);
    calls.emplace_back(request("wait_file", {{"path", dir.path("never")}, {"timeout", "0.2"}}),
                       HookOutcome::veto);
  }
  std::vector<std::optional<HookOutcome>> got(calls.size());
  for (std::size_t i = 0; i < calls.size(); ++i)
    runner.run(calls[i].first, [&got, i](HookResult r) { got[i] = r.outcome; });
  REQUIRE(inbox.wait_until(
      [&] { return std::all_of(got.begin(), got.end(), [](const auto& g) { return g.has_value(); }); }, 60s));
  for (std::size_t i = 0; i < calls.size(); ++i) {
    INFO("call " << i << ": " << reinterpret_cast<void*>(calls[i].first.fn));
    REQUIRE(got[i].has_value());
    CHECK(*got[i] == calls[i].second);
  }
}
