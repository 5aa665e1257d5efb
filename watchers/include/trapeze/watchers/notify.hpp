// systemd's notify protocol for readiness: one datagram socket for the arbiter, named in each
// child's NOTIFY_SOCKET; a datagram is matched to its process by the sender's pid, which the
// kernel vouches for (SCM_CREDENTIALS), so only the main process is heard (NotifyAccess=main).
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "trapeze/loop/fd.hpp"
#include "trapeze/loop/loop.hpp"

namespace trapeze::watchers {

class NotifyHub {
 public:
  /// Binds an abstract-namespace socket (no file: a child that dropped privileges can still
  /// send to it). Throws std::system_error.
  explicit NotifyHub(loop::Loop& loop);

  /// What NOTIFY_SOCKET says: "@trapeze-notify-PID-N".
  const std::string& socket_name() const { return name_; }

  /// Datagrams from `pid` go to `on_message` (on the loop) until forget(pid).
  void expect(pid_t pid, std::function<void(std::string_view message)> on_message);
  void forget(pid_t pid);

 private:
  void on_readable();

  loop::UniqueFd fd_;
  loop::FdWatch watch_;
  std::string name_;
  std::map<pid_t, std::function<void(std::string_view)>> listeners_;
};

/// Does a notify datagram say READY=1 (one of its lines)?
bool says_ready(std::string_view message);

}  // namespace trapeze::watchers
