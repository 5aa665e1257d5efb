#include "trapeze/watchers/exit_status.hpp"

#include "trapeze/conf/show.hpp"

namespace trapeze::watchers {

ExitStatus ExitStatus::from_siginfo(const siginfo_t& info) {
  switch (info.si_code) {
    case CLD_EXITED:
      return exited(info.si_status);
    case CLD_DUMPED:
      return killed(info.si_status, true);
    default:
      return killed(info.si_status);
  }
}

std::string ExitStatus::to_string() const {
  if (!signaled()) return "exited " + std::to_string(code_);
  return "killed by " + conf::signal_name(signal_) + (core_ ? " (core dumped)" : "");
}

}  // namespace trapeze::watchers
