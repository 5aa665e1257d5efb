#include "trapeze/ctl/cli.hpp"

#include <iostream>

#include <CLI/CLI.hpp>

namespace trapeze::ctl {

int main(int argc, char** argv) {
  CLI::App app{
      "trapeze: a process supervisor (circus's arbiter, with readiness, plugin hooks and a charm waker)",
      "trapeze"};
  app.set_version_flag("-V,--version", "trapeze " TRAPEZE_VERSION);
  app.require_subcommand(1);

  CheckOptions check_options;
  CLI::App* check_cmd = app.add_subcommand(
      "check", "Validate a config (INI in circus's dialect, or TOML) and print it normalized, as TOML");
  check_cmd->add_option("CONFIG", check_options.config, "the config file (.ini or .toml)")->required();
  check_cmd->add_flag("--json", check_options.json, "print the normalized config as JSON");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  try {
    if (check_cmd->parsed()) return check(check_options, std::cout, std::cerr);
  } catch (const std::exception& e) {
    // Nothing should get here; if something does, say what instead of aborting.
    std::cerr << "trapeze: " << e.what() << '\n';
    return 1;
  }
  return 2;
}

}  // namespace trapeze::ctl
