// The one binary: `trapeze SUBCOMMAND ...`. The clients and tools live in ctl/; `run` is here.
#include <cstring>

#include "trapeze/arbiter/run.hpp"
#include "trapeze/ctl/cli.hpp"
#include "trapeze/hooks/host.hpp"

int main(int argc, char** argv) {
  // Hidden from --help: the arbiter starts it, for hooks with isolate = true (hooks/host.hpp).
  if (argc == 2 && std::strcmp(argv[1], "hook-host") == 0) return trapeze::hooks::host_main();
  return trapeze::ctl::main(argc, argv, [](const trapeze::ctl::RunArgs& a) {
    return trapeze::arbiter::run({a.config, a.daemon, a.pidfile, a.events_file, a.log_level, a.log_file});
  });
}
