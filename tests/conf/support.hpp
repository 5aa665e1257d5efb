// Shared by the conf tests: a load with an injected environment and no look at the machine.
#pragma once

#include <string>

#include <catch2/catch.hpp>

#include "trapeze/conf/load.hpp"

namespace trapeze::conf::test {

inline const std::string kData = TRAPEZE_TEST_DATA;

/// An environment of our own, no hook files checked, no PATH search, no installed plugin dir.
inline LoadOptions quiet_options() {
  LoadOptions o;
  o.environ = {{"PATH", "/usr/bin:/bin"}, {"HOME", "/home/tester"}, {"ONLY_IN_ENV", "from-environ"}};
  o.resolve_hooks = false;
  o.check_commands = false;
  return o;
}

inline Config load_data(const std::string& relative, const LoadOptions& o = quiet_options()) {
  return load(kData + "/" + relative, o);
}

/// The watcher called `name`; fails the test when there is none.
inline const WatcherConfig& watcher(const Config& c, std::string_view name) {
  const WatcherConfig* w = c.find_watcher(name);
  INFO("watcher " << name);
  REQUIRE(w != nullptr);
  return *w;
}

/// Whether a warning's "file:line: warning: key: message" contains `text`.
inline bool has_warning(const Config& c, std::string_view text) {
  for (const auto& d : c.warnings)
    if (to_string(d).find(text) != std::string::npos) return true;
  return false;
}

}  // namespace trapeze::conf::test
