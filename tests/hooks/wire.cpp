// The hook host's wire: every message round-trips, frames split anywhere are reassembled, and
// what does not parse is refused with a reason.
#include <catch2/catch.hpp>

#include "trapeze/hooks/wire.hpp"

using namespace std::chrono_literals;
namespace wire = trapeze::hooks::wire;
using trapeze::hooks::HookOutcome;

namespace {

std::string body_of(const std::string& frame) {
  wire::FrameReader reader;
  reader.feed(frame);
  auto body = reader.next();
  REQUIRE(body.has_value());
  CHECK_FALSE(reader.partial());
  return *body;
}

}  // namespace

TEST_CASE("wire: every message round-trips", "[unit][hooks]") {
  wire::HostRequest req;
  req.library = "/opt/hooks/libcheck.so";
  req.symbol = "check_redis";
  req.hook_name = "after_reap";
  req.watcher_name = "queue-worker";
  req.pid = 1LL << 40;
  req.signum = 15;
  req.exit_status = -9;
  req.watcher_options = {
      {"cmd", "redis-server --port 6379"}, {"numprocesses", "3"}, {"env", "{\"A\":\"é\"}"}};
  req.hook_options = {{"host", "127.0.0.1"}, {"empty", ""}};
  req.timeout = 2500ms;
  req.check_only = true;
  CHECK(wire::decode_to_host(body_of(wire::encode(wire::ToHost{req}))) == wire::ToHost{req});
  CHECK(wire::decode_to_host(body_of(wire::encode(wire::ToHost{wire::Cancel{}}))) ==
        wire::ToHost{wire::Cancel{}});
  for (const wire::FromHost& m : {wire::FromHost{wire::LogRecord{2, "redis is slow\nsecond line"}},
                                  wire::FromHost{wire::Answer{HookOutcome::proceed, ""}},
                                  wire::FromHost{wire::Answer{HookOutcome::veto, "vetoed"}},
                                  wire::FromHost{wire::Answer{HookOutcome::error, "database is down"}},
                                  wire::FromHost{wire::LoadError{"cannot load plugin 'x': no"}}})
    CHECK(wire::decode_from_host(body_of(wire::encode(m))) == m);
}

TEST_CASE("wire: frames arrive in pieces, several at once", "[unit][hooks]") {
  std::string stream = wire::encode(wire::FromHost{wire::LogRecord{1, "one"}}) +
                       wire::encode(wire::FromHost{wire::Answer{HookOutcome::veto, "vetoed"}});
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    wire::FrameReader reader;
    std::vector<std::string> bodies;
    reader.feed(std::string_view(stream).substr(0, cut));
    while (auto b = reader.next()) bodies.push_back(*b);
    reader.feed(std::string_view(stream).substr(cut));
    while (auto b = reader.next()) bodies.push_back(*b);
    REQUIRE(bodies.size() == 2);
    CHECK(wire::decode_from_host(bodies[0]) == wire::FromHost{wire::LogRecord{1, "one"}});
    CHECK(wire::decode_from_host(bodies[1]) == wire::FromHost{wire::Answer{HookOutcome::veto, "vetoed"}});
    CHECK_FALSE(reader.partial());
  }
}

TEST_CASE("wire: what does not parse is refused with a reason", "[unit][hooks]") {
  auto from_host_error = [](const std::string& body) {
    try {
      wire::decode_from_host(body);
    } catch (const wire::WireError& e) {
      return std::string(e.what());
    }
    return std::string("(parsed)");
  };
  CHECK(from_host_error("not json") == "a message is not a JSON object");
  CHECK(from_host_error("[1,2]") == "a message is not a JSON object");
  CHECK(from_host_error("{}") == "a message lacks 'outcome'");
  CHECK(from_host_error(R"({"outcome":"maybe","error":""})") == "a message has an unknown outcome 'maybe'");
  CHECK(from_host_error(R"({"outcome":"veto","error":3})") == "a message has a bad 'error'");
  CHECK(from_host_error(R"({"log":{"level":"high","message":"x"}})") == "a message has a bad 'level'");
  try {
    wire::decode_to_host(R"({"library":"x"})");
    FAIL("parsed");
  } catch (const wire::WireError& e) {
    CHECK(std::string(e.what()) == "a message lacks 'symbol'");
  }
  // A length over the bound is refused before its bytes come.
  wire::FrameReader reader;
  reader.feed(std::string("\xff\xff\xff\x7f", 4));
  CHECK_THROWS_AS(reader.next(), wire::WireError);
}
