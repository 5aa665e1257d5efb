// How a process ended, as a value: "exited 3", "killed by SIGKILL". Never a raw wait status.
#pragma once

#include <signal.h>

#include <string>

#include <fmt/format.h>

namespace trapeze::watchers {

class ExitStatus {
 public:
  static ExitStatus exited(int code) { return ExitStatus(code, 0, false); }
  static ExitStatus killed(int signum, bool core_dumped = false) {
    return ExitStatus(0, signum, core_dumped);
  }
  /// From waitid()'s siginfo (si_code CLD_EXITED, CLD_KILLED or CLD_DUMPED).
  static ExitStatus from_siginfo(const siginfo_t& info);

  bool signaled() const { return signal_ != 0; }
  int code() const { return code_; }
  int signal() const { return signal_; }
  bool core_dumped() const { return core_; }
  bool success() const { return signal_ == 0 && code_ == 0; }
  /// circus's reap `exit_code`: the exit code, or minus the signal number.
  int bus_code() const { return signaled() ? -signal_ : code_; }

  /// "exited 0", "exited 3", "killed by SIGKILL", "killed by SIGSEGV (core dumped)".
  std::string to_string() const;

  friend bool operator==(const ExitStatus&, const ExitStatus&) = default;

 private:
  ExitStatus(int code, int signum, bool core) : code_(code), signal_(signum), core_(core) {}
  int code_ = 0;
  int signal_ = 0;
  bool core_ = false;
};

}  // namespace trapeze::watchers

template <>
struct fmt::formatter<trapeze::watchers::ExitStatus> : fmt::formatter<std::string> {
  auto format(const trapeze::watchers::ExitStatus& s, format_context& ctx) const {
    return fmt::formatter<std::string>::format(s.to_string(), ctx);
  }
};
