// A process's argv, as circus builds it from cmd, args, shell and its variables.
#include <catch2/catch.hpp>

#include "trapeze/watchers/command.hpp"

using namespace trapeze::watchers;
using trapeze::conf::WatcherConfig;
using Words = std::vector<std::string>;

namespace {

Words split_ok(std::string_view text) {
  auto r = shell_split(text);
  if (auto* e = std::get_if<std::string>(&r)) FAIL("refused: " << *e);
  return std::get<Words>(r);
}

ProcessCommand command_ok(const WatcherConfig& w, int wid = 1, const std::map<std::string, int>& fds = {}) {
  auto r = process_command(w, wid, fds);
  if (auto* e = std::get_if<std::string>(&r)) FAIL("refused: " << *e);
  return std::get<ProcessCommand>(r);
}

WatcherConfig watcher(std::string cmd, std::string args = "", bool shell = false,
                      std::string shell_args = "") {
  WatcherConfig w;
  w.cmd = std::move(cmd);
  w.args = std::move(args);
  w.shell = shell;
  w.shell_args = std::move(shell_args);
  return w;
}

}  // namespace

TEST_CASE("splitting like Python's shlex.split", "[unit][watcher]") {
  struct Row {
    std::string text;
    Words words;
  };
  const std::vector<Row> table = {
      {"", {}},
      {"   ", {}},
      {"a b  c", {"a", "b", "c"}},
      {"a\tb\nc", {"a", "b", "c"}},
      {"'a b' c", {"a b", "c"}},
      {R"("a \"b\" \\ \x")", {R"(a "b" \ \x)"}},  // in "...", only \" and \\ are escapes
      {R"(a\ b)", {"a b"}},
      {R"('it''s')", {"its"}},
      {R"('a\b')", {R"(a\b)"}},  // nothing escapes inside '...'
      {"''", {""}},
      {R"(x'y'"z")", {"xyz"}},
      {"-c \"while true; do date; sleep 5; done\"", {"-c", "while true; do date; sleep 5; done"}},
      {"# not a comment", {"#", "not", "a", "comment"}},
  };
  for (const Row& r : table) {
    INFO(r.text);
    CHECK(split_ok(r.text) == r.words);
  }
  CHECK(std::get<std::string>(shell_split("'open")) == "no closing quotation");
  CHECK(std::get<std::string>(shell_split("\"open \\\"")) == "no closing quotation");
  CHECK(std::get<std::string>(shell_split("trailing\\")) == "no escaped character");
}

TEST_CASE("quoting for /bin/sh, as shlex.quote", "[unit][watcher]") {
  CHECK(shell_quote("foo") == "foo");
  CHECK(shell_quote("/usr/bin/x-y_z.1:2,3@4%5+6=7") == "/usr/bin/x-y_z.1:2,3@4%5+6=7");
  CHECK(shell_quote("") == "''");
  CHECK(shell_quote("a b") == "'a b'");
  CHECK(shell_quote("$HOME") == "'$HOME'");
  CHECK(shell_quote("it's") == "'it'\"'\"'s'");
}

TEST_CASE("argv with and without a shell: circus's issue665 configs", "[unit][watcher]") {
  CHECK(command_ok(watcher("foo", "--fd", true)).argv == Words{"/bin/sh", "-c", "foo --fd"});
  CHECK(command_ok(watcher("foo", "--fd", true, "bar baz qux")).argv ==
        Words{"/bin/sh", "-c", "foo --fd", "bar", "baz", "qux"});
  CHECK(command_ok(watcher("foo", "--fd", false, "bar baz qux")).argv == Words{"foo", "--fd"});
  CHECK(command_ok(watcher("sh", "-c \"echo 'a b'\"", true)).argv ==
        Words{"/bin/sh", "-c", "sh -c 'echo '\"'\"'a b'\"'\"''"});
  ProcessCommand sleep = command_ok(watcher("sleep 120"));
  CHECK(sleep.path == "sleep");
  CHECK(sleep.argv == Words{"sleep", "120"});
}

TEST_CASE("per-process variables: the slot number and socket fds", "[unit][watcher]") {
  std::map<std::string, int> fds = {{"web", 5}, {"some-socket", 3}};
  CHECK(command_ok(watcher("foo", "--fd $(circus.sockets.web)"), 1, fds).argv == Words{"foo", "--fd", "5"});
  CHECK(command_ok(watcher("../bin/chaussette --fd $(circus.sockets.some-socket)"), 1, fds).argv ==
        Words{"../bin/chaussette", "--fd", "3"});
  CHECK(
      command_ok(watcher("worker --id $(circus.wid)", "((circus.wid)) $WID $(CIRCUS.WID) $(trapeze.wid)"), 3)
          .argv == Words{"worker", "--id", "3", "3", "3", "3", "3"});
  CHECK(command_ok(watcher("foo $(circus.sockets.nope) $(circus.other)"), 1, fds).argv ==
        Words{"foo", "$(circus.sockets.nope)", "$(circus.other)"});  // unknown: as written
  CHECK(command_ok(watcher("foo $(circus.wid"), 2).argv == Words{"foo", "$(circus.wid"});
}

TEST_CASE("executable, and commands that cannot be run", "[unit][watcher]") {
  WatcherConfig w = watcher("my-name --flag");
  w.executable = "/usr/bin/real-program";
  ProcessCommand c = command_ok(w);
  CHECK(c.path == "/usr/bin/real-program");
  CHECK(c.argv == Words{"my-name", "--flag"});

  CHECK(std::get<std::string>(process_command(watcher("'open"), 1, {})) == "cmd: no closing quotation");
  CHECK(std::get<std::string>(process_command(watcher("foo", "\"x"), 1, {})) == "args: no closing quotation");
  CHECK(std::get<std::string>(process_command(watcher("  "), 1, {})) == "cmd is empty");
  CHECK(std::get<std::string>(process_command(watcher("foo", "", true, "'x"), 1, {})) ==
        "shell_args: no closing quotation");
}
