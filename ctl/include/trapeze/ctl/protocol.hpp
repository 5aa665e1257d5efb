// circus's control protocol: one JSON object per message, in both directions.
//   request: {"id": ..., "command": "incr", "properties": {"name": "web", "nb": 2}, "msg_type": "dealer"}
//   reply:   {"status": "ok", "time": 1700000000.5, ..., "id": ...}
//            {"status": "error", "reason": "...", "errno": 3, "time": ..., "id": ...}
// Pure functions: no sockets, no clock of their own. The arbiter's control server and the
// `trapeze` client both use them.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

namespace trapeze::ctl {

/// circus's errno values (circus/commands/errors.py).
enum class ErrorCode : int {
  not_specified = 0,
  invalid_json = 1,
  unknown_command = 2,
  message_error = 3,
  os_error = 4,
  command_error = 5,
  bad_msg_data_error = 6,
};

/// The largest request accepted, in bytes; larger ones get an error reply unread.
inline constexpr std::size_t kMaxRequestBytes = 1 << 20;
/// The deepest nesting of arrays and objects accepted in a request.
inline constexpr std::size_t kMaxRequestDepth = 64;

struct Request {
  nlohmann::json id;    // echoed in the reply; null when the client sent none
  std::string command;  // lower-cased, known
  nlohmann::json properties = nlohmann::json::object();
  bool cast = false;     // msg_type "cast": the client wants no reply
  bool waiting = false;  // properties.waiting: reply when the work is done, not when it starts
};

struct RequestError {
  nlohmann::json id;  // when the request was readable enough to have one
  ErrorCode code = ErrorCode::not_specified;
  std::string reason;
  bool cast = false;
};

/// Parses and validates one request frame: size, JSON, shape, a known command, and the type
/// of every property that command takes. Never throws.
std::variant<Request, RequestError> parse_request(std::string_view frame);

/// {"status":"ok","time":now,...props,"id":id}; `props` must be an object (or null).
nlohmann::json ok_reply(const nlohmann::json& id, double now, nlohmann::json props = nullptr);
/// {"status":"error","reason":...,"errno":...,"time":now,"id":id}.
nlohmann::json error_reply(const nlohmann::json& id, double now, ErrorCode code, std::string_view reason);

/// The commands a request may name, in circus's spelling, plus trapeze's own.
const std::vector<std::string>& known_commands();

}  // namespace trapeze::ctl
