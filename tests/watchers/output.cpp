// The output streams: bytes of supervised processes written to files (rotated by size or by
// time, or reopened when moved away) or to the arbiter's stdout, by the writer thread.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../../watchers/src/output_rotation.hpp"
#include "trapeze/watchers/output.hpp"

using namespace trapeze::watchers;
using trapeze::conf::StreamConfig;
using trapeze::conf::StreamKind;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

StreamConfig file_stream(const fs::path& path, StreamKind kind = StreamKind::file) {
  StreamConfig cfg;
  cfg.kind = kind;
  cfg.filename = path.string();
  return cfg;
}

// The loop thread, played by the test: what the writer posts is run by wait_until.
struct Harness {
  std::mutex mu;
  std::vector<std::function<void()>> posted;
  std::vector<std::string> logs;
  fs::path dir;
  std::unique_ptr<OutputWriter> writer;

  Harness() {
    char tmpl[] = "/tmp/trapeze-output-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    writer = std::make_unique<OutputWriter>(
        [this](std::function<void()> fn) {
          std::lock_guard lock(mu);
          posted.push_back(std::move(fn));
        },
        [this](std::string message) {
          std::lock_guard lock(mu);
          logs.push_back(std::move(message));
        });
  }
  ~Harness() {
    writer.reset();
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

  // Runs what was posted until `pred` holds; false after `timeout`.
  bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 5s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      std::vector<std::function<void()>> fns;
      {
        std::lock_guard lock(mu);
        fns.swap(posted);
      }
      for (auto& fn : fns) fn();
      if (pred()) return true;
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(2ms);
    }
  }

  // Closes `pid` on `sink` and waits for its completion.
  void close_and_wait(Sink& sink, pid_t pid) {
    bool done = false;
    if (writer->close(sink, pid, [&] { done = true; })) done = true;
    REQUIRE(wait_until([&] { return done; }));
  }

  std::vector<std::string> log_lines() {
    std::lock_guard lock(mu);
    return logs;
  }
};

std::string padded_line(int i, std::size_t width) {
  std::string s = "line " + std::to_string(i) + " ";
  s.resize(width - 1, 'x');
  return s + "\n";
}

}  // namespace

TEST_CASE("output: a file stream passes bytes through unchanged", "[unit][watcher]") {
  Harness h;
  auto sink = h.writer->open(file_stream(h.dir / "out.log"), "web", "stdout");
  std::string expected;
  std::string binary("a\0b\r\n\xff", 6);
  for (int i = 0; i < 100; ++i) {
    std::string piece = (i % 2 ? "no newline " : "line\n") + binary + std::to_string(i);
    CHECK(h.writer->write(*sink, 100 + i % 3, piece));
    expected += piece;
  }
  h.close_and_wait(*sink, 100);
  CHECK(slurp(h.dir / "out.log") == expected);
  CHECK(h.writer->stats(*sink).written_bytes == expected.size());
  CHECK(h.writer->stats(*sink).dropped_bytes == 0);
  CHECK(h.writer->totals().written_bytes == expected.size());
}

TEST_CASE("output: time_format prefixes each line with the time and pid", "[unit][watcher]") {
  Harness h;
  auto cfg = file_stream(h.dir / "out.log");
  cfg.time_format = "<%Y>";
  cfg.utc = true;
  auto sink = h.writer->open(cfg, "web", "stdout");
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  std::string p = "<" + std::to_string(tm.tm_year + 1900) + "> [42] | ";

  h.writer->write(*sink, 42, "hello\nwor");
  h.writer->write(*sink, 42, "ld\n\npart");
  h.close_and_wait(*sink, 42);
  CHECK(slurp(h.dir / "out.log") == p + "hello\n" + p + "world\n" + p + "\n" + p + "part\n");
}

TEST_CASE("output: lines of two processes stay whole", "[unit][watcher]") {
  Harness h;
  auto cfg = file_stream(h.dir / "out.log");
  cfg.time_format = "T";
  auto sink = h.writer->open(cfg, "web", "stdout");
  h.writer->write(*sink, 1, "a1 part");
  h.writer->write(*sink, 2, "b1\nb2 part");
  h.writer->write(*sink, 1, " end\na2");
  h.writer->write(*sink, 2, " end\n");
  h.close_and_wait(*sink, 2);
  h.close_and_wait(*sink, 1);
  CHECK(slurp(h.dir / "out.log") ==
        "T [2] | b1\n"
        "T [1] | a1 part end\n"
        "T [2] | b2 part end\n"
        "T [1] | a2\n");
}

TEST_CASE("output: a stdout stream prefixes lines with watcher and pid", "[unit][watcher]") {
  Harness h;
  // Our own stdout, pointed at a file for the length of the test.
  std::fflush(stdout);
  int saved = ::dup(STDOUT_FILENO);
  REQUIRE(saved >= 0);
  int fd = ::open((h.dir / "stdout").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  REQUIRE(fd >= 0);
  ::dup2(fd, STDOUT_FILENO);
  ::close(fd);
  StreamConfig cfg;
  cfg.kind = StreamKind::stdout;
  auto sink = h.writer->open(cfg, "web", "stdout");
  h.writer->write(*sink, 7, "hello\nta");
  h.writer->write(*sink, 8, "other\n");
  h.writer->write(*sink, 7, "il");
  bool done = false;
  CHECK_FALSE(h.writer->close(*sink, 7, [&] { done = true; }));  // a partial line is pending
  bool finished = h.wait_until([&] { return done; });
  ::dup2(saved, STDOUT_FILENO);
  ::close(saved);
  REQUIRE(finished);
  CHECK(slurp(h.dir / "stdout") == "web.7 | hello\nweb.8 | other\nweb.7 | tail\n");
}

TEST_CASE("output: null and inherit discard, and still complete", "[unit][watcher]") {
  Harness h;
  for (auto kind : {StreamKind::null, StreamKind::inherit}) {
    StreamConfig cfg;
    cfg.kind = kind;
    auto sink = h.writer->open(cfg, "web", "stderr");
    CHECK(h.writer->write(*sink, 1, std::string(OutputWriter::kHighWater * 2, 'x')));
    bool drained = false;
    h.writer->on_drained(*sink, [&] { drained = true; });
    h.close_and_wait(*sink, 1);
    CHECK(h.wait_until([&] { return drained; }));
    CHECK(h.writer->stats(*sink).written_bytes == 0);
    CHECK(h.writer->stats(*sink).dropped_bytes == 0);
  }
  CHECK(names_in(h.dir).empty());
}

TEST_CASE("output: size rotation keeps backup_count files of whole lines", "[unit][watcher]") {
  Harness h;
  auto cfg = file_stream(h.dir / "out.log");
  cfg.max_bytes = 100;
  cfg.backup_count = 2;
  auto sink = h.writer->open(cfg, "web", "stdout");
  std::vector<std::string> lines;
  for (int i = 1; i <= 20; ++i) {
    lines.push_back(padded_line(i, 30));
    h.writer->write(*sink, 1, lines.back());
  }
  h.close_and_wait(*sink, 1);
  // 3 lines (90 bytes) fit in 100: 20 lines make six full files and one of 2 lines.
  CHECK(names_in(h.dir) == std::set<std::string>{"out.log", "out.log.1", "out.log.2"});
  CHECK(slurp(h.dir / "out.log") == lines[18] + lines[19]);
  CHECK(slurp(h.dir / "out.log.1") == lines[15] + lines[16] + lines[17]);
  CHECK(slurp(h.dir / "out.log.2") == lines[12] + lines[13] + lines[14]);
  CHECK(h.writer->stats(*sink).rotations == 6);
  CHECK(h.writer->stats(*sink).written_bytes == 600);
}

TEST_CASE("output: size rotation splits a line longer than the file", "[unit][watcher]") {
  Harness h;
  auto cfg = file_stream(h.dir / "out.log");
  cfg.max_bytes = 10;
  cfg.backup_count = 3;
  auto sink = h.writer->open(cfg, "web", "stdout");
  h.writer->write(*sink, 1, "0123456789abcdefghij0123\n");
  h.close_and_wait(*sink, 1);
  CHECK(slurp(h.dir / "out.log.2") == "0123456789");
  CHECK(slurp(h.dir / "out.log.1") == "abcdefghij");
  CHECK(slurp(h.dir / "out.log") == "0123\n");
}

TEST_CASE("output: size rotation with backup_count 0 starts the file over", "[unit][watcher]") {
  Harness h;
  auto cfg = file_stream(h.dir / "out.log");
  cfg.max_bytes = 100;
  cfg.backup_count = 0;
  auto sink = h.writer->open(cfg, "web", "stdout");
  std::vector<std::string> lines;
  for (int i = 1; i <= 20; ++i) {
    lines.push_back(padded_line(i, 30));
    h.writer->write(*sink, 1, lines.back());
  }
  h.close_and_wait(*sink, 1);
  CHECK(names_in(h.dir) == std::set<std::string>{"out.log"});
  CHECK(slurp(h.dir / "out.log") == lines[18] + lines[19]);
  CHECK(h.writer->stats(*sink).rotations == 6);
}

TEST_CASE("output: stdout and stderr sent to one file rotate it once", "[unit][watcher]") {
  Harness h;
  auto cfg = file_stream(h.dir / "out.log");
  cfg.max_bytes = 100;
  cfg.backup_count = 5;
  auto out = h.writer->open(cfg, "web", "stdout");
  auto err = h.writer->open(cfg, "web", "stderr");
  for (int i = 1; i <= 4; ++i) {
    h.writer->write(*out, 1, padded_line(i, 30));
    h.close_and_wait(*out, 1);
    h.writer->write(*err, 1, padded_line(i + 10, 30));
    h.close_and_wait(*err, 1);
  }
  CHECK(names_in(h.dir) == std::set<std::string>{"out.log", "out.log.1", "out.log.2"});
  CHECK(slurp(h.dir / "out.log.2").size() == 90);
  CHECK(slurp(h.dir / "out.log.1").size() == 90);
  CHECK(slurp(h.dir / "out.log").size() == 60);
}

TEST_CASE("output: a watched file is reopened after it was renamed away", "[unit][watcher]") {
  Harness h;
  auto sink = h.writer->open(file_stream(h.dir / "out.log", StreamKind::watched_file), "web", "stdout");
  h.writer->write(*sink, 1, "one\n");
  h.close_and_wait(*sink, 1);
  fs::rename(h.dir / "out.log", h.dir / "out.log.old");
  h.writer->write(*sink, 2, "two\n");
  h.close_and_wait(*sink, 2);
  CHECK(slurp(h.dir / "out.log.old") == "one\n");
  CHECK(slurp(h.dir / "out.log") == "two\n");
  fs::remove(h.dir / "out.log");
  h.writer->write(*sink, 3, "three\n");
  h.close_and_wait(*sink, 3);
  CHECK(slurp(h.dir / "out.log") == "three\n");
}

TEST_CASE("output: reopen() makes a file stream open its path again", "[unit][watcher]") {
  Harness h;
  auto sink = h.writer->open(file_stream(h.dir / "out.log"), "web", "stdout");
  h.writer->write(*sink, 1, "one\n");
  h.close_and_wait(*sink, 1);
  fs::rename(h.dir / "out.log", h.dir / "out.log.1");
  h.writer->write(*sink, 2, "still old\n");
  h.close_and_wait(*sink, 2);
  h.writer->reopen();
  h.writer->write(*sink, 3, "new\n");
  h.close_and_wait(*sink, 3);
  CHECK(slurp(h.dir / "out.log.1") == "one\nstill old\n");
  CHECK(slurp(h.dir / "out.log") == "new\n");
}

TEST_CASE("output: close() completes only once the bytes are in the file", "[unit][watcher]") {
  Harness h;
  auto sink = h.writer->open(file_stream(h.dir / "out.log"), "web", "stdout");
  const std::size_t size = 3u << 20;
  std::string chunk(64 << 10, 'z');
  for (std::size_t n = 0; n < size; n += chunk.size()) h.writer->write(*sink, 1, chunk);
  std::uintmax_t size_at_done = 0;
  bool done = false;
  auto on_done = [&] {
    size_at_done = fs::file_size(h.dir / "out.log");
    done = true;
  };
  if (h.writer->close(*sink, 1, on_done)) on_done();  // already written: at once
  REQUIRE(h.wait_until([&] { return done; }));
  CHECK(size_at_done == size);
}

TEST_CASE("output: a queue above the high-water mark pushes back until drained", "[unit][watcher]") {
  Harness h;
  auto sink = h.writer->open(file_stream(h.dir / "out.log"), "web", "stdout");
  bool drained = false;
  h.writer->on_drained(*sink, [&] { drained = true; });  // already below: called at once
  REQUIRE(h.wait_until([&] { return drained; }));

  const std::size_t big = OutputWriter::kHighWater + (1u << 20);
  CHECK_FALSE(h.writer->write(*sink, 1, std::string(big, 'q')));
  drained = false;
  h.writer->on_drained(*sink, [&] { drained = true; });
  REQUIRE(h.wait_until([&] { return drained; }));
  CHECK(fs::file_size(h.dir / "out.log") >= big - OutputWriter::kHighWater / 2);
  CHECK(h.writer->write(*sink, 1, "small\n"));
  h.close_and_wait(*sink, 1);
  CHECK(fs::file_size(h.dir / "out.log") == big + 6);
}

TEST_CASE("output: a file that cannot be opened drops and counts, and logs once", "[unit][watcher]") {
  Harness h;
  auto sink = h.writer->open(file_stream(h.dir / "missing" / "out.log"), "web", "stderr");
  h.writer->write(*sink, 1, "0123456789");
  h.close_and_wait(*sink, 1);
  h.writer->write(*sink, 2, "0123456789");
  h.close_and_wait(*sink, 2);
  auto s = h.writer->stats(*sink);
  CHECK(s.dropped_bytes == 20);
  CHECK(s.write_errors == 2);
  CHECK(s.written_bytes == 0);
  CHECK(h.writer->totals().dropped_bytes == 20);
  auto logs = h.log_lines();
  REQUIRE(logs.size() == 1);
  CHECK(logs[0] == "cannot open '" + (h.dir / "missing" / "out.log").string() +
                       "' (watcher web, stderr): No such file or directory");

  // Once the directory is there, writing resumes (and says so).
  fs::create_directory(h.dir / "missing");
  h.writer->write(*sink, 3, "back\n");
  h.close_and_wait(*sink, 3);
  CHECK(slurp(h.dir / "missing" / "out.log") == "back\n");
  logs = h.log_lines();
  REQUIRE(logs.size() == 2);
  CHECK(logs[1] == "writing to '" + (h.dir / "missing" / "out.log").string() +
                       "' (watcher web, stderr) again, after dropping 20 bytes");
}

TEST_CASE("output: the destructor writes what is still queued", "[unit][watcher]") {
  Harness h;
  auto cfg = file_stream(h.dir / "out.log");
  cfg.time_format = "T";
  std::string expected;
  {
    OutputWriter writer([](std::function<void()>) {}, [](std::string) {});
    auto sink = writer.open(cfg, "web", "stdout");
    for (int i = 0; i < 1000; ++i) writer.write(*sink, 5, "line " + std::to_string(i) + "\n");
    writer.write(*sink, 5, "unterminated");
  }
  for (int i = 0; i < 1000; ++i) expected += "T [5] | line " + std::to_string(i) + "\n";
  expected += "T [5] | unterminated\n";
  CHECK(slurp(h.dir / "out.log") == expected);
}

TEST_CASE("output: timed rotation every second", "[unit][watcher]") {
  Harness h;
  auto cfg = file_stream(h.dir / "out.log", StreamKind::timed_rotating_file);
  cfg.rotate_when = "S";
  cfg.rotate_interval = 1;
  cfg.backup_count = 5;
  auto sink = h.writer->open(cfg, "web", "stdout");
  h.writer->write(*sink, 1, "one\n");
  h.close_and_wait(*sink, 1);
  // The rollover is due one second after the file was opened, at most now + 1.
  std::time_t opened_by = std::time(nullptr);
  REQUIRE(h.wait_until([&] { return std::time(nullptr) >= opened_by + 1; }));
  h.writer->write(*sink, 2, "two\n");
  h.close_and_wait(*sink, 2);

  auto names = names_in(h.dir);
  REQUIRE(names.size() == 2);
  REQUIRE(names.count("out.log") == 1);
  CHECK(slurp(h.dir / "out.log") == "two\n");
  names.erase("out.log");
  const std::string rotated = *names.begin();
  auto rule = detail::parse_timed_rotation("S", 1, false);
  REQUIRE(rule);
  REQUIRE(rotated.starts_with("out.log."));
  CHECK(detail::is_rotated_suffix(*rule, rotated.substr(8)));
  CHECK(slurp(h.dir / rotated) == "one\n");
  CHECK(h.writer->stats(*sink).rotations == 1);
}

TEST_CASE("output: timed rotation deletes all but backup_count old files", "[unit][watcher]") {
  Harness h;
  for (auto name :
       {"out.log.2020-01-01_00-00-01", "out.log.2020-01-01_00-00-02", "out.log.2020-01-01_00-00-03",
        "out.log.1", "out.log.2020-01-01", "other.2020-01-01_00-00-00"})
    std::ofstream(h.dir / name) << "old\n";
  // An old file is rotated on the first write, as Python does after a restart.
  std::ofstream(h.dir / "out.log") << "before\n";
  fs::last_write_time(h.dir / "out.log", fs::last_write_time(h.dir / "out.log") - 1h);
  auto cfg = file_stream(h.dir / "out.log", StreamKind::timed_rotating_file);
  cfg.rotate_when = "s";
  cfg.backup_count = 2;
  auto sink = h.writer->open(cfg, "web", "stdout");
  h.writer->write(*sink, 1, "after\n");
  h.close_and_wait(*sink, 1);
  auto names = names_in(h.dir);
  CHECK(names.count("out.log.2020-01-01_00-00-01") == 0);
  CHECK(names.count("out.log.2020-01-01_00-00-02") == 0);
  CHECK(names.count("out.log.2020-01-01_00-00-03") == 1);
  CHECK(names.count("out.log.1") == 1);
  CHECK(names.count("out.log.2020-01-01") == 1);
  CHECK(names.count("other.2020-01-01_00-00-00") == 1);
  CHECK(names.size() == 6);  // and the newly rotated one, and out.log
  CHECK(slurp(h.dir / "out.log") == "after\n");
}

TEST_CASE("output: when timed rotations fall due", "[unit][watcher]") {
  // Wednesday 2024-01-03 12:34:56 UTC.
  std::tm tm{};
  tm.tm_year = 124;
  tm.tm_mon = 0;
  tm.tm_mday = 3;
  tm.tm_hour = 12;
  tm.tm_min = 34;
  tm.tm_sec = 56;
  const std::time_t now = ::timegm(&tm);
  auto at = [](int mday, int hour = 0) {
    std::tm t{};
    t.tm_year = 124;
    t.tm_mon = 0;
    t.tm_mday = mday;
    t.tm_hour = hour;
    return ::timegm(&t);
  };
  struct Row {
    std::string when;
    int interval;
    std::time_t next;
    std::string suffix;  // of the file rotated at `next`
  };
  // clang-format off
  std::vector<Row> rows = {
      {"S", 1, now + 1, "2024-01-03_12-34-56"},
      {"M", 5, now + 300, "2024-01-03_12-34"},
      {"H", 2, now + 7200, "2024-01-03_12"},
      {"D", 1, now + 86400, "2024-01-03"},
      {"midnight", 1, at(4), "2024-01-03"},
      {"MIDNIGHT", 2, at(5), "2024-01-03"},
      {"W0", 1, at(9), "2024-01-02"},  // the midnight that ends Monday the 8th
      {"W2", 1, at(4), "2023-12-28"},  // today is Wednesday: tonight
      {"W3", 1, at(5), "2023-12-29"},
      {"W6", 1, at(8), "2024-01-01"},
  };
  // clang-format on
  for (const auto& row : rows) {
    INFO(row.when << " " << row.interval);
    auto r = detail::parse_timed_rotation(row.when, row.interval, true);
    REQUIRE(r);
    CHECK(detail::next_rollover(*r, now) == row.next);
    CHECK(detail::rotated_suffix(*r, row.next) == row.suffix);
  }
  CHECK_FALSE(detail::parse_timed_rotation("W7", 1, true));
  CHECK_FALSE(detail::parse_timed_rotation("X", 1, true));
  CHECK_FALSE(detail::parse_timed_rotation("", 1, true));
}

TEST_CASE("output: which names are timed backups", "[unit][watcher]") {
  auto day = *detail::parse_timed_rotation("D", 1, true);
  auto second = *detail::parse_timed_rotation("S", 1, true);
  CHECK(detail::is_rotated_suffix(day, "2024-01-03"));
  CHECK(detail::is_rotated_suffix(day, "2024-01-03.gz"));
  CHECK_FALSE(detail::is_rotated_suffix(day, "2024-01-03."));
  CHECK_FALSE(detail::is_rotated_suffix(day, "2024-01-03x"));
  CHECK_FALSE(detail::is_rotated_suffix(day, "2024-1-03"));
  CHECK_FALSE(detail::is_rotated_suffix(day, "1"));
  CHECK(detail::is_rotated_suffix(second, "2024-01-03_12-34-56"));
  CHECK_FALSE(detail::is_rotated_suffix(second, "2024-01-03"));
}

TEST_CASE("output: time prefixes as Python's strftime writes them", "[unit][watcher]") {
  std::tm tm{};
  tm.tm_year = 124;
  tm.tm_mon = 0;
  tm.tm_mday = 3;
  tm.tm_hour = 12;
  tm.tm_min = 34;
  tm.tm_sec = 56;
  std::timespec at{::timegm(&tm), 123456789};
  CHECK(detail::format_time("%Y-%m-%d %H:%M:%S.%f", at, true) == "2024-01-03 12:34:56.123456");
  CHECK(detail::format_time("%%f %f%%", at, true) == "%f 123456%");
  CHECK(detail::format_time("", at, true).empty());
  CHECK(detail::format_time(std::string(300, 'a'), at, true) == std::string(300, 'a'));
}

// Not run by default: `test_watchers "[perf]"` to compare with cat.
TEST_CASE("output: 200 MB through one file stream", "[.][perf][watcher]") {
  Harness h;
  auto sink = h.writer->open(file_stream(h.dir / "out.log"), "web", "stdout");
  std::string chunk(64 << 10, 'p');
  const std::size_t total = 200u << 20;
  auto start = std::chrono::steady_clock::now();
  for (std::size_t n = 0; n < total; n += chunk.size()) {
    if (h.writer->write(*sink, 1, chunk)) continue;
    bool drained = false;
    h.writer->on_drained(*sink, [&] { drained = true; });
    REQUIRE(h.wait_until([&] { return drained; }, 60s));
  }
  h.close_and_wait(*sink, 1);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  WARN("200 MB in " << ms.count() << " ms");
  CHECK(fs::file_size(h.dir / "out.log") == total);
}
