// When to respawn a process, pause a flapping watcher, or give up: pure functions of the
// watcher's history and the times given, with no I/O and no clock of their own, so that every
// rule is table-tested without sleeping.
#pragma once

#include <chrono>
#include <vector>

#include "trapeze/conf/config.hpp"

namespace trapeze::watchers::policy {

using Duration = std::chrono::milliseconds;
using TimePoint = std::chrono::steady_clock::time_point;

inline constexpr Duration kFirstBackoff = std::chrono::milliseconds(100);
inline constexpr Duration kMaxBackoff = std::chrono::seconds(30);

/// The wait before the next spawn after `failures` failures in a row (a run shorter than
/// min_uptime, or a spawn that failed): 0 for none, then 100 ms doubling, capped at 30 s.
Duration backoff(int failures);

/// One watcher's restart history. Starts empty; only the functions below change it.
struct History {
  int failures = 0;              // short runs and failed spawns in a row
  int spawn_failures = 0;        // failed spawns in a row (exec failed, before_spawn vetoed)
  std::vector<TimePoint> exits;  // exits inside the current flapping window, oldest first
  int flapping_pauses = 0;       // pauses for flapping since the last stable run
};

enum class Action {
  respawn,  // spawn again after `delay`
  pause,    // flapping: stop respawning for `delay` (flapping.retry_in), then start again
  give_up,  // the watcher fails: flapping.max_retry pauses, or max_retry failed spawns, were used up
};

struct Decision {
  Action action = Action::respawn;
  Duration delay{0};

  friend bool operator==(const Decision&, const Decision&) = default;
};

/// Called when a process of a respawning watcher exits without being asked to, `started` and
/// `exited` being its spawn and exit times. A run of at least min_uptime clears the failures (the
/// replacement starts at once); a shorter one counts as a failure and backs off. circus's
/// flapping rule comes first: flapping.attempts exits within flapping.window pause the
/// watcher for flapping.retry_in, and after flapping.max_retry pauses (-1: never) it gives up.
/// A run of at least flapping.window (and min_uptime) forgives earlier pauses.
Decision on_exit(History& h, const conf::WatcherConfig& cfg, TimePoint started, TimePoint exited);

/// Called when a spawn failed. After max_retry failed spawns in a row (-1: never) it gives up.
Decision on_spawn_failed(History& h, const conf::WatcherConfig& cfg);

/// Called when a paused watcher starts again: the flapping window starts anew, as in circus.
void after_pause(History& h);

}  // namespace trapeze::watchers::policy
