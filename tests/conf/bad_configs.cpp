// Configs with one mistake each: loading fails, and the first error names file:line, the key
// and what is wrong, in exactly these words.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>

#include "support.hpp"

using namespace trapeze::conf;
using trapeze::conf::test::kData;
using trapeze::conf::test::quiet_options;

namespace {

struct Bad {
  std::string file;      // under data/bad
  std::string expected;  // the first error after "path:", with {dir} for data/bad
};

std::string replace_dir(std::string text, const std::string& dir) {
  for (auto pos = text.find("{dir}"); pos != std::string::npos; pos = text.find("{dir}"))
    text.replace(pos, 5, dir);
  return text;
}

/// The first error of loading `path`, or a description of what happened instead.
std::string first_error(const std::string& path, const LoadOptions& options) {
  try {
    Config c = load(path, options);
    return "(loaded without error)";
  } catch (const ConfigError& e) {
    REQUIRE_FALSE(e.diagnostics().empty());
    CHECK(e.diagnostics().front().severity == Severity::error);
    CHECK(std::string(e.what()) == to_string(e.diagnostics().front()));
    return to_string(e.diagnostics().front());
  }
}

}  // namespace

TEST_CASE("bad configs: the exact first error", "[unit][conf]") {
  const std::vector<Bad> table = {
      {"arbiter_unknown.ini", "2: endpiont: unknown option for the arbiter; did you mean 'endpoint'?"},
      {"array_of_ints.toml", "3: depends_on: expected an array of strings"},
      {"bad_bool.ini", "3: respawn: expected true or false, got 'maybe'"},
      {"bad_duration.ini",
       "3: graceful_timeout: expected a duration such as 500ms, 30s or 2m (a bare number is seconds), got "
       "'soon'"},
      {"bad_duration_unit.ini",
       "3: max_age: expected a duration such as 500ms, 30s or 2m (a bare number is seconds), got '10 days'"},
      {"duration_too_long.ini",
       "3: graceful_timeout: expected a duration such as 500ms, 30s or 2m (a bare number is seconds), got "
       "'1e300'"},
      {"toml_duration_too_long.toml",
       "3: min_uptime: expected a duration such as 500ms, 30s or 2m (a bare number is seconds), got "
       "'2444444444444444444444444444s'"},
      {"bad_header.ini", "3: malformed section header '[watcher:b'"},
      {"bad_rlimit.ini",
       "3: rlimit_nofiles: unknown resource limit 'nofiles'; did you mean 'rlimit_nofile'?"},
      {"bad_rlimit_value.ini", "3: rlimit_nofile: expected an integer, got 'lots'"},
      {"bad_signal.ini", "3: stop_signal: expected a signal such as TERM, SIGINT or 15, got 'TERMINATE'"},
      {"bad_signal_number.ini", "3: stop_signal: expected a signal such as TERM, SIGINT or 15, got '0'"},
      {"bad_umask.ini", "3: umask: expected an octal mode between 000 and 777, got '0999'"},
      {"both_arbiter_sections.ini",
       "3: [trapeze]: both [circus] and [trapeze] are given (the other at "
       "{dir}/both_arbiter_sections.ini:1); use one"},
      {"check_body.ini", "4: check.up.body: only an http check has a body; check up is a tcp check"},
      {"check_http.ini", "3: check.up.http: expected an http:// URL, got 'https://example.com/health'"},
      {"check_interval.ini", "4: check.up.interval: unknown check option; did you mean 'check.up.period'?"},
      {"check_log.ini",
       "3: check.up.log: a liveness check is tcp, http or exec (log and notify are readiness only)"},
      {"check_name.ini",
       "3: check.Up.tcp: a check name uses lower-case letters, digits, '-' and '_', got 'Up'"},
      {"check_no_kind.ini", "3: [watcher:web]: check up: give one of tcp, http, exec"},
      {"check_no_name.ini",
       "3: check.tcp: expected check.NAME.OPTION, such as check.alive.tcp = localhost:8080"},
      {"check_notify.ini",
       "3: check.up.notify: a liveness check is tcp, http or exec (log and notify are readiness only)"},
      {"check_option.ini", "4: check.up.perod: unknown check option; did you mean 'check.up.period'?"},
      {"check_option_far.ini",
       "4: check.up.zzzzzz: unknown check option (tcp, http, body, exec, period, timeout, threshold)"},
      {"check_period_zero.ini", "4: check.up.period: must be more than 0"},
      {"check_tcp.ini", "3: check.up.tcp: expected host:port with a port from 1 to 65535, got 'localhost'"},
      {"check_threshold.ini", "4: check.up.threshold: must be between 1 and 1000000, got 0"},
      {"check_timeout_zero.ini", "4: check.up.timeout: must be more than 0"},
      {"check_two_kinds.ini", "4: check.up.http: check up has one kind; check.up.tcp is already given"},
      {"date.toml",
       "3: graceful_timeout: dates and times are not accepted; durations are strings such as \"30s\""},
      {"default_section.ini",
       "1: [DEFAULT]: the [DEFAULT] section is not supported; repeat options in each section"},
      {"depends_cycle.ini", "1: depends_on: a dependency cycle: a -> b -> a"},
      {"depends_unknown.ini", "1: depends_on: names no watcher: 'db'"},
      {"empty_key.ini", "3: an option with no name: '= value'"},
      {"env_option.ini", "3: env: expected KEY=VALUE pairs separated by commas, got 'B'"},
      {"flapping_option.ini",
       "3: flapping.attempt: unknown flapping option; did you mean 'flapping.attempts'?"},
      {"hook_flag.ini", "3: hooks.before_start: expected true or false, got 'sometimes'"},
      {"hook_isolate.ini", "4: hooks.after_start.isolate: expected true or false, got 'maybe'"},
      {"hook_no_dot.ini",
       "3: hooks.before_start: expected 'path/to/library.so:function' or 'package.module.function', got "
       "'check_redis'"},
      {"hook_options_only.ini",
       "3: hooks.after_start: has settings but no function (hooks.after_start = SPEC)"},
      {"hook_point.ini",
       "3: hooks.before_strat: unknown hook 'before_strat'; did you mean 'hooks.before_start'?"},
      {"hook_setting.ini",
       "4: hooks.after_start.timout: unknown hook setting 'timout'; did you mean "
       "'hooks.after_start.timeout'?"},
      {"hook_spec_commas.ini",
       "3: hooks.before_start: expected 'library.so:function' or 'package.module.function', optionally "
       "followed by ', true', got 'a.b.c, true, false'"},
      {"hook_timeout_zero.ini", "4: hooks.after_start.timeout: must be more than 0"},
      {"hook_unresolved.ini",
       "3: hooks.before_start: cannot find mycoolapp/myplugins.so or mycoolapp.myplugins.so for hook "
       "'mycoolapp.myplugins.check_redis' in the plugin directories: {dir}"},
      {"include.toml", "2: include: include and include_dir are INI options; a TOML config is one file"},
      {"juju_event.ini",
       "3: juju.on_ready: a charm event name uses lower-case letters, digits, '-' and '_', got 'Web Ready'"},
      {"juju_mode.ini", "4: mode: expected exec or direct, got 'remote'"},
      {"juju_no_unit.ini", "1: [juju]: unit is not set and JUJU_UNIT_NAME is not in the environment"},
      {"loglevel.ini", "2: loglevel: expected debug, info, warning, error or critical, got 'verbose'"},
      {"max_retry_range.ini", "3: max_retry: must be between -1 and 1000000, got -2"},
      {"pubsub_hwm.ini", "2: pubsub_hwm: must be between 1 and 100000000, got 0"},
      {"missing_cmd.ini", "1: [watcher:web]: missing cmd: a watcher needs a command to run"},
      {"names_clash.ini",
       "4: [watcher:web]: the watcher name clashes with 'Web' at {dir}/names_clash.ini:1 (names are compared "
       "without case)"},
      {"negative_duration.ini",
       "3: warmup_delay: expected a duration such as 500ms, 30s or 2m (a bare number is seconds), got '-1'"},
      {"no_equals.ini", "3: cannot parse 'this line has no separator': expected 'key = value'"},
      {"no_section.ini",
       "1: a value outside any section: 'cmd = sleep 1' (a section header such as [watcher:NAME] must come "
       "first)"},
      {"numprocesses_float.ini", "3: numprocesses: expected an integer, got '2.5'"},
      {"numprocesses_negative.ini", "3: numprocesses: must be between 0 and 100000, got -1"},
      {"numprocesses_word.ini", "3: numprocesses: expected an integer, got 'two'"},
      {"on_check_failure.ini", "3: on_check_failure: expected ignore or restart, got 'reboot'"},
      {"priority_order.ini", "2: priority_order: expected ascending or descending, got 'highest'"},
      {"ready_http.ini", "3: ready.http: expected an http:// URL, got 'localhost:8080/health'"},
      {"ready_option.ini", "3: ready.intervall: unknown readiness option; did you mean 'ready.interval'?"},
      {"ready_regex.ini",
       "3: ready.log: invalid regular expression 'Ready (to': Mismatched '(' and ')' in regular expression"},
      {"ready_tcp.ini", "3: ready.tcp: expected host:port with a port from 1 to 65535, got 'localhost'"},
      {"ready_tcp_port.ini",
       "3: ready.tcp: expected host:port with a port from 1 to 65535, got 'localhost:99999999999999999999'"},
      {"ready_two.ini", "4: ready.log: a watcher has one readiness check; ready.tcp is already given"},
      {"singleton_many.ini", "1: [watcher:web]: singleton = true allows one process, but numprocesses = 2"},
      {"socket_family.ini", "2: family: expected AF_INET, AF_INET6 or AF_UNIX, got 'AF_PACKET'"},
      {"socket_port.ini", "2: port: must be between 0 and 65535, got 70000"},
      {"socket_unknown.ini", "2: hots: unknown option for a socket"},
      {"stream_class.ini",
       "3: stdout_stream.class: unknown stream class 'FileStrem'; did you mean 'FileStream'?"},
      {"stream_no_filename.ini", "1: stderr_stream.filename: is required by stderr_stream.class"},
      {"stream_option.ini",
       "5: stdout_stream.max_byte: unknown stream option; did you mean 'stdout_stream.max_bytes'?"},
      {"stream_rotate_when.ini",
       "5: stdout_stream.rotate_when: expected S, M, H, D, W0 to W6 or midnight, got 'W7'"},
      {"syntax.toml", "3: Error while parsing key-value pair: expected value, saw '\\n'"},
      {"toml_check_not_table.toml",
       "3: checks: expected a table [watchers.web.checks.NAME] with tcp, http or exec"},
      {"toml_check_period.toml",
       "6: checks.up.period: expected a duration such as 500ms, 30s or 2m (a bare number is seconds), got "
       "-5"},
      {"toml_check_threshold.toml", "6: checks.up.threshold: expected an integer, got '3'"},
      {"toml_check_two.toml", "6: checks.up.exec: check up has one kind; checks.up.tcp is already given"},
      {"toml_duplicate.toml",
       "4: Error while parsing table header: cannot redefine existing table 'watchers.web'"},
      {"toml_duration.toml",
       "3: graceful_timeout: expected a duration such as 500ms, 30s or 2m (a bare number is seconds), got "
       "'30 seconds'"},
      {"toml_hook_isolate.toml", "5: hooks.before_start.isolate: expected true or false, got 'yes'"},
      {"toml_unknown_option.toml",
       "5: hooks.before_start.ignore_failures: unknown hook setting 'ignore_failures'; did you mean "
       "'hooks.before_start.ignore_failure'?"},
      {"toml_watcher_not_table.toml", "2: watchers.web: expected a table [watchers.web]"},
      {"top_level_key.toml",
       "1: loglevel: a top-level key must be a table such as [arbiter] or [watchers.NAME]"},
      {"type_bool.toml", "3: respawn: expected true or false, got 'yes please'"},
      {"type_cmd.toml", "2: cmd: expected a string, got 42"},
      {"type_string.toml", "3: numprocesses: expected an integer, got '3'"},
      {"unknown_option.ini", "3: numprocess: unknown option for a watcher; did you mean 'numprocesses'?"},
      {"unknown_option_far.ini", "3: zzzzzzzz: unknown option for a watcher"},
      {"unknown_section.ini", "1: [wacher:web]: unknown section; did you mean [watcher:web]?"},
      {"unknown_section_far.ini",
       "1: [frobnicate]: unknown section (sections are circus, env, env:NAMES, watcher:NAME, socket:NAME, "
       "plugin:NAME, juju)"},
      {"unknown_table.toml", "1: [watcher]: unknown table; did you mean [watchers]?"},
      {"watcher_name_space.ini",
       "1: [watcher:my web]: the watcher name 'my web' contains ' ': names may not contain blanks, control "
       "characters or any of * ? [ ] , /"},
      {"watcher_name_star.ini",
       "1: [watcher:web*]: the watcher name 'web*' contains '*': names may not contain blanks, control "
       "characters or any of * ? [ ] , /"},
      {"watcher_no_name.ini", "1: [watcher:]: a watcher needs a name: [watcher:NAME]"},
  };
  REQUIRE(table.size() >= 40);
  const std::string dir = kData + "/bad";
  LoadOptions options = quiet_options();
  options.resolve_hooks = true;
  for (const Bad& row : table) {
    DYNAMIC_SECTION(row.file) {
      std::string path = dir + "/" + row.file;
      CHECK(first_error(path, options) == path + ":" + replace_dir(row.expected, dir));
    }
  }
}

TEST_CASE("every error is reported, not only the first", "[unit][conf]") {
  const std::string path = kData + "/bad/../../../../examples/broken.ini";
  try {
    load(path, quiet_options());
    FAIL("broken.ini loaded");
  } catch (const ConfigError& e) {
    std::vector<std::string> got;
    for (const auto& d : e.diagnostics()) got.push_back(to_string(d));
    CHECK(got ==
          std::vector<std::string>{
              path + ":4: numprocess: unknown option for a watcher; did you mean 'numprocesses'?",
              path + ":5: graceful_timeout: expected a duration such as 500ms, 30s or 2m (a bare number is "
                     "seconds), got 'soon'",
              path + ":6: stop_signal: expected a signal such as TERM, SIGINT or 15, got 'TERMINATE'",
              path + ":8: [wacher:worker]: unknown section; did you mean [watcher:worker]?"});
  }
}

TEST_CASE("a missing config file", "[unit][conf]") {
  const std::string path = kData + "/does-not-exist.ini";
  CHECK(first_error(path, quiet_options()) == path + ": cannot read the file: No such file or directory");
}

TEST_CASE("a hook plugin writable by group or others is refused", "[unit][conf]") {
  char dir_template[] = "/tmp/trapeze-test-XXXXXX";
  REQUIRE(::mkdtemp(dir_template) != nullptr);
  const std::string dir = dir_template;
  const std::string plugin = dir + "/unsafe.so";
  std::ofstream(plugin) << "not really a library";
  const std::string config = dir + "/trapeze.ini";
  std::ofstream(config) << "[watcher:w]\ncmd = sleep 1\nhooks.before_start = unsafe.so:hook\n";
  LoadOptions options = quiet_options();
  options.resolve_hooks = true;

  REQUIRE(::chmod(plugin.c_str(), 0664) == 0);
  CHECK(first_error(config, options) == config + ":3: hooks.before_start: refusing plugin '" + plugin +
                                            "': it is writable by group or others (chmod go-w)");
  REQUIRE(::chmod(plugin.c_str(), 0646) == 0);
  CHECK(first_error(config, options) == config + ":3: hooks.before_start: refusing plugin '" + plugin +
                                            "': it is writable by group or others (chmod go-w)");
  REQUIRE(::chmod(plugin.c_str(), 0644) == 0);
  CHECK(first_error(config, options) == "(loaded without error)");

  std::remove(plugin.c_str());
  std::remove(config.c_str());
  ::rmdir(dir.c_str());
}
