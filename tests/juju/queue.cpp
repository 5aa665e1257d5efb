// The dispatch queue: FIFO, dedupe of the last request, attempts, and what survives a restart.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "trapeze/juju/queue.hpp"

using namespace trapeze::juju;
using namespace std::chrono_literals;

namespace {

/// A scratch directory removed at the end of the test.
struct ScratchDir {
  ScratchDir() {
    char name[] = "/tmp/trapeze-queue-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    path = name;
  }
  ~ScratchDir() { std::filesystem::remove_all(path); }
  std::string path;
};

const Clock::time_point t0 = Clock::time_point(std::chrono::seconds(1795000000));  // 2026-11-18T11:06:40Z

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

std::string open_error(const std::string& path) {
  try {
    DispatchQueue q(path);
    return "(opened)";
  } catch (const QueueError& e) {
    return e.what();
  }
}

}  // namespace

TEST_CASE("UTC ISO 8601 timestamps", "[unit][juju]") {
  CHECK(utc_iso8601(Clock::time_point(std::chrono::seconds(0))) == "1970-01-01T00:00:00.000000Z");
  CHECK(utc_iso8601(t0 + 1234567us) == "2026-11-18T11:06:41.234567Z");
}

TEST_CASE("FIFO, with a request equal to the last queued one dropped", "[unit][juju]") {
  ScratchDir dir;
  DispatchQueue q(dir.path + "/queue.json");
  CHECK(q.push("redis-workload-ready", "redis", {}, t0));
  CHECK_FALSE(q.push("redis-workload-ready", "redis", {}, t0 + 1s));  // same as the last: dropped
  CHECK(q.push("redis-workload-check-failed", "redis", {{"JUJU_PEBBLE_CHECK_NAME", "ping"}}, t0 + 2s));
  CHECK(q.push("redis-workload-ready", "redis", {}, t0 + 3s));  // equal to an earlier one, not the last
  CHECK_FALSE(q.push("redis-workload-ready", "redis", {}, t0 + 4s));
  CHECK(q.push("redis-workload-ready", "web", {}, t0 + 5s));  // another workload is another request
  REQUIRE(q.entries().size() == 4);
  CHECK(q.entries()[0].event == "redis-workload-ready");
  CHECK(q.entries()[0].requested_at == utc_iso8601(t0));
  CHECK(q.entries()[1].env.at("JUJU_PEBBLE_CHECK_NAME") == "ping");
  CHECK(q.entries()[3].workload == "web");
  CHECK(q.entries()[0].id < q.entries()[1].id);
}

TEST_CASE("a started request does not absorb a new equal one", "[unit][juju]") {
  ScratchDir dir;
  DispatchQueue q(dir.path + "/queue.json");
  REQUIRE(q.push("w-workload-ready", "w", {}, t0));
  q.start_head(t0 + 1s);
  CHECK(q.head()->attempt == 1);
  CHECK(q.head()->executed_at == utc_iso8601(t0 + 1s));
  // The running dispatch may have read the charm's state already: queue the new report.
  CHECK(q.push("w-workload-ready", "w", {}, t0 + 2s));
  q.start_head(t0 + 3s);
  CHECK(q.head()->attempt == 2);
  q.pop_head();
  REQUIRE(q.head() != nullptr);
  CHECK(q.head()->attempt == 0);
  q.pop_head();
  CHECK(q.head() == nullptr);
}

TEST_CASE("every change is on disk when the call returns", "[unit][juju]") {
  ScratchDir dir;
  const std::string path = dir.path + "/queue.json";
  {
    DispatchQueue q(path);
    CHECK_FALSE(std::filesystem::exists(path));  // nothing written before the first change
    q.push("a-workload-ready", "a", {}, t0);
    q.push("b-workload-notice", "b", {{"JUJU_NOTICE_KEY", "example.com/k"}}, t0 + 1s);
    q.start_head(t0 + 2s);
  }  // as if the arbiter were killed here: nothing is flushed at destruction
  DispatchQueue reopened(path);
  REQUIRE(reopened.entries().size() == 2);
  CHECK(reopened.entries()[0].attempt == 1);
  CHECK(reopened.entries()[0].executed_at == utc_iso8601(t0 + 2s));
  CHECK(reopened.entries()[1].env.at("JUJU_NOTICE_KEY") == "example.com/k");
  // Ids keep increasing across restarts, even after the queue empties.
  std::uint64_t last = reopened.entries()[1].id;
  reopened.pop_head();
  reopened.pop_head();
  DispatchQueue again(path);
  CHECK(again.entries().empty());
  again.push("c-workload-ready", "c", {}, t0 + 3s);
  CHECK(again.entries()[0].id > last);

  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST_CASE("a damaged queue file is refused with the reason", "[unit][juju]") {
  ScratchDir dir;
  const std::string path = dir.path + "/queue.json";
  auto check = [&](const std::string& text, const std::string& reason) {
    write_file(path, text);
    CHECK(open_error(path) == "dispatch queue '" + path + "': " + reason);
  };
  check("", "not a JSON object");
  check("{\"version\": 1, \"entries\": [", "not a JSON object");
  check("[]", "not a JSON object");
  check("{\"entries\": []}", "format version (none) is not 1");
  check("{\"version\": 2, \"entries\": [], \"next_id\": 1}", "format version 2 is not 1");
  check("{\"version\": 1, \"next_id\": 1}", "'entries' must be an array");
  check("{\"version\": 1, \"entries\": [], \"next_id\": -1}", "'next_id' must be a positive integer");
  check("{\"version\": 1, \"entries\": [7], \"next_id\": 1}", "entry 0: not an object");
  check("{\"version\": 1, \"entries\": [{\"id\": 1}], \"next_id\": 2}", "entry 0: 'event' is missing");
  check(
      R"({"version": 1, "next_id": 2, "entries": [{"id": 1, "event": "", "workload": "w", "requested_at": "x", "attempt": 0}]})",
      "entry 0: 'event' is empty");
  check(
      R"({"version": 1, "next_id": 2, "entries": [{"id": 1, "event": "e", "workload": "w", "requested_at": "x", "attempt": -1}]})",
      "entry 0: 'attempt' must be a count");
  check(
      R"({"version": 1, "next_id": 2, "entries": [{"id": 1, "event": "e", "workload": "w", "requested_at": "x", "attempt": 0, "env": {"A": 1}}]})",
      "entry 0: env 'A' must be a string");
  check(R"({"version": 1, "next_id": 9, "entries": [
           {"id": 2, "event": "e", "workload": "w", "requested_at": "x", "attempt": 0},
           {"id": 2, "event": "f", "workload": "w", "requested_at": "x", "attempt": 0}]})",
        "entry 1: ids out of order");
  // No room for the next id: a push would wrap to 0 and write a file refused at the next start.
  check(R"({"version": 1, "next_id": 1, "entries": [
           {"id": 18446744073709551615, "event": "e", "workload": "w", "requested_at": "x", "attempt": 0}]})",
        "entry 0: 'id' must be a positive integer");
  check("{\"version\": 1, \"entries\": [], \"next_id\": 18446744073709551615}", "'next_id' must be a positive integer");
}

TEST_CASE("a queue that cannot be written is an error, and the request is not queued", "[unit][juju]") {
  ScratchDir dir;  // a directory that does not exist fails even for root
  DispatchQueue q(dir.path + "/missing-dir/queue.json");
  CHECK_THROWS_AS(q.push("e", "w", {}, t0), QueueError);
  CHECK(q.entries().empty());
}
