// `trapeze run CONFIG`: the arbiter.
#pragma once

#include <string>

namespace trapeze::arbiter {

struct RunOptions {
  std::string config;
  bool daemon = false;
  std::string pidfile;      // overrides the config's; default: in the runtime directory
  std::string events_file;  // every event as a JSON line, appended (for audits and tests)
  std::string log_level;    // overrides the config's loglevel
  std::string log_file;     // overrides the config's logoutput ("-": stderr)
};

/// Loads the config, starts the watchers and supervises them until SIGTERM, SIGINT or SIGQUIT,
/// then stops everything in reverse priority order. Returns the exit code: 0 after an orderly
/// stop (or, with --daemon, when an arbiter already runs for this config), 1 on a runtime
/// failure, 2 on a config error.
int run(const RunOptions& options);

}  // namespace trapeze::arbiter
