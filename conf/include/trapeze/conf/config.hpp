// The configuration model: plain value structs, filled by the INI and TOML loaders
// (through one builder that checks types, ranges and keys) and read by everything else.
// Nothing here does I/O; a Config is a value that can be compared, copied and printed.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace trapeze::conf {

using Duration = std::chrono::milliseconds;

/// Where a value came from, for messages: "file:line".
struct Location {
  std::string file;
  int line = 0;

  friend bool operator==(const Location&, const Location&) = default;
};

/// circus's stream classes, by what they do. Python classes other than these cannot be loaded.
enum class StreamKind { inherit, null, stdout, file, timed_rotating_file, watched_file };

struct StreamConfig {
  StreamKind kind = StreamKind::inherit;  // inherit: circus's default, output discarded unless configured
  std::string filename;
  std::uint64_t max_bytes = 0;  // 0: never rotate by size
  int backup_count = 0;
  std::string time_format;        // strftime prefix for each line; empty: none
  std::string rotate_when = "H";  // TimedRotatingFileStream: S, M, H, D, W0-W6, midnight
  int rotate_interval = 1;
  bool utc = false;
  std::string color;  // FancyStdoutStream

  friend bool operator==(const StreamConfig&, const StreamConfig&) = default;
};

/// One hook point bound to a function of a plugin shared object.
struct HookConfig {
  std::string spec;             // as written: "path/lib.so:symbol" or "pkg.module.function"
  bool ignore_failure = false;  // circus's trailing ", true"
  bool isolate = false;         // run in a hook-host process, not in the arbiter
  Duration timeout = std::chrono::seconds(30);
  std::map<std::string, std::string> options;  // hooks.NAME.options.* : handed to the hook
  std::string library;  // resolved absolute path of the shared object (empty until resolved)
  std::string symbol;   // the function's symbol
  Location where;

  friend bool operator==(const HookConfig&, const HookConfig&) = default;
};

/// circus's flapping plugin, built in. A watcher whose processes die `attempts` times within
/// `window` pauses for `retry_in`; after `max_retry` pauses it is given up (state failed).
struct FlappingConfig {
  bool enabled = true;  // circus's check_flapping
  int attempts = 2;
  Duration window = std::chrono::seconds(1);
  Duration retry_in = std::chrono::seconds(7);
  int max_retry = 5;  // -1: never give up

  friend bool operator==(const FlappingConfig&, const FlappingConfig&) = default;
};

enum class ReadyKind { none, tcp, http, exec, log, notify, notification_fd };

/// How to tell that a process is ready. `none`: alive after warmup_delay.
struct ReadyConfig {
  ReadyKind kind = ReadyKind::none;
  std::string target;     // host:port, URL, command or regex; for notification_fd, the fd number
  std::string http_body;  // http: optional expected body substring
  Duration interval = std::chrono::milliseconds(100);
  Duration timeout = std::chrono::seconds(1);  // one probe
  Duration start_timeout = std::chrono::seconds(60);

  friend bool operator==(const ReadyConfig&, const ReadyConfig&) = default;
};

/// A liveness check, Pebble's: probed every `period`; `threshold` failures in a row make it "down".
struct CheckConfig {
  std::string name;
  ReadyKind kind = ReadyKind::none;  // tcp, http or exec only
  std::string target;                // host:port, URL or command
  std::string http_body;             // http: optional expected body substring
  Duration period = std::chrono::seconds(10);
  Duration timeout = std::chrono::seconds(3);
  int threshold = 3;
  Location where;  // where the check's first key is

  friend bool operator==(const CheckConfig&, const CheckConfig&) = default;
};

/// What a watcher does when one of its checks goes down.
enum class OnCheckFailure { ignore, restart };

/// Which charm event to dispatch for a watcher's workload events; an empty string disables one.
struct WatcherJujuConfig {
  std::optional<std::string> on_ready, on_check_failed, on_check_recovered, on_exit, on_notice;

  friend bool operator==(const WatcherJujuConfig&, const WatcherJujuConfig&) = default;
};

struct WatcherConfig {
  std::string name;
  Location where;  // the section header

  std::string cmd;
  std::string args;
  std::string executable;
  bool shell = false;
  std::string shell_args;
  std::string working_dir;
  std::optional<std::string> uid, gid;  // names or numbers, resolved when spawning
  std::optional<mode_t> umask;

  bool copy_env = false;
  bool copy_path = false;
  /// The variables the config gives the child ([env], [env:PATTERNS], env options), $VAR
  /// expanded. With copy_env they go over the arbiter's own environment at spawn time.
  std::map<std::string, std::string> env;

  int numprocesses = 1;
  Duration warmup_delay{0};
  bool autostart = true;
  int priority = 0;
  bool singleton = false;
  bool respawn = true;
  int max_retry = 5;  // -1: retry forever
  Duration min_uptime = std::chrono::seconds(1);
  FlappingConfig flapping;

  Duration graceful_timeout = std::chrono::seconds(30);
  int stop_signal = 15;  // SIGTERM
  bool stop_children = false;
  bool send_hup = false;
  Duration max_age{0};  // 0: disabled
  Duration max_age_variance = std::chrono::seconds(30);

  /// RLIMIT name in lower case without the prefix ("nofile") to value; nullopt is RLIM_INFINITY.
  std::map<std::string, std::optional<std::uint64_t>> rlimits;

  StreamConfig stdout_stream, stderr_stream;
  bool close_child_stdin = true;
  bool close_child_stdout = false;
  bool close_child_stderr = false;
  std::string stdin_socket;

  bool use_sockets = false;
  bool on_demand = false;

  std::map<std::string, HookConfig> hooks;  // by hook point name
  ReadyConfig ready;
  std::vector<CheckConfig> checks;  // sorted by name
  OnCheckFailure on_check_failure = OnCheckFailure::ignore;
  std::vector<std::string> depends_on;
  WatcherJujuConfig juju;

  friend bool operator==(const WatcherConfig&, const WatcherConfig&) = default;
};

/// circus's [socket:NAME]: bound by the arbiter, passed to children by fd.
struct SocketConfig {
  std::string name;
  Location where;
  std::string host = "localhost";
  int port = 8080;
  std::string path;  // AF_UNIX when set
  std::string family = "AF_INET";
  std::string type = "SOCK_STREAM";
  std::string interface;
  int backlog = 2048;
  std::optional<mode_t> umask;
  bool replace = false;
  bool so_reuseport = false;
  bool blocking = false;

  friend bool operator==(const SocketConfig&, const SocketConfig&) = default;
};

/// circus's [plugin:NAME]: a Python class trapeze cannot run. Kept so `check` can show it and warn.
struct PluginConfig {
  std::string name;
  Location where;
  std::string use;
  std::map<std::string, std::string> options;

  friend bool operator==(const PluginConfig&, const PluginConfig&) = default;
};

enum class PriorityOrder { ascending, descending };

struct ArbiterConfig {
  std::string endpoint;         // control (ROUTER); empty: ipc:// in the runtime directory
  std::string pubsub_endpoint;  // events (PUB); empty: ipc:// in the runtime directory
  std::string endpoint_owner;
  std::string curve_keypair;  // a keypair file (trapeze keygen): CURVE on the bus and control sockets
  std::string curve_clients;  // a file of client public keys allowed in; empty: any with the server key
  std::string pidfile;
  std::string loglevel = "info";
  std::string logoutput = "-";
  std::optional<mode_t> umask;
  Duration warmup_delay{0};
  PriorityOrder priority_order = PriorityOrder::ascending;
  std::vector<std::string> plugin_dirs;            // searched for dotted hook names, in order
  // Events queued for one subscriber that reads slower than they come; past it, that
  // subscriber loses events (and sees a gap in seq). Bounds the memory one can make us hold.
  int pubsub_hwm = 100000;
  Duration check_delay = std::chrono::seconds(5);  // circus's; kept for show, unused

  friend bool operator==(const ArbiterConfig&, const ArbiterConfig&) = default;
};

enum class JujuMode { exec, direct };

struct JujuConfig {
  bool configured = false;  // a [juju] section was given
  std::string unit;         // default: $JUJU_UNIT_NAME
  std::string charm_dir;    // default: $JUJU_CHARM_DIR
  std::string model;        // default: $JUJU_MODEL_NAME
  JujuMode mode = JujuMode::exec;
  std::string queue_file;  // default: in the runtime directory
  int max_retry = 5;
  Duration backoff = std::chrono::seconds(1);

  friend bool operator==(const JujuConfig&, const JujuConfig&) = default;
};

enum class Severity { warning, error };

/// One finding about a config, printed as "file:line: key: message".
struct Diagnostic {
  Severity severity = Severity::error;
  Location where;
  std::string key;  // the option or section concerned; may be empty
  std::string message;

  friend bool operator==(const Diagnostic&, const Diagnostic&) = default;
};

/// "file:line: key: message", or "file:line: warning: key: message" (empty parts left out).
std::string to_string(const Diagnostic& d);

struct Config {
  std::string path;                // the main config file as given
  std::vector<std::string> files;  // every file read, main first, then includes
  ArbiterConfig arbiter;
  std::vector<WatcherConfig> watchers;  // sorted by name, as circus does; priority orders starts
  std::vector<SocketConfig> sockets;    // sorted by name
  std::vector<PluginConfig> plugins;    // sorted by name
  JujuConfig juju;
  std::vector<Diagnostic> warnings;  // errors are thrown, see ConfigError

  const WatcherConfig* find_watcher(std::string_view name) const;

  friend bool operator==(const Config&, const Config&) = default;
};

std::string_view to_string(StreamKind k);
std::string_view to_string(ReadyKind k);
std::string_view to_string(OnCheckFailure f);
std::string_view to_string(PriorityOrder o);
std::string_view to_string(JujuMode m);

}  // namespace trapeze::conf
