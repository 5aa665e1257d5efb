// The fuzz targets' inputs replayed in the normal build: each file kept under
// fuzz/regressions/TARGET/ once made a target crash or break a property; the seed corpus
// must pass too. A target signals a broken property with an exception; a crash ends the test.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "targets.hpp"

namespace fs = std::filesystem;

namespace {

using Target = std::function<void(std::string_view)>;

std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::string contents(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE(in);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Runs every file of fuzz/<kind>/<target>/ through `target`; returns how many there were.
std::size_t replay(const std::string& kind, const std::string& name, const Target& target) {
  auto files = files_in(fs::path(TRAPEZE_FUZZ_DIR) / kind / name);
  for (const auto& f : files) {
    INFO("input: " << f.string());
    std::string input = contents(f);
    CHECK_NOTHROW(target(input));
  }
  return files.size();
}

const std::vector<std::pair<std::string, Target>>& targets() {
  static const std::vector<std::pair<std::string, Target>> all = {
      {"ini", trapeze::fuzz::ini},
      {"toml", trapeze::fuzz::toml},
      {"control", trapeze::fuzz::control},
      {"queue", trapeze::fuzz::queue},
  };
  return all;
}

}  // namespace

TEST_CASE("the fuzz regressions replay without a crash or a broken property", "[unit][fuzz]") {
  std::size_t total = 0;
  for (const auto& [name, target] : targets()) total += replay("regressions", name, target);
  // There is at least one kept input, so this test is not empty by accident (a moved folder).
  CHECK(total > 0);
}

TEST_CASE("the fuzz seed corpus replays without a crash or a broken property", "[unit][fuzz]") {
  for (const auto& [name, target] : targets()) {
    INFO("target: " << name);
    CHECK(replay("corpus", name, target) > 0);
  }
}
