// Shared by the conf tests: a load with an injected environment and no look at the machine.
#pragma once

#include <string>

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

}  // namespace trapeze::conf::test
