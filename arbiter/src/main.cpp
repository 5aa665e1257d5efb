// The one binary: `trapeze SUBCOMMAND ...`.
#include "trapeze/ctl/cli.hpp"

int main(int argc, char** argv) {
  return trapeze::ctl::main(argc, argv);
}
