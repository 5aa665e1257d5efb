#include "trapeze/ctl/cli.hpp"

#include <iostream>

#include <CLI/CLI.hpp>

namespace trapeze::ctl {

int main(int argc, char** argv, const RunFunction& run) {
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

  RunArgs run_args;
  CLI::App* run_cmd = app.add_subcommand("run", "Run the arbiter: start the watchers and supervise them");
  run_cmd->add_option("CONFIG", run_args.config, "the config file (.ini or .toml)")->required();
  run_cmd->add_flag("--daemon", run_args.daemon,
                    "detach (new session, stdio to /dev/null or the log file); exits 0 at once if an "
                    "arbiter already runs for this config");
  run_cmd->add_option("--pidfile", run_args.pidfile, "write the arbiter's pid here (overrides the config)");
  run_cmd->add_option("--events-file", run_args.events_file, "append every event to this file as JSON lines");
  run_cmd->add_option("--log-level", run_args.log_level, "debug, info, warning, error or critical")
      ->check(CLI::IsMember({"debug", "info", "warning", "error", "critical"}));
  run_cmd->add_option("--log-output", run_args.log_file, "the arbiter's log: a file, or - for stderr");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  try {
    if (check_cmd->parsed()) return check(check_options, std::cout, std::cerr);
    if (run_cmd->parsed()) return run(run_args);
  } catch (const std::exception& e) {
    // Nothing should get here; if something does, say what instead of aborting.
    std::cerr << "trapeze: " << e.what() << '\n';
    return 1;
  }
  return 2;
}

}  // namespace trapeze::ctl
