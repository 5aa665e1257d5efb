// What the fault tests share beside the integration harness: a subreaper for the orphans a
// killed arbiter or a fork bomb leaves, /proc readers, and counting events without parsing
// thousands of lines every few milliseconds.
#pragma once

#include <sys/prctl.h>

#include <map>

#include "../bus/zmq_support.hpp"

namespace trapeze::testing {

/// While it lives, the test process is a child subreaper: a process orphaned below it (the
/// children of an arbiter SIGKILLed by the test, the forks of a bomb) becomes its child rather
/// than init's. This machine's init reaps nothing, so an orphan that died would stay a zombie,
/// and zombies of `nobody` count against RLIMIT_NPROC in the next run.
/// Declare it before the Arbiter: when it goes, whatever it adopted and a failing test left is
/// killed and reaped, so that nothing outlives the test case.
class Subreaper {
 public:
  Subreaper() { REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0); }
  ~Subreaper() {
    // Every child left now is an orphan we adopted (an Arbiter reaps its own before this runs):
    // kill it; its own children come to us in turn. Bounded: a few seconds at most.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
      int status = 0;
      pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid > 0) continue;
      if (pid < 0 || std::chrono::steady_clock::now() > deadline) break;  // ECHILD: none left
      for (auto& p : processes())
        if (p.ppid == ::getpid()) ::kill(p.pid, SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::prctl(PR_SET_CHILD_SUBREAPER, 0);
  }
  Subreaper(const Subreaper&) = delete;
  Subreaper& operator=(const Subreaper&) = delete;
};

/// The processes of group `pgid`, zombies included.
inline std::vector<pid_t> group_members(pid_t pgid) {
  std::vector<pid_t> out;
  for (auto& p : processes())
    if (p.pgid == pgid) out.push_back(p.pid);
  return out;
}

/// Kills group `pgid` (one this test started, directly or through an arbiter) and reaps those
/// of its members that are our children (orphans adopted by the Subreaper). Returns whether
/// the group is empty within `timeout`.
inline bool kill_group_and_reap(pid_t pgid, std::chrono::milliseconds timeout = 10s) {
  ::kill(-pgid, SIGKILL);
  return wait_until(
      [&] {
        bool empty = true;
        for (auto& p : processes()) {
          if (p.pgid != pgid) continue;
          if (p.ppid == ::getpid()) ::waitpid(p.pid, nullptr, WNOHANG);
          empty = false;
        }
        return empty;
      },
      timeout);
}

/// Resident memory of `pid` in KiB (VmRSS), 0 if it is gone.
inline long rss_kib(pid_t pid) {
  std::string v = proc_status(pid, "VmRSS");
  return v.empty() ? 0 : std::stol(v);
}

/// Counts events by topic suffix from the arbiter's events file, reading only what was
/// appended since the last call: cheap enough to poll while thousands of events arrive.
class EventTail {
 public:
  explicit EventTail(fs::path events) : path_(std::move(events)) {}

  /// Reads what was appended; returns every event so far.
  const std::vector<Event>& poll() {
    std::ifstream in(path_, std::ios::binary);
    if (!in) return events_;
    in.seekg(static_cast<std::streamoff>(offset_));
    std::string chunk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto end = chunk.rfind('\n');
    if (end == std::string::npos) return events_;
    std::istringstream lines(chunk.substr(0, end + 1));
    for (std::string line; std::getline(lines, line);) {
      if (line.empty()) continue;
      auto j = Json::parse(line);
      events_.push_back({j["topic"], j["data"]});
    }
    offset_ += end + 1;
    return events_;
  }

  std::size_t count(const std::string& suffix) {
    std::size_t n = 0;
    for (auto& e : poll())
      if (e.topic.ends_with(suffix)) ++n;
    return n;
  }

  /// Waits (polling every 50 ms) until `n` events end with `suffix`; fails the test otherwise.
  void wait(Arbiter& arbiter, const std::string& suffix, std::size_t n, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (count(suffix) < n) {
      if (arbiter.exited() || std::chrono::steady_clock::now() > deadline) {
        INFO("waiting for " << n << " x " << suffix << ", have " << count(suffix) << "; log tail:\n"
                            << tail(arbiter.log()));
        REQUIRE(count(suffix) >= n);
      }
      std::this_thread::sleep_for(50ms);
    }
  }

  static std::string tail(const std::string& text, std::size_t bytes = 4000) {
    return text.size() > bytes ? text.substr(text.size() - bytes) : text;
  }

 private:
  fs::path path_;
  std::size_t offset_ = 0;
  std::vector<Event> events_;
};

/// The events file the Arbiter helper gives `trapeze run`.
inline fs::path events_file(const TempDir& dir) {
  return dir / "events.jsonl";
}

/// A config's [circus] section with ipc endpoints in `dir`, plus `extra` arbiter options.
inline std::string circus_section(const TempDir& dir, const std::string& extra = "") {
  return endpoints(dir) + extra;
}

inline std::string control_endpoint(const TempDir& dir) {
  return "ipc://" + (dir / "control").string();
}
inline std::string events_endpoint(const TempDir& dir) {
  return "ipc://" + (dir / "events").string();
}

}  // namespace trapeze::testing
