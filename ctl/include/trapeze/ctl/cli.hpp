// The `trapeze` command line: subcommands other than `run` are clients and tools.
#pragma once

#include <iosfwd>
#include <string>

namespace trapeze::ctl {

/// Parses argv and runs the subcommand. Returns the process exit code:
/// 0 ok, 1 an error reply or failure, 2 a usage or config error, 3 no answer in time.
int main(int argc, char** argv);

struct CheckOptions {
  std::string config;
  bool json = false;
};

/// `trapeze check CONFIG`: loads and validates the config, loads every hook plugin, prints the
/// normalized config on `out` (TOML, or JSON) and every finding on `err`. Returns 0 or 2.
int check(const CheckOptions& options, std::ostream& out, std::ostream& err);

}  // namespace trapeze::ctl
