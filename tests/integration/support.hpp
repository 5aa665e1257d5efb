// Running the real `trapeze run` on a config in a temporary directory, and reading what it
// did: its events file (one JSON line per event), its log, and /proc.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace trapeze::testing {

using namespace std::chrono_literals;
using Json = nlohmann::json;
namespace fs = std::filesystem;

/// Checks `pred` every few milliseconds until it holds or `timeout` passed. Returns whether it held.
inline bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "trapeze-it-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    if (std::getenv("TRAPEZE_TEST_KEEP")) return;  // keep the files of a failing test to read
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

struct TrapezeRun {
  int status = -1;
  std::string out, err;
};

/// Runs the trapeze binary with `args` to completion; its output goes through files in `dir`.
inline TrapezeRun run_trapeze(const TempDir& dir, const std::vector<std::string>& args) {
  auto out = dir / "trapeze.out", err = dir / "trapeze.err";
  pid_t pid = fork();
  if (pid == 0) {
    int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(o, 1);
    dup2(e, 2);
    std::vector<std::string> all = {TRAPEZE_BINARY};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(out), read_file(err)};
}

/// A loopback TCP port nobody listens on now (bound to port 0, read, closed).
inline int free_port() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(s);
  return ntohs(addr.sin_port);
}

/// Is `pid` a live process (not gone, not a zombie)?
inline bool alive(pid_t pid) {
  std::string stat = read_file(fmt::format("/proc/{}/stat", pid));
  if (stat.empty()) return false;
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

struct ProcInfo {
  pid_t pid = 0, ppid = 0, pgid = 0;
  char state = '?';
};

/// Every process in /proc now (those that vanish while read are left out).
inline std::vector<ProcInfo> processes() {
  std::vector<ProcInfo> out;
  std::error_code ec;
  for (auto it = fs::directory_iterator("/proc", ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat = read_file(it->path() / "stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos || close + 2 >= stat.size()) continue;
    ProcInfo p;
    p.pid = static_cast<pid_t>(std::stol(name));
    std::istringstream rest(stat.substr(close + 2));
    rest >> p.state >> p.ppid >> p.pgid;
    out.push_back(p);
  }
  return out;
}

/// The zombie children of `parent`.
inline std::vector<pid_t> zombie_children(pid_t parent) {
  std::vector<pid_t> out;
  for (auto& p : processes())
    if (p.ppid == parent && p.state == 'Z') out.push_back(p.pid);
  return out;
}

/// A line of /proc/PID/status ("Uid:", "Gid:", "Groups:"), without its key.
inline std::string proc_status(pid_t pid, const std::string& key) {
  std::istringstream in(read_file(fmt::format("/proc/{}/status", pid)));
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key + ":", 0) == 0) {
      auto v = line.substr(key.size() + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      v.erase(v.find_last_not_of(" \t") + 1);
      return v;
    }
  return {};
}

inline std::size_t open_fd_count(pid_t pid) {
  std::size_t n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator(fmt::format("/proc/{}/fd", pid), ec);
       !ec && it != fs::directory_iterator(); it.increment(ec))
    ++n;
  return n;
}

struct Event {
  std::string topic;
  Json data;
};

/// `trapeze run CONFIG` in the foreground, as a child of the test.
class Arbiter {
 public:
  /// Writes `config_text` to DIR/NAME and starts the arbiter on it.
  Arbiter(const TempDir& dir, const std::string& name, const std::string& config_text,
          std::vector<std::string> extra_args = {}, std::vector<std::string> extra_env = {})
      : dir_(dir.path()) {
    config_ = dir_ / name;
    write_file(config_, config_text);
    events_ = dir_ / "events.jsonl";
    log_ = dir_ / "arbiter.log";
    // An arbiter restarted in the same directory appends to the same events file: what was
    // there before is another arbiter's.
    std::error_code ec;
    own_events_from_ = fs::file_size(events_, ec);
    if (ec) own_events_from_ = 0;
    std::vector<std::string> args = {TRAPEZE_BINARY,
                                     "run",
                                     config_.string(),
                                     "--events-file",
                                     events_.string(),
                                     "--log-output",
                                     log_.string(),
                                     "--pidfile",
                                     (dir_ / "arbiter.pid").string(),
                                     "--log-level",
                                     "debug"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    pid_ = fork();
    if (pid_ == 0) {
      for (const auto& e : extra_env) putenv(const_cast<char*>(e.c_str()));
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }

  /// After a test that stopped midway: the arbiter is stopped as a user would (it stops its
  /// children), killed if it does not go, and any process group it left behind is killed.
  ~Arbiter() {
    if (pid_ > 0 && !exit_code_) {
      ::kill(pid_, SIGTERM);
      if (!wait_until([&] { return exited(); }, std::chrono::seconds(10))) {
        ::kill(pid_, SIGKILL);
        int status;
        waitpid(pid_, &status, 0);
      }
    }
    for (pid_t p : live_pids())
      if (::getpgid(p) == p) ::kill(-p, SIGKILL);  // still a group leader: one of ours
  }

  pid_t pid() const { return pid_; }
  const fs::path& config() const { return config_; }
  std::string log() const { return read_file(log_); }

  std::vector<Event> events() const {
    std::vector<Event> out;
    std::istringstream in(read_file(events_));
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      auto j = Json::parse(line, nullptr, false);
      if (j.is_discarded()) continue;  // a line being written
      out.push_back({j["topic"], j["data"]});
    }
    return out;
  }

  /// Events whose topic ends with `suffix` ("web.spawn", ".reap").
  std::vector<Event> events(const std::string& suffix) const {
    std::vector<Event> out;
    for (auto& e : events())
      if (e.topic.size() >= suffix.size() &&
          e.topic.compare(e.topic.size() - suffix.size(), suffix.size(), suffix) == 0)
        out.push_back(e);
    return out;
  }

  /// Waits until at least `n` events end with `suffix`; returns them (or fails the test).
  std::vector<Event> wait_events(const std::string& suffix, std::size_t n = 1,
                                 std::chrono::milliseconds timeout = 20s) {
    std::vector<Event> found;
    bool ok = wait_until(
        [&] {
          found = events(suffix);
          return found.size() >= n || exited();
        },
        timeout);
    if (!ok || found.size() < n) {
      INFO("waiting for " << n << " x " << suffix << "; log:\n" << log());
      REQUIRE(found.size() >= n);
    }
    return found;
  }

  /// Has the arbiter exited? (Collects its status.)
  bool exited() {
    if (exit_code_) return true;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return true;
    }
    return false;
  }

  /// Sends `sig` and waits for the arbiter to exit; returns its exit code.
  int stop(int sig = SIGTERM, std::chrono::milliseconds timeout = 30s) {
    if (!exited()) ::kill(pid_, sig);
    if (!wait_until([&] { return exited(); }, timeout)) {
      INFO("arbiter did not exit; log:\n" << log());
      FAIL("arbiter did not exit in time");
    }
    return *exit_code_;
  }

  std::optional<int> exit_code() const { return exit_code_; }

  /// Pids of this arbiter's spawn events not yet followed by their reap.
  std::set<pid_t> live_pids() const {
    std::set<pid_t> pids;
    std::string all = read_file(events_);
    std::istringstream in(all.substr(std::min<std::size_t>(own_events_from_, all.size())));
    for (std::string line; std::getline(in, line);) {
      auto e = Json::parse(line, nullptr, false);
      if (e.is_discarded() || !e.contains("topic")) continue;  // a line being written
      std::string topic = e["topic"];
      if (topic.ends_with(".spawn")) pids.insert(e["data"]["process_pid"].get<pid_t>());
      if (topic.ends_with(".reap")) pids.erase(e["data"]["process_pid"].get<pid_t>());
    }
    return pids;
  }

 private:
  fs::path dir_, config_, events_, log_;
  std::uintmax_t own_events_from_ = 0;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

inline std::string child() {
  return TRAPEZE_TEST_CHILD;
}

}  // namespace trapeze::testing
