// The restart policy, table by table, with made-up times: no process, no sleep.
#include <catch2/catch.hpp>

#include "trapeze/watchers/policy.hpp"

using namespace trapeze::watchers::policy;
using namespace std::chrono_literals;
using trapeze::conf::WatcherConfig;

namespace {

const TimePoint t0{std::chrono::hours(1)};

WatcherConfig no_flapping() {
  WatcherConfig cfg;
  cfg.flapping.enabled = false;
  return cfg;
}

}  // namespace

TEST_CASE("backoff: 100 ms doubling, capped at 30 s", "[unit][watcher]") {
  struct Row {
    int failures;
    Duration expected;
  };
  for (Row r : {Row{-1, 0ms}, Row{0, 0ms}, Row{1, 100ms}, Row{2, 200ms}, Row{3, 400ms}, Row{9, 25600ms},
                Row{10, 30s}, Row{11, 30s}, Row{1000, 30s}}) {
    INFO("failures " << r.failures);
    CHECK(backoff(r.failures) == r.expected);
  }
}

TEST_CASE("a process that ran min_uptime is replaced at once; shorter runs back off", "[unit][watcher]") {
  WatcherConfig cfg = no_flapping();  // min_uptime 1 s
  History h;
  TimePoint t = t0;
  CHECK(on_exit(h, cfg, t, t + 5s) == Decision{Action::respawn, 0ms});
  t += 5s;
  // Crash-looping: each run 10 ms long.
  for (Duration expected : {100ms, 200ms, 400ms, 800ms, 1600ms}) {
    CHECK(on_exit(h, cfg, t, t + 10ms) == Decision{Action::respawn, expected});
    t += 10ms + expected;
  }
  CHECK(on_exit(h, cfg, t, t + 999ms) == Decision{Action::respawn, 3200ms});  // just short of min_uptime
  t += 999ms + 3200ms;
  CHECK(on_exit(h, cfg, t, t + 1s) == Decision{Action::respawn, 0ms});  // a stable run resets it
  CHECK(h.failures == 0);
  CHECK(on_exit(h, cfg, t, t + 10ms) == Decision{Action::respawn, 100ms});
}

TEST_CASE("flapping: attempts exits within the window pause the watcher", "[unit][watcher]") {
  WatcherConfig cfg;
  cfg.flapping.attempts = 3;
  cfg.flapping.window = 10s;
  cfg.flapping.retry_in = 7s;
  History h;
  CHECK(on_exit(h, cfg, t0, t0 + 2s) == Decision{Action::respawn, 0ms});
  CHECK(on_exit(h, cfg, t0 + 2s, t0 + 4s) == Decision{Action::respawn, 0ms});
  CHECK(on_exit(h, cfg, t0 + 4s, t0 + 6s) == Decision{Action::pause, 7s});  // 3 exits in 4 s
  CHECK(h.exits.empty());
  after_pause(h);
  // Exits spread wider than the window never flap.
  TimePoint t = t0 + 13s;
  for (int i = 0; i < 10; ++i, t += 6s) CHECK(on_exit(h, cfg, t, t + 6s).action == Action::respawn);
}

TEST_CASE("flapping: after flapping.max_retry pauses the watcher gives up", "[unit][watcher]") {
  WatcherConfig cfg;  // attempts 2 within 1 s, retry_in 7 s
  cfg.flapping.max_retry = 2;
  History h;
  TimePoint t = t0;
  auto flap = [&] {
    on_exit(h, cfg, t, t + 10ms);
    Decision d = on_exit(h, cfg, t + 110ms, t + 120ms);
    t += 10s;
    after_pause(h);
    return d;
  };
  CHECK(flap() == Decision{Action::pause, 7s});
  CHECK(flap() == Decision{Action::pause, 7s});
  CHECK(flap() == Decision{Action::give_up, 0ms});

  cfg.flapping.max_retry = -1;  // never give up
  History forever;
  h = forever;
  for (int i = 0; i < 100; ++i) CHECK(flap().action == Action::pause);
}

TEST_CASE("flapping: a run as long as the window forgives earlier pauses", "[unit][watcher]") {
  WatcherConfig cfg;
  cfg.flapping.max_retry = 1;
  cfg.flapping.window = 5s;
  History h;
  on_exit(h, cfg, t0, t0 + 10ms);
  CHECK(on_exit(h, cfg, t0 + 20ms, t0 + 30ms).action == Action::pause);
  after_pause(h);
  CHECK(on_exit(h, cfg, t0 + 10s, t0 + 16s) == Decision{Action::respawn, 0ms});  // ran 6 s
  CHECK(h.flapping_pauses == 0);
  on_exit(h, cfg, t0 + 30s, t0 + 30s + 10ms);
  CHECK(on_exit(h, cfg, t0 + 31s, t0 + 31s + 10ms).action == Action::pause);  // not give_up
}

TEST_CASE("failed spawns: max_retry in a row, then give up", "[unit][watcher]") {
  WatcherConfig cfg = no_flapping();
  cfg.max_retry = 2;
  History h;
  CHECK(on_spawn_failed(h, cfg) == Decision{Action::respawn, 100ms});
  CHECK(on_spawn_failed(h, cfg) == Decision{Action::respawn, 200ms});
  CHECK(on_spawn_failed(h, cfg) == Decision{Action::give_up, 0ms});

  History h2;
  on_spawn_failed(h2, cfg);
  on_spawn_failed(h2, cfg);
  on_exit(h2, cfg, t0, t0 + 2s);  // a spawn that worked and ran: the count starts over
  CHECK(on_spawn_failed(h2, cfg) == Decision{Action::respawn, 100ms});

  cfg.max_retry = -1;
  History h3;
  for (int i = 0; i < 50; ++i) CHECK(on_spawn_failed(h3, cfg).action == Action::respawn);
  CHECK(on_spawn_failed(h3, cfg).delay == 30s);
}
