// The one binary: `trapeze SUBCOMMAND ...`. The clients and tools live in ctl/; `run` is here.
#include "trapeze/arbiter/run.hpp"
#include "trapeze/ctl/cli.hpp"

int main(int argc, char** argv) {
  return trapeze::ctl::main(argc, argv, [](const trapeze::ctl::RunArgs& a) {
    return trapeze::arbiter::run({a.config, a.daemon, a.pidfile, a.events_file, a.log_level, a.log_file});
  });
}
