// The `trapeze` command line: subcommands other than `run` are clients and tools.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>

namespace trapeze::ctl {

/// The options of `trapeze run`, parsed here and handed to the arbiter.
struct RunArgs {
  std::string config;
  bool daemon = false;
  std::string pidfile;
  std::string events_file;
  std::string log_level;
  std::string log_file;
};
using RunFunction = std::function<int(const RunArgs&)>;

/// Parses argv and runs the subcommand; `run` is the arbiter's entry point (the ctl library
/// does not link the daemon). Returns the process exit code:
/// 0 ok, 1 an error reply or failure, 2 a usage or config error, 3 no answer in time.
int main(int argc, char** argv, const RunFunction& run);

struct CheckOptions {
  std::string config;
  bool json = false;
};

/// `trapeze check CONFIG`: loads and validates the config, loads every hook plugin, prints the
/// normalized config on `out` (TOML, or JSON) and every finding on `err`. Returns 0 or 2.
int check(const CheckOptions& options, std::ostream& out, std::ostream& err);

}  // namespace trapeze::ctl
