// The time arithmetic of the output streams (Python's TimedRotatingFileHandler, circus's
// time_format prefix), as pure functions of a given time so that tests need no clock.
// Internal to trapeze_watchers; the unit tests include it directly.
#pragma once

#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace trapeze::watchers::detail {

/// circus's rotate_when / rotate_interval / utc, resolved.
struct TimedRotation {
  enum class Unit { seconds, minutes, hours, days, midnight, weekday };
  Unit unit = Unit::hours;
  int weekday = 0;              // W0-W6: 0 is Monday, as Python counts
  std::time_t interval = 3600;  // seconds between two rollovers
  std::string suffix;           // strftime format of the rotated file's suffix
  bool utc = false;
};

/// nullopt when `when` is none of S, M, H, D, MIDNIGHT, W0-W6 (in any case). An interval
/// below 1 counts as 1.
std::optional<TimedRotation> parse_timed_rotation(std::string_view when, int interval, bool utc);

/// The rollover that follows `now` (Python's computeRollover). midnight and W rotate at a
/// midnight; W0 at the midnight that ends a Monday, as Python does.
std::time_t next_rollover(const TimedRotation& r, std::time_t now);

/// What follows "filename." in the name of the file rotated at `rollover_at`: the start of the
/// period it holds (Python's doRollover).
std::string rotated_suffix(const TimedRotation& r, std::time_t rollover_at);

/// Whether `suffix` (what follows "filename.") names a file that `r` rotated, so that it may be
/// deleted as an old backup (Python's extMatch).
bool is_rotated_suffix(const TimedRotation& r, std::string_view suffix);

/// strftime(`format`) at `at`, also understanding Python's %f (microseconds), since circus
/// configs are written for datetime.strftime.
std::string format_time(std::string_view format, const std::timespec& at, bool utc);

}  // namespace trapeze::watchers::detail
