#include "trapeze/watchers/policy.hpp"

#include <algorithm>

namespace trapeze::watchers::policy {

Duration backoff(int failures) {
  if (failures <= 0) return Duration(0);
  Duration delay = kFirstBackoff;
  for (int i = 1; i < failures && delay < kMaxBackoff; ++i) delay *= 2;
  return std::min(delay, kMaxBackoff);
}

Decision on_exit(History& h, const conf::WatcherConfig& cfg, TimePoint started, TimePoint exited) {
  const conf::FlappingConfig& f = cfg.flapping;
  auto uptime = std::chrono::duration_cast<Duration>(exited - started);
  if (uptime >= cfg.min_uptime) {
    h.failures = 0;
    h.spawn_failures = 0;
    if (uptime >= f.window) h.flapping_pauses = 0;
  } else {
    ++h.failures;
  }

  if (f.enabled) {
    h.exits.push_back(exited);
    std::erase_if(h.exits, [&](TimePoint t) { return exited - t > f.window; });
    if (static_cast<int>(h.exits.size()) >= f.attempts) {
      h.exits.clear();
      if (f.max_retry != -1 && h.flapping_pauses >= f.max_retry) return {Action::give_up, Duration(0)};
      ++h.flapping_pauses;
      return {Action::pause, f.retry_in};
    }
  }
  return {Action::respawn, backoff(h.failures)};
}

Decision on_spawn_failed(History& h, const conf::WatcherConfig& cfg) {
  ++h.failures;
  ++h.spawn_failures;
  if (cfg.max_retry != -1 && h.spawn_failures > cfg.max_retry) return {Action::give_up, Duration(0)};
  return {Action::respawn, backoff(h.failures)};
}

void after_pause(History& h) {
  h.exits.clear();
}

}  // namespace trapeze::watchers::policy
