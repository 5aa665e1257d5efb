#include "trapeze/ctl/protocol.hpp"

#include <algorithm>
#include <map>

#include <fmt/format.h>

namespace trapeze::ctl {
namespace {

using nlohmann::json;

enum class Type { string, integer, boolean, signal, string_list, object };

struct Property {
  const char* name;
  Type type;
  bool required;
};

/// Each command's properties (circus's commands/*.py, plus trapeze's `logs`). A property not
/// listed is passed on untouched, as circus does; a listed one must have its type.
const std::map<std::string, std::vector<Property>, std::less<>>& schemas() {
  static const std::map<std::string, std::vector<Property>, std::less<>> table = {
      {"add",
       {{"name", Type::string, true},
        {"cmd", Type::string, true},
        {"args", Type::string, false},
        {"options", Type::object, false},
        {"start", Type::boolean, false}}},
      {"decr", {{"name", Type::string, true}, {"nb", Type::integer, false}}},
      {"dstats", {}},
      {"get", {{"name", Type::string, true}, {"keys", Type::string_list, true}}},
      {"globaloptions", {{"key", Type::string, false}, {"option", Type::string, false}}},
      {"incr", {{"name", Type::string, true}, {"nb", Type::integer, false}}},
      {"kill",
       {{"name", Type::string, true}, {"signum", Type::signal, false}, {"pid", Type::integer, false}}},
      {"list", {{"name", Type::string, false}}},
      {"listsockets", {}},
      {"logs", {{"name", Type::string, true}, {"lines", Type::integer, false}}},
      {"checks", {{"name", Type::string, false}}},
      {"notify", {{"name", Type::string, true}, {"key", Type::string, true}, {"data", Type::object, false}}},
      {"dispatches", {}},
      {"numprocesses", {{"name", Type::string, false}}},
      {"numwatchers", {}},
      {"options", {{"name", Type::string, true}}},
      {"quit", {}},
      {"reload",
       {{"name", Type::string, false},
        {"graceful", Type::boolean, false},
        {"sequential", Type::boolean, false}}},
      {"reloadconfig", {}},
      {"restart",
       {{"name", Type::string, false},
        {"match", Type::string, false},
        {"rolling", Type::boolean, false},
        {"batch", Type::integer, false},
        {"surge", Type::boolean, false},
        {"max_retry", Type::integer, false}}},
      {"operations", {{"name", Type::string, false}}},
      {"rm", {{"name", Type::string, true}}},
      {"set", {{"name", Type::string, true}, {"options", Type::object, true}}},
      {"signal",
       {{"name", Type::string, true},
        {"signum", Type::signal, true},
        {"pid", Type::integer, false},
        {"childpid", Type::integer, false},
        {"children", Type::boolean, false},
        {"recursive", Type::boolean, false}}},
      {"start", {{"name", Type::string, false}, {"match", Type::string, false}}},
      {"stats",
       {{"name", Type::string, false},
        {"process", Type::integer, false},
        {"extended", Type::boolean, false}}},
      {"status", {{"name", Type::string, false}}},
      {"stop", {{"name", Type::string, false}, {"match", Type::string, false}}},
  };
  return table;
}

const char* describe(Type t) {
  switch (t) {
    case Type::string:
      return "a string";
    case Type::integer:
      return "an integer";
    case Type::boolean:
      return "true or false";
    case Type::signal:
      return "a signal number or name";
    case Type::string_list:
      return "a list of strings";
    case Type::object:
      return "an object";
  }
  return "?";
}

bool has_type(const json& v, Type t) {
  switch (t) {
    case Type::string:
      return v.is_string();
    case Type::integer:
      return v.is_number_integer();
    case Type::boolean:
      return v.is_boolean();
    case Type::signal:
      return v.is_number_integer() || (v.is_string() && !v.get_ref<const std::string&>().empty());
    case Type::string_list:
      return v.is_array() && std::all_of(v.begin(), v.end(), [](const json& x) { return x.is_string(); });
    case Type::object:
      return v.is_object();
  }
  return false;
}

/// The deepest nesting of arrays and objects in `text`, outside strings; stops counting past
/// `limit`. nlohmann's parser recurses per level, so depth is checked before parsing.
std::size_t nesting_depth(std::string_view text, std::size_t limit) {
  std::size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) break;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

/// The value as the client sent it, shortened for an error message.
std::string shown(const json& v) {
  std::string text = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() <= 60) return text;
  // Cut before a UTF-8 continuation byte, never inside a character: the reason must stay
  // valid UTF-8 JSON text.
  std::size_t cut = 57;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut) + "...";
}

}  // namespace

const std::vector<std::string>& known_commands() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& [name, props] : schemas()) out.push_back(name);
    return out;
  }();
  return names;
}

std::variant<Request, RequestError> parse_request(std::string_view frame) {
  if (frame.size() > kMaxRequestBytes)
    return RequestError{
        nullptr, ErrorCode::message_error,
        fmt::format("message too large: {} bytes, the limit is {}", frame.size(), kMaxRequestBytes)};
  if (nesting_depth(frame, kMaxRequestDepth) > kMaxRequestDepth)
    return RequestError{nullptr, ErrorCode::message_error,
                        fmt::format("message nested deeper than {} levels", kMaxRequestDepth)};
  json msg = json::parse(frame, nullptr, /*allow_exceptions=*/false);
  if (msg.is_discarded()) return RequestError{nullptr, ErrorCode::invalid_json, "json invalid"};
  if (!msg.is_object())
    return RequestError{nullptr, ErrorCode::message_error, "a request must be a JSON object"};

  Request req;
  if (auto it = msg.find("id"); it != msg.end()) req.id = *it;
  if (auto it = msg.find("msg_type"); it != msg.end()) {
    if (!it->is_string()) return RequestError{req.id, ErrorCode::message_error, "msg_type must be a string"};
    req.cast = it->get_ref<const std::string&>() == "cast";
  }
  auto fail = [&](ErrorCode code, std::string reason) {
    return RequestError{req.id, code, std::move(reason), req.cast};
  };

  auto command = msg.find("command");
  if (command == msg.end()) return fail(ErrorCode::message_error, "message invalid: 'command' is missing");
  if (!command->is_string())
    return fail(ErrorCode::message_error, fmt::format("'command' must be a string, got {}", shown(*command)));
  std::string name = command->get<std::string>();
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  auto schema = schemas().find(name);
  if (schema == schemas().end())
    return fail(ErrorCode::unknown_command, fmt::format("unknown command: {}", shown(*command)));
  req.command = name;

  if (auto props = msg.find("properties"); props != msg.end() && !props->is_null()) {
    if (!props->is_object())
      return fail(ErrorCode::message_error,
                  fmt::format("'properties' must be an object, got {}", shown(*props)));
    req.properties = *props;
  }
  for (const Property& p : schema->second) {
    auto it = req.properties.find(p.name);
    if (it == req.properties.end() || it->is_null()) {
      if (p.required)
        return fail(ErrorCode::message_error, fmt::format("message invalid '{}' is missing", p.name));
      continue;
    }
    if (!has_type(*it, p.type))
      return fail(ErrorCode::message_error,
                  fmt::format("property '{}' must be {}, got {}", p.name, describe(p.type), shown(*it)));
    if (p.type == Type::integer && it->get<long long>() < 0)
      return fail(ErrorCode::message_error,
                  fmt::format("property '{}' must not be negative, got {}", p.name, shown(*it)));
    if (std::string_view(p.name) == "name" && it->get_ref<const std::string&>().empty())
      return fail(ErrorCode::message_error, "property 'name' must not be empty");
  }
  if (auto waiting = req.properties.find("waiting"); waiting != req.properties.end() && !waiting->is_null()) {
    if (!waiting->is_boolean())
      return fail(ErrorCode::message_error,
                  fmt::format("property 'waiting' must be true or false, got {}", shown(*waiting)));
    req.waiting = waiting->get<bool>();
  }
  return req;
}

json ok_reply(const json& id, double now, json props) {
  json reply = {{"status", "ok"}, {"time", now}};
  if (props.is_object())
    for (auto& [key, value] : props.items()) reply[key] = std::move(value);
  reply["id"] = id;
  return reply;
}

json error_reply(const json& id, double now, ErrorCode code, std::string_view reason) {
  return {
      {"status", "error"}, {"reason", reason}, {"errno", static_cast<int>(code)}, {"time", now}, {"id", id}};
}

}  // namespace trapeze::ctl
