// circus's control protocol: what a request may be, and the error reply for everything else.
#include <catch2/catch.hpp>

#include "trapeze/ctl/protocol.hpp"

using namespace trapeze::ctl;
using nlohmann::json;

namespace {

RequestError must_fail(std::string_view frame) {
  auto result = parse_request(frame);
  INFO("frame: " << frame.substr(0, 200));
  REQUIRE(std::holds_alternative<RequestError>(result));
  return std::get<RequestError>(result);
}

Request must_parse(std::string_view frame) {
  auto result = parse_request(frame);
  if (auto* e = std::get_if<RequestError>(&result)) FAIL("refused: " << e->reason);
  return std::get<Request>(result);
}

}  // namespace

TEST_CASE("well-formed requests, as circusctl sends them", "[unit][ctl]") {
  Request r = must_parse(
      R"({"id": "abc", "command": "incr", "properties": {"name": "web", "nb": 2, "waiting": true}})");
  CHECK(r.id == "abc");
  CHECK(r.command == "incr");
  CHECK(r.properties["nb"] == 2);
  CHECK(r.waiting);
  CHECK_FALSE(r.cast);

  Request status = must_parse(R"({"command": "STATUS"})");  // circus lower-cases the name
  CHECK(status.command == "status");
  CHECK(status.id.is_null());
  CHECK(status.properties == json::object());

  Request cast = must_parse(R"({"id": 7, "command": "quit", "properties": {}, "msg_type": "cast"})");
  CHECK(cast.cast);
  CHECK(cast.id == 7);

  CHECK(must_parse(R"({"command": "signal", "properties": {"name": "w", "signum": "HUP"}})").command ==
        "signal");
  CHECK(must_parse(R"({"command": "signal", "properties": {"name": "w", "signum": 9}})").command == "signal");
  CHECK(must_parse(R"({"command": "get", "properties": {"name": "w", "keys": ["cmd", "numprocesses"]}})")
            .command == "get");
  CHECK(must_parse(R"({"command": "list", "properties": null})").command == "list");
  // A property no schema names is passed on, as circus does.
  CHECK(
      must_parse(R"({"command": "start", "properties": {"name": "w", "future": 1}})").properties["future"] ==
      1);
}

TEST_CASE("malformed requests get an error reply with circus's errno", "[unit][ctl]") {
  struct Row {
    std::string frame;
    ErrorCode code;
    std::string reason;
  };
  const std::vector<Row> table = {
      {"", ErrorCode::invalid_json, "json invalid"},
      {"{", ErrorCode::invalid_json, "json invalid"},
      {"not json", ErrorCode::invalid_json, "json invalid"},
      {"{\"command\": \"status\"} trailing", ErrorCode::invalid_json, "json invalid"},
      {"{\"command\": \"st\xff\xfe\"}", ErrorCode::invalid_json, "json invalid"},  // not UTF-8
      {"[\"status\"]", ErrorCode::message_error, "a request must be a JSON object"},
      {"\"status\"", ErrorCode::message_error, "a request must be a JSON object"},
      {"42", ErrorCode::message_error, "a request must be a JSON object"},
      {"null", ErrorCode::message_error, "a request must be a JSON object"},
      {"{}", ErrorCode::message_error, "message invalid: 'command' is missing"},
      {R"({"id": 1, "properties": {}})", ErrorCode::message_error, "message invalid: 'command' is missing"},
      {R"({"command": 5})", ErrorCode::message_error, "'command' must be a string, got 5"},
      {R"({"command": null})", ErrorCode::message_error, "'command' must be a string, got null"},
      {R"({"command": ["status"]})", ErrorCode::message_error,
       "'command' must be a string, got [\"status\"]"},
      {R"({"command": "frobnicate"})", ErrorCode::unknown_command, "unknown command: \"frobnicate\""},
      {R"({"command": ""})", ErrorCode::unknown_command, "unknown command: \"\""},
      {R"({"command": "status", "properties": []})", ErrorCode::message_error,
       "'properties' must be an object, got []"},
      {R"({"command": "status", "properties": "web"})", ErrorCode::message_error,
       "'properties' must be an object, got \"web\""},
      {R"({"command": "status", "msg_type": 3})", ErrorCode::message_error, "msg_type must be a string"},
      {R"({"command": "incr"})", ErrorCode::message_error, "message invalid 'name' is missing"},
      {R"({"command": "incr", "properties": {"name": 3}})", ErrorCode::message_error,
       "property 'name' must be a string, got 3"},
      {R"({"command": "incr", "properties": {"name": ""}})", ErrorCode::message_error,
       "property 'name' must not be empty"},
      {R"({"command": "incr", "properties": {"name": "w", "nb": "two"}})", ErrorCode::message_error,
       "property 'nb' must be an integer, got \"two\""},
      {R"({"command": "incr", "properties": {"name": "w", "nb": 1.5}})", ErrorCode::message_error,
       "property 'nb' must be an integer, got 1.5"},
      {R"({"command": "decr", "properties": {"name": "w", "nb": -3}})", ErrorCode::message_error,
       "property 'nb' must not be negative, got -3"},
      {R"({"command": "stop", "properties": {"name": "w", "waiting": "yes"}})", ErrorCode::message_error,
       "property 'waiting' must be true or false, got \"yes\""},
      {R"({"command": "signal", "properties": {"name": "w"}})", ErrorCode::message_error,
       "message invalid 'signum' is missing"},
      {R"({"command": "signal", "properties": {"name": "w", "signum": ""}})", ErrorCode::message_error,
       "property 'signum' must be a signal number or name, got \"\""},
      {R"({"command": "signal", "properties": {"name": "w", "signum": {"n": 9}}})", ErrorCode::message_error,
       "property 'signum' must be a signal number or name, got {\"n\":9}"},
      {R"({"command": "get", "properties": {"name": "w", "keys": "cmd"}})", ErrorCode::message_error,
       "property 'keys' must be a list of strings, got \"cmd\""},
      {R"({"command": "get", "properties": {"name": "w", "keys": ["cmd", 1]}})", ErrorCode::message_error,
       "property 'keys' must be a list of strings, got [\"cmd\",1]"},
      {R"({"command": "set", "properties": {"name": "w", "options": ["numprocesses", 2]}})",
       ErrorCode::message_error, "property 'options' must be an object, got [\"numprocesses\",2]"},
      {R"({"command": "add", "properties": {"name": "w"}})", ErrorCode::message_error,
       "message invalid 'cmd' is missing"},
      {R"({"command": "stats", "properties": {"extended": 1}})", ErrorCode::message_error,
       "property 'extended' must be true or false, got 1"},
  };
  REQUIRE(table.size() >= 25);
  for (const Row& row : table) {
    DYNAMIC_SECTION(row.frame) {
      RequestError e = must_fail(row.frame);
      CHECK(e.code == row.code);
      CHECK(e.reason == row.reason);
    }
  }
}

TEST_CASE("an error keeps the request's id and cast flag when it has them", "[unit][ctl]") {
  RequestError e = must_fail(R"({"id": "x1", "command": "nope", "msg_type": "cast"})");
  CHECK(e.id == "x1");
  CHECK(e.cast);
  CHECK(must_fail("{oops").id.is_null());
}

TEST_CASE("oversized and deeply nested input is refused without harm", "[unit][ctl]") {
  std::string big =
      R"({"command": "status", "properties": {"pad": ")" + std::string(kMaxRequestBytes, 'x') + "\"}}";
  RequestError e = must_fail(big);
  CHECK(e.code == ErrorCode::message_error);
  CHECK(e.reason == "message too large: " + std::to_string(big.size()) + " bytes, the limit is 1048576");

  // Under the size limit, but deep enough to overflow a recursive parser's stack.
  std::string deep = std::string(400000, '[') + std::string(400000, ']');
  CHECK(must_fail(deep).reason == "message nested deeper than 64 levels");
  std::string deep_props = R"({"command": "status", "properties": {"x": )" + std::string(300000, '{') + "}}";
  CHECK(must_fail(deep_props).reason == "message nested deeper than 64 levels");
  // Brackets inside strings do not count.
  std::string brackets =
      R"({"command": "status", "properties": {"x": ")" + std::string(1000, '[') + R"(\""}})";
  CHECK(must_parse(brackets).properties["x"].get<std::string>().size() == 1001);  // 1000 brackets and a quote
  std::string ok_depth =
      R"({"command": "status", "properties": {"x": )" + std::string(60, '[') + std::string(60, ']') + "}}";
  CHECK(must_parse(ok_depth).command == "status");
}

TEST_CASE("replies have circus's shape", "[unit][ctl]") {
  json ok = ok_reply("id-1", 1700000000.5, {{"numprocesses", 3}});
  CHECK(ok == json{{"status", "ok"}, {"time", 1700000000.5}, {"numprocesses", 3}, {"id", "id-1"}});
  CHECK(ok_reply(nullptr, 1.0) == json{{"status", "ok"}, {"time", 1.0}, {"id", nullptr}});
  json err = error_reply(5, 2.0, ErrorCode::unknown_command, "unknown command: \"x\"");
  CHECK(
      err ==
      json{
          {"status", "error"}, {"reason", "unknown command: \"x\""}, {"errno", 2}, {"time", 2.0}, {"id", 5}});
}

TEST_CASE("a long value shown in a reason is cut between characters, not inside one", "[unit][ctl]") {
  // 55 ASCII letters, then two-byte characters: byte 57 of the shown text falls inside one.
  std::string name = std::string(55, 'a') + std::string(10 * 2, '\0');
  for (std::size_t i = 0; i < 10; ++i) name.replace(55 + 2 * i, 2, "\xC3\xA9");  // U+00E9
  RequestError e = must_fail(json{{"id", 1}, {"command", name}}.dump());
  CHECK(e.reason == "unknown command: \"" + std::string(55, 'a') + "...");
  CHECK_NOTHROW(error_reply(e.id, 1.0, e.code, e.reason).dump());
}
