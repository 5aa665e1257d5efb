// `trapeze check` as a user runs it: the real binary, its exit code, stdout and stderr.
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "support.hpp"
#include "trapeze/conf/load.hpp"

extern char** environ;

namespace {

struct Run {
  int status = -1;  // exit code
  std::string out, err;
};

/// Runs the trapeze binary with `args`, collecting its output; fails the test after 30 s.
Run run_trapeze(const std::vector<std::string>& args) {
  std::vector<std::string> argv_storage = {TRAPEZE_BINARY};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);

  int out_pipe[2], err_pipe[2];
  REQUIRE(::pipe2(out_pipe, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(err_pipe, O_CLOEXEC) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), ::environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  REQUIRE(rc == 0);

  Run run;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      FAIL("trapeze did not finish within 30 s");
    }
    if (::poll(fds, 2, static_cast<int>(left.count())) < 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? run.out : run.err).append(buf, static_cast<size_t>(n));
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  run.status = WEXITSTATUS(status);
  return run;
}

}  // namespace

TEST_CASE("trapeze check on a bad config exits 2 and names file:line and the key", "[integration][conf]") {
  const std::string path = trapeze::conf::test::kData + "/bad/unknown_option.ini";
  Run r = run_trapeze({"check", path});
  CHECK(r.status == 2);
  CHECK(r.out.empty());
  CHECK(r.err == path + ":3: numprocess: unknown option for a watcher; did you mean 'numprocesses'?\n");
}

TEST_CASE("trapeze check on a good config prints TOML that loads back", "[integration][conf]") {
  const std::string path = trapeze::conf::test::kData + "/good/circus_hooks_example.ini";
  Run r = run_trapeze({"check", path});
  // The dotted hook names a plugin that is not there: check loads plugins, so this fails...
  CHECK(r.status == 2);
  CHECK(r.err.find(":3: hooks.before_start: cannot find mycoolapp/myplugins.so") != std::string::npos);

  // ...and a config without hooks passes, printing TOML that loads to the same watchers.
  const std::string toml_path = trapeze::conf::test::kData + "/good/full.toml";
  Run ok = run_trapeze({"check", trapeze::conf::test::kData + "/good/env.ini"});
  CHECK(ok.status == 0);
  auto again = trapeze::conf::load_toml_text(ok.out, "normalized.toml", trapeze::conf::test::quiet_options());
  CHECK(again.watchers.size() == 3);
  CHECK(again.find_watcher("alpha") != nullptr);
  CHECK(ok.err.find("warning: args: $(circus.env.NOT_SET) is not set") != std::string::npos);
}

TEST_CASE("trapeze check --json prints the normalized config as JSON", "[integration][conf]") {
  Run r = run_trapeze({"check", "--json", trapeze::conf::test::kData + "/good/env.ini"});
  REQUIRE(r.status == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["watchers"]["beta"]["copy_env"] == true);
  CHECK(j["watchers"]["beta"]["env"]["OWN"] == "mine");
  CHECK(j["watchers"]["alpha"]["graceful_timeout"] == "30s");
  CHECK(j["watchers"]["alpha"]["stop_signal"] == "SIGTERM");
  CHECK(j["arbiter"]["priority_order"] == "ascending");
}

TEST_CASE("trapeze --version, --help and usage errors", "[integration][conf]") {
  Run version = run_trapeze({"--version"});
  CHECK(version.status == 0);
  CHECK(version.out.rfind("trapeze ", 0) == 0);
  Run help = run_trapeze({"check", "--help"});
  CHECK(help.status == 0);
  CHECK(help.out.find("CONFIG") != std::string::npos);
  CHECK(run_trapeze({"frobnicate"}).status == 2);
  CHECK(run_trapeze({"check"}).status == 2);
  CHECK(run_trapeze({}).status == 2);
}
