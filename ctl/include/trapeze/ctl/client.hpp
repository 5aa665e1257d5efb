// The client side of the control protocol: one request, one reply, over a DEALER socket, and
// the event listener. Used by the `trapeze` subcommands other than run and check.
#pragma once

#include <chrono>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace trapeze::ctl {

/// How a client finds the arbiter: --endpoint, else $TRAPEZE_ENDPOINT, else the config
/// given with -c (its `endpoint`, or the default ipc socket that `trapeze run` derives from
/// the same config path).
struct ClientOptions {
  std::string config;
  std::string endpoint;
  std::chrono::milliseconds timeout = std::chrono::seconds(5);
  bool json = false;
  /// Wait for the reply however long it takes (a rollout with --wait), as long as the
  /// arbiter answers a probe within `timeout` each time `timeout` passes without the reply.
  bool wait_while_alive = false;
};

/// The control endpoint for `options`. Throws std::runtime_error with a message for the user
/// when none was given or the config cannot be read.
std::string resolve_endpoint(const ClientOptions& options);

struct Answer {
  enum class Kind { reply, timeout } kind = Kind::timeout;
  nlohmann::json reply;  // when kind is reply
};

/// Sends {"id", "command", "properties"} and waits up to `timeout` for the reply.
/// Throws std::runtime_error when the endpoint cannot be used.
Answer call(const std::string& endpoint, const std::string& command, const nlohmann::json& properties,
            std::chrono::milliseconds timeout);

/// Sends `command` and waits for its reply while the arbiter lives: each `probe_every` without
/// the reply, a second connection asks the arbiter something quick; no answer to that in
/// `probe_every` ends the wait (Kind::timeout). For replies that come when work is done.
Answer call_while_alive(const std::string& endpoint, const std::string& command, const nlohmann::json& properties,
                        std::chrono::milliseconds probe_every);

/// Runs one control command and prints its result on `out` (a table or text, or the raw
/// reply with options.json) and errors on `err`. Returns the exit code: 0 ok, 1 an error
/// reply, 2 no arbiter given, 3 no answer in time.
int run_command(const ClientOptions& options, const std::string& command, const nlohmann::json& properties,
                std::ostream& out, std::ostream& err);

struct ListenOptions {
  ClientOptions client;
  std::string events_endpoint;      // else the config's, else asked of the arbiter
  std::vector<std::string> topics;  // prefixes; none: everything
  long count = -1;                  // stop after this many events; -1: never
};

/// `trapeze listen`: prints each event as it arrives, "TOPIC JSON" (or one JSON object with
/// --json). Returns the exit code.
int listen(const ListenOptions& options, std::ostream& out, std::ostream& err);

}  // namespace trapeze::ctl
