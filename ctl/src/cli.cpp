#include "trapeze/ctl/cli.hpp"

#include <cstdlib>
#include <iostream>
#include <map>

#include <CLI/CLI.hpp>

#include "trapeze/ctl/client.hpp"
#include "trapeze/ctl/curve.hpp"

namespace trapeze::ctl {
namespace {

using json = nlohmann::json;

// What one client subcommand collected from the command line.
struct ClientArgs {
  std::string name;
  std::vector<std::string> words;  // further positionals: keys, key=value, signal, cmd
  std::string key;                 // notify
  long long nb = 1;
  long long pid = -1;
  std::string signum;
  std::string args;
  bool wait = false;
  bool rolling = false;
  bool surge = false;
  long long batch = 1;
  long long max_retry = -2;  // not given
  bool start = false;
  bool children = false;
  bool recursive = false;
  long long lines = 100;
  std::vector<std::string> options;  // key=value
};

json key_values(const std::vector<std::string>& pairs, std::string& bad) {
  json out = json::object();
  for (const auto& p : pairs) {
    auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0) {
      bad = p;
      return nullptr;
    }
    out[p.substr(0, eq)] = p.substr(eq + 1);
  }
  return out;
}

}  // namespace

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

  // The clients: each finds the arbiter the same way.
  ClientOptions client;
  double timeout_seconds = 5;
  // Given before the subcommand (trapeze -c x.ini status) or after it (trapeze status -c x.ini).
  auto client_group = app.add_option_group("client", "How the client subcommands find the arbiter");
  client_group->add_option("-c,--config", client.config,
                           "the arbiter's config file: its endpoint is derived from it");
  client_group->add_option("--endpoint", client.endpoint,
                           "the control endpoint (default: $TRAPEZE_ENDPOINT)");
  CLI::Option* timeout_option =
      client_group->add_option("--timeout", timeout_seconds, "seconds to wait for the answer (default 5)");
  client_group->add_flag("--json", client.json, "print the raw reply");
  std::string curve_server_key, curve_keypair;
  client_group->add_option("--curve-server-key", curve_server_key,
                           "a tcp:// arbiter's CURVE public key, or its .pub file ($TRAPEZE_CURVE_SERVER_KEY)");
  client_group->add_option("--curve-keypair", curve_keypair,
                           "this client's keypair file, from trapeze keygen ($TRAPEZE_CURVE_KEYPAIR)");

  std::string keygen_path;
  CLI::App* keygen_cmd =
      app.add_subcommand("keygen", "Make a CURVE keypair: PATH (secret, mode 0600) and PATH.pub");
  keygen_cmd->add_option("PATH", keygen_path, "where to write it")->required();
  auto client_options = [&](CLI::App* cmd) { cmd->fallthrough(); };
  ClientArgs a;
  std::map<std::string, CLI::App*> commands;
  auto command = [&](const std::string& name, const std::string& help) {
    CLI::App* cmd = app.add_subcommand(name, help);
    client_options(cmd);
    commands[name] = cmd;
    return cmd;
  };
  auto optional_name = [&](CLI::App* cmd) {
    cmd->add_option("NAME", a.name, "a watcher (glob patterns allowed)");
  };
  auto required_name = [&](CLI::App* cmd) { cmd->add_option("NAME", a.name, "a watcher")->required(); };

  optional_name(command("status", "The state of every watcher, or of one"));
  optional_name(command("list", "The watchers, or the pids of one"));
  for (auto [name, help] : {std::pair{"start", "Start every watcher (in priority order), or one"},
                            std::pair{"stop", "Stop every watcher (in reverse priority order), or one"},
                            std::pair{"restart", "Restart every watcher, or one"},
                            std::pair{"reload", "Reload: SIGHUP to send_hup watchers, restart the others"}}) {
    auto* cmd = command(name, help);
    optional_name(cmd);
    cmd->add_flag("--wait", a.wait, "answer when it is done, not when it started");
  }
  {
    auto* cmd = commands["restart"];
    cmd->add_flag("--rolling", a.rolling, "one process after the other, each replacement ready before the next");
    cmd->add_option("--batch", a.batch, "with --rolling: this many at a time (default 1)")
        ->check(CLI::PositiveNumber);
    cmd->add_flag("--surge", a.surge, "with --rolling: start each replacement before stopping its old process");
    cmd->add_option("--max-retry", a.max_retry,
                    "with --rolling: attempts at a slot before the rollout stops (default: the watcher's max_retry)")
        ->check(CLI::Range(-1, 1000000));
  }
  command("reloadconfig", "Read the config file again and apply what changed")
      ->add_flag("--wait", a.wait, "answer when it is done");
  for (auto name : {"incr", "decr"}) {
    auto* cmd = command(
        name, std::string(name) == "incr" ? "Add processes to a watcher" : "Remove processes from a watcher");
    required_name(cmd);
    cmd->add_option("NB", a.nb, "how many (default 1)")->check(CLI::PositiveNumber);
  }
  {
    auto* cmd = command("signal", "Send a signal to a watcher's processes");
    required_name(cmd);
    cmd->add_option("SIGNAL", a.signum, "TERM, SIGHUP, 9, ...")->required();
    cmd->add_option("--pid", a.pid, "only this process");
    cmd->add_flag("--children", a.children, "to the children of the processes instead");
    cmd->add_flag("--recursive", a.recursive, "to the processes and all their descendants");
  }
  {
    auto* cmd = command("kill", "Stop processes of a watcher (it replaces them)");
    required_name(cmd);
    cmd->add_option("--pid", a.pid, "only this process");
    cmd->add_option("--signal", a.signum, "instead of the watcher's stop_signal");
  }
  {
    auto* cmd = command("add", "Add a watcher");
    required_name(cmd);
    cmd->add_option("CMD", a.words, "its command")->required()->expected(1);
    cmd->add_option("--args", a.args, "its arguments");
    cmd->add_option("-o,--option", a.options, "KEY=VALUE, as in a config file");
    cmd->add_flag("--start", a.start, "start it at once");
  }
  required_name(command("rm", "Stop and remove a watcher"));
  {
    auto* cmd = command("get", "Options of a watcher");
    required_name(cmd);
    cmd->add_option("KEY", a.words, "option names")->required();
  }
  {
    auto* cmd = command("set", "Change options of a watcher (it restarts unless only numprocesses changed)");
    required_name(cmd);
    cmd->add_option("KEY=VALUE", a.words, "options")->required();
  }
  required_name(command("options", "Every option of a watcher"));
  command("globaloptions", "The arbiter's options");
  optional_name(command("stats", "Per-process statistics: age, CPU, memory, command"));
  command("dstats", "The arbiter's own statistics");
  optional_name(command("numprocesses", "How many processes run"));
  command("numwatchers", "How many watchers there are");
  command("listsockets", "The sockets the arbiter bound");
  {
    auto* cmd = command("logs", "The last output of a watcher's processes (kept in memory)");
    required_name(cmd);
    cmd->add_option("-n,--lines", a.lines, "how many lines (default 100)");
  }
  optional_name(command("checks", "The liveness checks: up or down, failures in a row, the last error"));
  {
    auto* cmd = command("notify", "Send a custom notice: the charm gets WATCHER-workload-notice");
    cmd->add_option("KEY", a.key, "the notice's key, such as example.com/backup-done")->required();
    cmd->add_option("DATA", a.words, "KEY=VALUE data, passed as TRAPEZE_NOTICE_KEY=VALUE");
    cmd->add_option("-w,--watcher", a.name, "the workload it is about (default: $TRAPEZE_WATCHER)");
  }
  command("dispatches", "The charm dispatches queued, running or retrying");
  optional_name(command("operations", "Each watcher's operation queue: rollouts, reloads, count changes"));
  command("quit", "Stop every watcher and the arbiter");

  ListenOptions listen_options;
  CLI::App* listen_cmd = app.add_subcommand("listen", "Print events as they happen, one per line");
  client_options(listen_cmd);
  listen_cmd->add_option("TOPIC", listen_options.topics,
                         "topic prefixes, such as watcher.web. (default: all)");
  listen_cmd->add_option("--events-endpoint", listen_options.events_endpoint, "the event bus endpoint");
  listen_cmd->add_option("--count", listen_options.count, "exit after this many events");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  client.timeout = std::chrono::milliseconds(static_cast<long long>(timeout_seconds * 1000));

  try {
    if (check_cmd->parsed()) return check(check_options, std::cout, std::cerr);
    if (keygen_cmd->parsed()) {
      try {
        auto keys = curve::generate();
        curve::write_keypair(keygen_path, keys);
        std::cout << keys.public_key << '\n';
        return 0;
      } catch (const std::exception& e) {
        std::cerr << "trapeze: " << e.what() << '\n';
        return 1;
      }
    }
    // The client sockets read these from the environment.
    if (!curve_server_key.empty()) ::setenv("TRAPEZE_CURVE_SERVER_KEY", curve_server_key.c_str(), 1);
    if (!curve_keypair.empty()) ::setenv("TRAPEZE_CURVE_KEYPAIR", curve_keypair.c_str(), 1);
    if (run_cmd->parsed()) return run(run_args);
    if (listen_cmd->parsed()) {
      listen_options.client = client;
      return listen(listen_options, std::cout, std::cerr);
    }
    for (auto& [name, cmd] : commands) {
      if (!cmd->parsed()) continue;
      json props = json::object();
      if (!a.name.empty()) props["name"] = a.name;
      if (a.wait) props["waiting"] = true;
      if (name == "incr" || name == "decr") props["nb"] = a.nb;
      if (name == "restart" && a.rolling) {
        props["rolling"] = true;
        props["batch"] = a.batch;
        if (a.surge) props["surge"] = true;
        if (a.max_retry != -2) props["max_retry"] = a.max_retry;
        // A rollout takes as long as its processes take to get ready: --wait waits for it
        // while the arbiter answers, unless --timeout bounds the whole wait.
        if (a.wait && timeout_option->count() == 0) client.wait_while_alive = true;
      } else if (name == "restart" && (a.surge || a.batch != 1 || a.max_retry != -2)) {
        std::cerr << "trapeze: --batch, --surge and --max-retry go with --rolling\n";
        return 2;
      }
      if (name == "signal") props["signum"] = a.signum;
      if ((name == "signal" || name == "kill") && a.pid >= 0) props["pid"] = a.pid;
      if (name == "kill" && !a.signum.empty()) props["signum"] = a.signum;
      if (name == "signal" && a.children) props["children"] = true;
      if (name == "signal" && a.recursive) props["recursive"] = true;
      if (name == "logs") props["lines"] = a.lines;
      if (name == "get") props["keys"] = a.words;
      if (name == "add") {
        props["cmd"] = a.words.at(0);
        if (!a.args.empty()) props["args"] = a.args;
        if (a.start) props["start"] = true;
        std::string bad;
        props["options"] = key_values(a.options, bad);
        if (!bad.empty()) {
          std::cerr << "trapeze: expected KEY=VALUE, got '" << bad << "'\n";
          return 2;
        }
      }
      if (name == "notify") {
        if (a.name.empty() && std::getenv("TRAPEZE_WATCHER")) props["name"] = std::getenv("TRAPEZE_WATCHER");
        if (!props.contains("name")) {
          std::cerr << "trapeze: notify: which watcher? use --watcher NAME or $TRAPEZE_WATCHER\n";
          return 2;
        }
        props["key"] = a.key;
        std::string bad;
        props["data"] = key_values(a.words, bad);
        if (!bad.empty()) {
          std::cerr << "trapeze: expected KEY=VALUE, got '" << bad << "'\n";
          return 2;
        }
      }
      if (name == "set") {
        std::string bad;
        props["options"] = key_values(a.words, bad);
        if (!bad.empty()) {
          std::cerr << "trapeze: expected KEY=VALUE, got '" << bad << "'\n";
          return 2;
        }
      }
      return run_command(client, name, props, std::cout, std::cerr);
    }
  } catch (const std::exception& e) {
    // Nothing should get here; if something does, say what instead of aborting.
    std::cerr << "trapeze: " << e.what() << '\n';
    return 1;
  }
  return 2;
}

}  // namespace trapeze::ctl
