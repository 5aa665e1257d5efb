// circus's own config corpus (circus-tent/circus tests/config, 0.19.0), loaded as circus's
// tests/test_config.py expects. Built only where the corpus is present (CI has it in ../shared).
#include <catch2/catch.hpp>

#include <csignal>
#include <filesystem>

#include "support.hpp"

using namespace trapeze::conf;
using namespace std::chrono_literals;
using trapeze::conf::test::has_warning;
using trapeze::conf::test::quiet_options;
using trapeze::conf::test::watcher;

namespace {

const std::string kCorpus = TRAPEZE_CONFORMANCE_DIR;

Config corpus(const std::string& file, LoadOptions options = quiet_options()) {
  return load(kCorpus + "/" + file, options);
}

}  // namespace

TEST_CASE("circus corpus: every file loads, but the two that name Python hooks",
          "[unit][conf][conformance]") {
  std::vector<std::string> refused;
  for (const auto& entry : std::filesystem::directory_iterator(kCorpus)) {
    if (entry.path().extension() != ".ini") continue;
    try {
      load(entry.path().string(), quiet_options());
    } catch (const ConfigError& e) {
      refused.push_back(entry.path().filename().string());
    }
  }
  std::sort(refused.begin(), refused.end());
  CHECK(refused == std::vector<std::string>{"find_hook_in_pythonpath.ini", "hooks.ini"});
}

TEST_CASE("circus corpus: hooks.ini is refused for what trapeze cannot run", "[unit][conf][conformance]") {
  LoadOptions options = quiet_options();
  options.resolve_hooks = true;
  const std::string path = kCorpus + "/hooks.ini";
  try {
    load(path, options);
    FAIL("hooks.ini loaded");
  } catch (const ConfigError& e) {
    std::vector<std::string> got;
    for (const auto& d : e.diagnostics()) got.push_back(to_string(d));
    CHECK(got ==
          std::vector<std::string>{
              path + ":1: [watcher:foo]: missing cmd: a watcher needs a command to run",
              path +
                  ":3: hooks.before_start: cannot find tests/test_config.so or tests.test_config.so for "
                  "hook 'tests.test_config.hook' in the plugin directories: " +
                  std::filesystem::path(kCorpus).lexically_normal().string()});
  }
}

TEST_CASE("circus corpus: values as circus's tests expect them", "[unit][conf][conformance]") {
  SECTION("includes with wildcards") {
    CHECK(corpus("include.ini").watchers.size() == 4);
    Config c = corpus("multiple_wildcard.ini");
    CHECK(c.watchers.size() == 3);
    CHECK(watcher(c, "server").env.at("INI") == "private.ini");  // the main file's value wins
  }
  SECTION("a glob that matches nothing is a warning, not an error") {
    Config c = corpus("empty_include.ini");
    CHECK(has_warning(c, "include: "));
    CHECK(has_warning(c, "include_dir: "));
  }
  SECTION("the arbiter section") {
    Config c = corpus("circus.ini");
    CHECK(c.arbiter.pidfile == "pidfile");
    CHECK(c.arbiter.logoutput == "logoutput");
    CHECK(c.arbiter.loglevel == "debug");
  }
  SECTION("uid, graceful_timeout, stop_signal") {
    CHECK(corpus("issue137.ini").watchers[0].uid == std::optional<std::string>("me"));
    CHECK(corpus("issue395.ini").watchers[0].graceful_timeout == 88s);
    CHECK(corpus("issue1088.ini").watchers[0].graceful_timeout == 25500ms);
    Config c = corpus("issue594.ini");
    CHECK(c.watchers[0].stop_signal == SIGINT);
    CHECK(c.watchers[0].stop_children);
  }
  SECTION("variables everywhere, [env] overridden by [env:NAME]") {
    LoadOptions o = quiet_options();
    o.environ["circus_stats_endpoint"] = "tcp://0.0.0.0:9876";
    o.environ["circus_statsd"] = "True";
    o.environ["circus_uid"] = "ubuntu";  // [env] overrides these
    o.environ["circus_gid"] = "ubuntu";
    Config c = corpus("issue442.ini", o);
    CHECK(c.watchers[0].uid == std::optional<std::string>("tarek"));
    CHECK(c.watchers[0].gid == std::optional<std::string>("root"));
  }
  SECTION("a stream filename from [env:*]") {
    CHECK(corpus("expand_vars.ini").watchers[0].stdout_stream.filename == "/tmp/echo.log");
  }
  SECTION("a socket name with a dash stays for the spawner") {
    CHECK(corpus("issue546.ini").watchers[0].cmd == "../bin/chaussette --fd $(circus.sockets.some-socket)");
  }
  SECTION("[env] in the arbiter, socket and plugin sections") {
    Config c = corpus("env_everywhere.ini");
    CHECK(c.arbiter.endpoint == "tcp://127.0.0.1:1234");
    REQUIRE(c.sockets.size() == 1);
    CHECK(c.sockets[0].path == "/var/run/broken.sock");
    REQUIRE(c.plugins.size() == 1);
    CHECK(c.plugins[0].use == "bad.has.been.broken");
  }
  SECTION("copy_env and env sections") {
    Config c = corpus("copy_env.ini");
    CHECK_FALSE(watcher(c, "watcher1").copy_env);
    CHECK(watcher(c, "watcher2").copy_env);
    for (const char* name : {"watcher1", "watcher2"}) {
      INFO(name);
      CHECK(watcher(c, name).env.at("TEST1") == "test1");
      CHECK(watcher(c, name).env.at("TEST2") == "test2");
      CHECK(watcher(c, name).env.at("TEST3") == "test3");
      CHECK(watcher(c, name).env.at("PATH") == "/usr/bin:/bin:/bin");
    }
    CHECK(watcher(c, "watcher1").env.at("CAKE") == "lie");
    CHECK(watcher(c, "watcher2").env.at("LIE") == "cake");
  }
  SECTION("environment variable names keep their case") {
    Config c = corpus("env_sensecase.ini");
    const auto& env = c.watchers[0].env;
    CHECK(env.at("http_proxy") == "http://localhost:8080");
    CHECK(env.at("HTTPS_PROXY") == "http://localhost:8043");
    CHECK(env.at("FunKy_soUl") == "scorpio");
  }
  SECTION("the arbiter's environment reaches cmd without an [env] section") {
    LoadOptions o = quiet_options();
    o.environ["GRAVITY"] = "down";
    CHECK(corpus("issue567.ini", o).watchers[0].cmd == "down");
  }
  SECTION("so_reuseport") {
    Config c = corpus("reuseport.ini");
    REQUIRE(c.sockets.size() == 2);
    // Sorted by name, as circus's test reads them: [0] noreuseport, [1] reuseport.
    CHECK(c.sockets[0].name == "noreuseport");
    CHECK_FALSE(c.sockets[0].so_reuseport);
    CHECK(c.sockets[1].name == "reuseport");
    CHECK(c.sockets[1].so_reuseport);
  }
  SECTION("shell and shell_args") {
    Config c = corpus("issue665.ini");
    CHECK(watcher(c, "web1").shell);
    CHECK(watcher(c, "web2").shell_args == "bar baz qux");
    CHECK_FALSE(watcher(c, "web3").shell);
  }
  SECTION("'#' after a value is not a comment") {
    CHECK(corpus("issue53.ini").watchers[0].args == "-q  # invalid option, makes bash exit non-zero");
  }
  SECTION("empty sections are skipped") {
    Config c = corpus("empty_section.ini");
    CHECK(c.sockets.empty());
    CHECK(c.plugins.empty());
  }
  SECTION("Python-only options are warnings") {
    Config c = corpus("virtualenv.ini");
    CHECK(has_warning(c, "warning: virtualenv: ignored"));
    CHECK(has_warning(c, "warning: virtualenv_py_ver: ignored"));
    CHECK(
        has_warning(corpus("issue680.ini"), "[plugin:myplugin]: ignored: circus plugins are Python classes"));
    CHECK(has_warning(corpus("issue651.ini"), "warning: check_delay: ignored"));
  }
}
