// The hook host's wire: what the arbiter and a hook-host process say to each other over their
// socketpair. Every message is one frame: a 4-byte length (little-endian) and that many bytes of
// a JSON object. Pure functions and a frame reader, no I/O: table-tested.
//
//   arbiter -> host   {"library","symbol","hook_name","watcher_name","pid","signum",
//                      "exit_status","watcher_options":{},"hook_options":{},"timeout_ms",
//                      "check_only"}                         (the call; exactly one, first)
//                     {"cancel":true}                        (the call is cancelled)
//   host -> arbiter   {"log":{"level":N,"message":S}}        (the hook's log(), any number)
//                     {"outcome":"proceed"|"veto"|"error","error":S}   (the answer, last)
//                     {"load_error":S}                       (the plugin could not be used)
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>

#include "trapeze/hooks/runner.hpp"

namespace trapeze::hooks::wire {

/// Thrown for a frame or a message that does not parse; what() says why.
class WireError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A frame bigger than this is refused (the options of a hook are small).
inline constexpr std::size_t kMaxFrame = 4u << 20;

struct HostRequest {
  std::string library, symbol;
  std::string hook_name, watcher_name;
  std::int64_t pid = 0;
  int signum = 0;
  int exit_status = 0;
  Options watcher_options, hook_options;
  std::chrono::milliseconds timeout{30000};
  bool check_only = false;  // load the plugin and the symbol, call nothing

  friend bool operator==(const HostRequest&, const HostRequest&) = default;
};

struct Cancel {
  friend bool operator==(const Cancel&, const Cancel&) = default;
};
struct LogRecord {
  int level = 1;  // trapeze_log_level
  std::string message;
  friend bool operator==(const LogRecord&, const LogRecord&) = default;
};
struct Answer {
  HookOutcome outcome = HookOutcome::proceed;  // proceed, veto or error
  std::string error;
  friend bool operator==(const Answer&, const Answer&) = default;
};
struct LoadError {
  std::string message;
  friend bool operator==(const LoadError&, const LoadError&) = default;
};

using ToHost = std::variant<HostRequest, Cancel>;
using FromHost = std::variant<LogRecord, Answer, LoadError>;

/// One frame: the length prefix and the JSON text of the message.
std::string encode(const ToHost& message);
std::string encode(const FromHost& message);

/// The message in a frame's body (the JSON text, without the prefix). Throws WireError.
ToHost decode_to_host(std::string_view body);
FromHost decode_from_host(std::string_view body);

/// Splits a byte stream into frame bodies.
class FrameReader {
 public:
  void feed(std::string_view bytes) { buffer_.append(bytes); }
  /// The next whole frame's body, or nullopt until more bytes come. Throws WireError for a
  /// length over kMaxFrame.
  std::optional<std::string> next();
  /// Bytes of an unfinished frame are waiting.
  bool partial() const { return !buffer_.empty(); }

 private:
  std::string buffer_;
};

}  // namespace trapeze::hooks::wire
