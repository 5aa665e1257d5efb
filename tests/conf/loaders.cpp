// The two loaders on good configs: circus's INI dialect rule by rule, the TOML format table by
// table, and the normalized output loading back to the same model.
#include <catch2/catch.hpp>

#include <csignal>

#include "support.hpp"
#include "trapeze/conf/show.hpp"

using namespace trapeze::conf;
using namespace std::chrono_literals;
using trapeze::conf::test::has_warning;
using trapeze::conf::test::kData;
using trapeze::conf::test::load_data;
using trapeze::conf::test::quiet_options;
using trapeze::conf::test::watcher;

namespace {

/// The model without what depends on where it was read from.
Config comparable(Config c) {
  c.path.clear();
  c.files.clear();
  c.warnings.clear();
  c.plugins.clear();
  c.arbiter.plugin_dirs.clear();
  for (auto& w : c.watchers) {
    w.where = {};
    for (auto& check : w.checks) check.where = {};
    for (auto& [point, h] : w.hooks) {
      h.where = {};
      h.library.clear();
      h.symbol.clear();
    }
  }
  for (auto& s : c.sockets) s.where = {};
  return c;
}

}  // namespace

TEST_CASE("the circus docs' hooks example loads as written", "[unit][conf]") {
  Config c = load_data("good/circus_hooks_example.ini");
  REQUIRE(c.watchers.size() == 2);
  const auto& worker = watcher(c, "queue-worker");
  CHECK(worker.cmd == "python -u worker.py");
  CHECK(worker.priority == 2);
  REQUIRE(worker.hooks.count("before_start") == 1);
  CHECK(worker.hooks.at("before_start").spec == "mycoolapp.myplugins.check_redis");
  CHECK_FALSE(worker.hooks.at("before_start").ignore_failure);
  CHECK(worker.hooks.at("before_start").timeout == 30s);
  CHECK(watcher(c, "redis").cmd == "redis-server");
  CHECK(watcher(c, "redis").priority == 1);
  CHECK(c.arbiter.priority_order == PriorityOrder::ascending);
  CHECK(c.warnings.empty());
}

TEST_CASE("INI: circus's parser rules, value by value", "[unit][conf]") {
  Config c = load_data("good/dialect.ini");
  CHECK(c.arbiter.loglevel == "debug");  // the main file wins over extra-one.ini's "error"
  const auto& web = watcher(c, "web");
  CHECK(web.cmd == "python3 -m http.server");
  CHECK(web.args == "--bind 127.0.0.1");                 // "; comment" after a blank is dropped
  CHECK(web.numprocesses == 3);                          // ':' separates too; the first value wins
  CHECK(web.shell_args == "a;b");                        // ';' without a blank before it stays
  CHECK(web.executable.empty());                         // "" is the empty string
  CHECK(web.working_dir == "/srv/web # not a comment");  // '#' is never an inline comment
  CHECK(web.warmup_delay == 2500ms);
  CHECK(web.graceful_timeout == 90s);
  CHECK(web.max_age == 500ms);
  CHECK(web.stop_signal == SIGQUIT);
  REQUIRE(web.rlimits.count("nofile") == 1);
  CHECK_FALSE(web.rlimits.at("nofile").has_value());  // empty: RLIM_INFINITY
  CHECK(web.rlimits.at("core") == std::optional<std::uint64_t>(0));
  CHECK(web.umask == std::optional<mode_t>(027));
  CHECK(web.uid == std::optional<std::string>("1000"));
  CHECK(web.max_retry == -1);  // from conf.d/more.ini: not given in the main file
  const auto& hook = web.hooks.at("after_spawn");
  CHECK(hook.spec == "/opt/hooks/libaudit.so:on_spawn");
  CHECK(hook.ignore_failure);
  CHECK(hook.timeout == 5s);
  CHECK(hook.isolate);
  CHECK(hook.options.at("level") == "high");
  CHECK(has_warning(c, "numprocesses: given again in [watcher:web]"));

  const auto& worker = watcher(c, "worker");
  CHECK(worker.args == "10\n20\n30");  // continuation lines, blank lines skipped
  CHECK(worker.stop_signal == SIGRTMIN + 1);
  CHECK(worker.stdout_stream.kind == StreamKind::file);  // a filename alone means FileStream
  CHECK(worker.stdout_stream.filename == "/var/log/worker.log");
  CHECK(worker.stderr_stream.kind == StreamKind::stdout);
  CHECK_FALSE(worker.respawn);
  CHECK_FALSE(worker.autostart);
  CHECK(worker.singleton);

  CHECK(watcher(c, "extra").cmd == "sleep 1");
  CHECK(watcher(c, "from-dir").stop_signal == SIGKILL);
  CHECK(c.files == std::vector<std::string>{kData + "/good/dialect.ini", kData + "/good/extra-one.ini",
                                            kData + "/good/conf.d/more.ini"});
}

TEST_CASE("INI: environment sections and circus variables", "[unit][conf]") {
  Config c = load_data("good/env.ini");
  const auto& alpha = watcher(c, "alpha");
  CHECK(alpha.cmd == "run-alpha --log /var/log/app/alpha.log --home /home/tester");
  CHECK(alpha.args == "a1 $(circus.wid) $(circus.env.NOT_SET)");
  CHECK(alpha.env ==
        std::map<std::string, std::string>{
            {"LOGDIR", "/var/log/app"}, {"SHARED", "all"}, {"ONLY_ALPHA", "a1"}, {"PAIR", "yes"}});
  CHECK_FALSE(alpha.copy_env);
  CHECK(has_warning(c, "args: $(circus.env.NOT_SET) is not set; left as written"));

  const auto& beta = watcher(c, "beta");
  CHECK(beta.copy_env);
  CHECK(beta.cmd == "run-beta overridden for b*");  // [env:b*] comes after [env] for beta
  CHECK(beta.env.at("OWN") == "mine");
  CHECK(beta.env.at("PATH") == "/usr/bin:/bin:/opt/beta");  // $PATH from the arbiter's environment
  CHECK(beta.env.at("PAIR") == "yes");
  CHECK(beta.env.count("ONLY_IN_ENV") == 0);  // copy_env adds the environment at spawn time

  const auto& gamma = watcher(c, "gamma");
  CHECK(gamma.env == std::map<std::string, std::string>{{"LOGDIR", "/var/log/app"}, {"SHARED", "all"}});
}

TEST_CASE("TOML: every table of the native format", "[unit][conf]") {
  Config c = load_data("good/full.toml");
  const ArbiterConfig& a = c.arbiter;
  CHECK(a.endpoint == "ipc:///tmp/trapeze-test/control");
  CHECK(a.pubsub_endpoint == "tcp://127.0.0.1:5556");
  CHECK(a.loglevel == "warning");
  CHECK(a.priority_order == PriorityOrder::descending);
  CHECK(a.plugin_dirs == std::vector<std::string>{kData + "/good/plugins", "/opt/trapeze/plugins"});
  CHECK(a.umask == std::optional<mode_t>(022));
  CHECK(a.warmup_delay == 250ms);
  CHECK(a.pubsub_hwm == 5000);

  const auto& cache = watcher(c, "cache");
  CHECK(cache.stop_signal == SIGINT);
  CHECK(cache.graceful_timeout == 5s);
  CHECK(cache.rlimits.at("nofile") == std::optional<std::uint64_t>(4096));
  CHECK_FALSE(cache.rlimits.at("core").has_value());
  CHECK(cache.uid == std::optional<std::string>("1000"));
  CHECK(cache.gid == std::optional<std::string>("www-data"));
  CHECK(cache.ready.kind == ReadyKind::log);
  CHECK(cache.ready.target == "Ready to accept connections");
  CHECK(cache.ready.interval == 50ms);
  CHECK(cache.ready.start_timeout == 10s);

  const auto& web = watcher(c, "web");
  CHECK(web.args == "--directory /srv/app");
  CHECK(web.numprocesses == 4);
  CHECK(web.depends_on == std::vector<std::string>{"cache"});
  CHECK(web.min_uptime == 2s);
  CHECK(web.max_retry == -1);
  CHECK(web.use_sockets);
  CHECK_FALSE(web.close_child_stdin);
  CHECK(web.env == std::map<std::string, std::string>{{"APP", "/srv/app"}, {"PYTHONUNBUFFERED", "1"}});
  CHECK(web.ready.kind == ReadyKind::http);
  CHECK(web.ready.http_body == "ok");
  CHECK(web.ready.timeout == 2s);
  CHECK(web.flapping.attempts == 3);
  CHECK(web.flapping.window == 10s);
  CHECK(web.flapping.retry_in == 30s);
  CHECK(web.flapping.max_retry == 2);
  const auto& before = web.hooks.at("before_start");
  CHECK(before.spec == "mycoolapp.myplugins.check_redis");
  CHECK(before.ignore_failure);
  CHECK(before.timeout == 3s);
  CHECK(before.isolate);
  CHECK_FALSE(web.hooks.at("after_start").isolate);  // the default
  CHECK(before.options == std::map<std::string, std::string>{{"host", "127.0.0.1"}, {"port", "6379"}});
  CHECK(web.hooks.at("after_start").spec == "/opt/hooks/libnotify.so:announce");
  CHECK(web.juju.on_ready == std::optional<std::string>("web-is-live"));
  CHECK(web.juju.on_exit == std::optional<std::string>(""));  // false: disabled
  CHECK_FALSE(web.juju.on_check_failed.has_value());          // not given: the default name
  CHECK(web.stdout_stream.kind == StreamKind::timed_rotating_file);
  CHECK(web.stdout_stream.rotate_when == "midnight");
  CHECK(web.stdout_stream.backup_count == 7);
  CHECK(web.stdout_stream.utc);

  REQUIRE(c.sockets.size() == 2);
  CHECK(c.sockets[0].family == "AF_UNIX");  // admin: a path makes it a unix socket
  CHECK(c.sockets[0].umask == std::optional<mode_t>(077));
  CHECK(c.sockets[1].name == "web");  // lower-cased, as circus does
  CHECK(c.sockets[1].port == 8080);
  CHECK(c.sockets[1].so_reuseport);

  CHECK(c.juju.configured);
  CHECK(c.juju.unit == "app/0");
  CHECK(c.juju.mode == JujuMode::direct);
  CHECK(c.juju.max_retry == 3);
  CHECK(c.juju.backoff == 2s);
}

TEST_CASE("liveness checks: INI, field by field", "[unit][conf]") {
  Config c = load_data("good/checks.ini");
  CHECK(c.warnings.empty());
  const auto& web = watcher(c, "web");
  CHECK(web.on_check_failure == OnCheckFailure::restart);
  REQUIRE(web.checks.size() == 3);
  // Sorted by name, whatever the file's order.
  const CheckConfig& health = web.checks[0];
  CHECK(health.name == "health");
  CHECK(health.kind == ReadyKind::http);
  CHECK(health.target == "http://127.0.0.1:8080/health");
  CHECK(health.http_body == "ok");
  CHECK(health.period == 10s);  // Pebble's defaults
  CHECK(health.timeout == 3s);
  CHECK(health.threshold == 5);
  CHECK(health.where == Location{kData + "/good/checks.ini", 8});
  const CheckConfig& script = web.checks[1];
  CHECK(script.name == "script");
  CHECK(script.kind == ReadyKind::exec);
  CHECK(script.target == "/usr/local/bin/probe --quick");
  CHECK(script.http_body.empty());
  CHECK(script.period == 90s);
  CHECK(script.timeout == 2500ms);  // a bare number is seconds
  CHECK(script.threshold == 3);
  CHECK(script.where.line == 11);
  const CheckConfig& up = web.checks[2];
  CHECK(up.name == "up");
  CHECK(up.kind == ReadyKind::tcp);
  CHECK(up.target == "127.0.0.1:8080");
  CHECK(up.period == 5s);
  CHECK(up.timeout == 500ms);
  CHECK(up.threshold == 3);
  CHECK(up.where.line == 5);

  const auto& worker = watcher(c, "worker");
  CHECK(worker.on_check_failure == OnCheckFailure::ignore);
  REQUIRE(worker.checks.size() == 1);
  CHECK(worker.checks[0] ==
        CheckConfig{
            "alive", ReadyKind::exec, "pgrep -f worker", "", 10s, 3s, 3, {kData + "/good/checks.ini", 17}});
  CHECK(watcher(load_data("good/dialect.ini"), "web").checks.empty());
}

TEST_CASE("liveness checks: TOML gives the same model as INI", "[unit][conf]") {
  Config toml = load_data("good/checks.toml");
  CHECK(toml.warnings.empty());
  const auto& web = watcher(toml, "web");
  REQUIRE(web.checks.size() == 3);
  CHECK(web.checks[0].name == "health");
  CHECK(web.checks[0].where == Location{kData + "/good/checks.toml", 12});  // its first key, not the header
  CHECK(web.checks[1].timeout == 2500ms);                                   // a number of seconds
  CHECK(web.checks[2].period == 5s);
  CHECK(watcher(toml, "worker").checks.at(0).target == "pgrep -f worker");  // a dotted key
  Config ini = load_data("good/checks.ini");
  CHECK(to_json(comparable(toml)).dump(1) == to_json(comparable(ini)).dump(1));
  CHECK(comparable(toml) == comparable(ini));
}

TEST_CASE("liveness checks: both spellings, show, warnings", "[unit][conf]") {
  SECTION("check.NAME and checks.NAME are one check in either format") {
    Config ini = load_ini_text("[watcher:w]\ncmd = x\ncheck.a.tcp = db:5432\nchecks.a.threshold = 1\n",
                               "t.ini", quiet_options());
    REQUIRE(ini.watchers[0].checks.size() == 1);
    CHECK(ini.watchers[0].checks[0].threshold == 1);
    Config toml =
        load_toml_text("[watchers.w]\ncmd = \"x\"\ncheck.a.tcp = \"db:5432\"\n", "t.toml", quiet_options());
    CHECK(toml.watchers[0].checks.at(0).kind == ReadyKind::tcp);
  }
  SECTION("the JSON and the TOML show every key of a check") {
    Config c = load_data("good/checks.ini");
    auto j = to_json(c);
    CHECK(j["watchers"]["web"]["checks"]["health"] ==
          nlohmann::ordered_json{{"http", "http://127.0.0.1:8080/health"},
                                 {"body", "ok"},
                                 {"period", "10s"},
                                 {"timeout", "3s"},
                                 {"threshold", 5}});
    CHECK(j["watchers"]["web"]["checks"]["up"] ==
          nlohmann::ordered_json{
              {"tcp", "127.0.0.1:8080"}, {"period", "5s"}, {"timeout", "500ms"}, {"threshold", 3}});
    CHECK(j["watchers"]["web"]["on_check_failure"] == "restart");
    CHECK_FALSE(j["watchers"]["worker"].contains("on_check_failure"));  // the default is left out
    CHECK_FALSE(j["watchers"]["worker"].contains("ready"));
    std::string toml = to_toml(c);
    CHECK(toml.find("[watchers.web.checks.health]") != std::string::npos);
    CHECK(toml.find("on_check_failure = 'restart'") != std::string::npos);
    CHECK(toml.find("[watchers.worker.checks.alive]") != std::string::npos);
  }
  SECTION("on_check_failure = restart without checks is a warning") {
    Config c = load_ini_text("[watcher:w]\ncmd = x\non_check_failure = restart\n", "t.ini", quiet_options());
    CHECK(has_warning(c, "t.ini:3: warning: on_check_failure: the watcher has no checks"));
    CHECK(c.watchers[0].on_check_failure == OnCheckFailure::restart);
    Config quiet =
        load_ini_text("[watcher:w]\ncmd = x\non_check_failure = ignore\n", "t.ini", quiet_options());
    CHECK(quiet.warnings.empty());
  }
  SECTION("a timeout not below the period is a warning") {
    Config c = load_ini_text("[watcher:w]\ncmd = x\ncheck.a.exec = true\ncheck.a.timeout = 20s\n", "t.ini",
                             quiet_options());
    CHECK(has_warning(c,
                      "t.ini:3: warning: [watcher:w]: check a: timeout 20s is not less than period 10s, so "
                      "a probe may still run when the next one is due"));
  }
  SECTION("every error is reported once") {
    try {
      load_ini_text("[watcher:w]\ncmd = x\ncheck.Bad.tcp = h:1\ncheck.Bad.period = 1s\ncheck.b.log = x\n",
                    "t.ini", quiet_options());
      FAIL("loaded");
    } catch (const ConfigError& e) {
      std::vector<std::string> got;
      for (const auto& d : e.diagnostics()) got.push_back(to_string(d));
      CHECK(got ==
            std::vector<std::string>{
                "t.ini:3: check.Bad.tcp: a check name uses lower-case letters, digits, '-' and '_', got "
                "'Bad'",
                "t.ini:5: check.b.log: a liveness check is tcp, http or exec (log and notify are "
                "readiness only)"});
    }
  }
}

TEST_CASE("the normalized TOML loads back to the same config", "[unit][conf]") {
  for (const char* file : {"good/circus_hooks_example.ini", "good/dialect.ini", "good/env.ini",
                           "good/full.toml", "good/checks.ini", "good/checks.toml"}) {
    INFO(file);
    Config original = load_data(file);
    std::string text = to_toml(original);
    Config again = load_toml_text(text, kData + "/good/normalized.toml", quiet_options());
    CHECK(to_json(comparable(again)).dump(1) == to_json(comparable(original)).dump(1));  // readable
    CHECK(comparable(again) == comparable(original));                                    // and every field
  }
  // Keys TOML must quote, one of which toml++ 3.3 would write bare (a single quote): found by
  // fuzz_ini (fuzz/regressions/ini/watcher-name-with-a-single-quote.ini).
  Config quoted = load_ini_text("[watcher:b'eta]\ncmd = x\nenv.K'1 = v\n[watcher:q\"uote]\ncmd = y\n"
                                "[watcher:dot.ted]\ncmd = z\n",
                                "q.ini", quiet_options());
  std::string quoted_text = to_toml(quoted);
  INFO(quoted_text);
  CHECK(quoted_text.find("[watchers.\"b'eta\"]") != std::string::npos);
  CHECK(comparable(load_toml_text(quoted_text, "q.toml", quiet_options())) == comparable(quoted));

  // isolate is shown where it is set, and only there (false is the default).
  std::string text = to_toml(load_data("good/full.toml"));
  CHECK(text.find("isolate = true") != std::string::npos);
  CHECK(to_toml(load_data("good/env.ini")).find("isolate =") == std::string::npos);
}

TEST_CASE("a literal $NAME in an env value: kept from INI's [env], $$ in TOML, through the normalized TOML",
          "[unit][conf]") {
  // circus keeps [env] values as written; a watcher's own env values expand $NAME.
  Config ini = load_ini_text("[env]\nPRICE = $HOME and $$HOME\n[watcher:w]\ncmd = x\nenv.OWN = $HOME\n", "t.ini",
                             quiet_options());
  CHECK(watcher(ini, "w").env ==
        std::map<std::string, std::string>{{"OWN", "/home/tester"}, {"PRICE", "$HOME and $$HOME"}});
  std::string text = to_toml(ini);
  INFO(text);
  CHECK(text.find("PRICE = '$$HOME and $$$$HOME'") != std::string::npos);
  Config again = load_toml_text(text, "n.toml", quiet_options());
  CHECK(watcher(again, "w").env == watcher(ini, "w").env);

  // In TOML, $$ is one '$' and is not the start of a name.
  Config toml = load_toml_text("[watchers.w]\ncmd = \"x\"\nenv.A = \"$$HOME $HOME $$$HOME 5$$\"\n", "t.toml",
                               quiet_options());
  CHECK(watcher(toml, "w").env.at("A") == "$HOME /home/tester $/home/tester 5$");
}

TEST_CASE("durations and signals in every accepted spelling", "[unit][conf]") {
  struct Row {
    std::string value;
    std::chrono::milliseconds expected;
  };
  for (const Row& r : std::vector<Row>{{"30", 30s},
                                       {"25.5", 25500ms},
                                       {"0", 0ms},
                                       {"500ms", 500ms},
                                       {"2m", 120s},
                                       {"1h", 3600s},
                                       {"1m30s", 90s},
                                       {"1.5s", 1500ms}}) {
    INFO(r.value);
    Config c =
        load_ini_text("[watcher:w]\ncmd = x\ngraceful_timeout = " + r.value + "\n", "t.ini", quiet_options());
    CHECK(c.watchers[0].graceful_timeout == r.expected);
  }
  struct Sig {
    std::string value;
    int expected;
  };
  for (const Sig& s : std::vector<Sig>{{"TERM", SIGTERM},
                                       {"sigint", SIGINT},
                                       {"Quit", SIGQUIT},
                                       {"9", SIGKILL},
                                       {"SIGHUP", SIGHUP},
                                       {"RTMIN+2", SIGRTMIN + 2},
                                       {"usr1", SIGUSR1}}) {
    INFO(s.value);
    Config c =
        load_ini_text("[watcher:w]\ncmd = x\nstop_signal = " + s.value + "\n", "t.ini", quiet_options());
    CHECK(c.watchers[0].stop_signal == s.expected);
  }
}

TEST_CASE("circus options trapeze does not act on are warnings, never silence", "[unit][conf]") {
  Config c = load_ini_text(
      "[circus]\ncheck_delay = 5\nstatsd = true\nhttpd = true\n"
      "[watcher:w]\ncmd = x\nvirtualenv = /venv\nstdout_stream.class = mymodule.MyStream\n"
      "[plugin:flap]\nuse = circus.plugins.flapping.Flapping\n",
      "t.ini", quiet_options());
  CHECK(has_warning(c, "t.ini:2: warning: check_delay: ignored: trapeze does not poll"));
  CHECK(has_warning(c, "t.ini:3: warning: statsd: ignored"));
  CHECK(has_warning(c, "t.ini:4: warning: httpd: ignored: circus-web is not supported"));
  CHECK(has_warning(c, "t.ini:7: warning: virtualenv: ignored"));
  CHECK(has_warning(c, "t.ini:8: warning: stdout_stream.class: 'mymodule.MyStream' is a Python class"));
  CHECK(has_warning(c, "t.ini:9: warning: [plugin:flap]: flapping detection is built into trapeze"));
  CHECK(c.watchers[0].stdout_stream.kind == StreamKind::null);
}

TEST_CASE("a long INI line is read whole", "[unit][conf]") {
  std::string args(5000, 'a');
  Config c = load_ini_text("[watcher:w]\ncmd = x\nargs = " + args + "\n", "t.ini", quiet_options());
  CHECK(c.watchers[0].args == args);
}

TEST_CASE("a watcher without uid under a root arbiter: a uid warning at its section", "[unit][conf]") {
  Config c = load_ini_text("[watcher:asroot]\ncmd = /bin/true\n[watcher:dropped]\ncmd = /bin/true\nuid = nobody\n"
                           "[watcher:numeric]\ncmd = /bin/true\nuid = 0\n",
                           "root.ini", quiet_options());
  auto ws = root_warnings(c);
  REQUIRE(ws.size() == 1);
  CHECK(to_string(ws[0]) ==
        "root.ini:1: warning: uid: the arbiter runs as root and no uid is given: the processes of watcher "
        "asroot will run as root");
  CHECK(c.arbiter.pubsub_hwm == 100000);
}
