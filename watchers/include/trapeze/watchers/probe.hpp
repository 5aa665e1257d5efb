// Readiness and liveness probes that never block the loop: a TCP connect, an HTTP GET over a
// non-blocking socket, a command run as a supervised child. One probe is one attempt; the
// watcher decides when to try again.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "trapeze/conf/config.hpp"
#include "trapeze/loop/loop.hpp"

namespace trapeze::watchers {

struct ProbeSpec {
  conf::ReadyKind kind = conf::ReadyKind::tcp;  // tcp, http or exec
  std::string target;                           // host:port, URL, or a shell command
  std::string http_body;                        // http: a substring the body must contain
  std::chrono::milliseconds timeout{1000};
  std::vector<std::string> env;  // exec: the command's environment
  std::string working_dir;       // exec
};

/// The spec of a readiness or liveness check; `env` and `working_dir` matter for exec only.
ProbeSpec probe_spec(conf::ReadyKind kind, const std::string& target, const std::string& http_body,
                     conf::Duration timeout, const std::vector<std::string>& env, const std::string& working_dir);

/// nullopt: the probe passed; otherwise why it failed ("connect to 127.0.0.1:80: Connection
/// refused", "status 503", "exit status 1", "timed out after 1s").
using ProbeDone = std::function<void(std::optional<std::string> error)>;

/// One probe in flight. Destroying it cancels it: `done` is not called, its socket is closed,
/// its command is killed (and reaped by the arbiter's SIGCHLD handler).
class Probe {
 public:
  virtual ~Probe() = default;
};

/// Starts a probe; `done` runs once, on the loop, never from inside this call.
std::unique_ptr<Probe> start_probe(loop::Loop& loop, const ProbeSpec& spec, ProbeDone done);

/// If `pid` is the command of an exec probe in flight, collects its exit (the probe's result
/// follows) and returns true. For the arbiter's SIGCHLD handler.
bool reap_probe_child(pid_t pid);

/// Splits "host:port" or "[v6]:port". False when it is not that shape.
bool split_host_port(const std::string& text, std::string& host, std::string& port);

struct HttpUrl {
  std::string host, port = "80", path = "/";
};
/// Parses "http://host[:port][/path]"; nullopt for anything else (https included).
std::optional<HttpUrl> parse_http_url(const std::string& url);

}  // namespace trapeze::watchers
