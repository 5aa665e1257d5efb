// The arbiter's dealings with the system around it: the runtime directory, the pidfile lock
// that makes `run` idempotent, detaching as a daemon, and systemd's notify protocol.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "trapeze/loop/fd.hpp"

namespace trapeze::arbiter {

/// An exclusive lock on a pidfile, held for the arbiter's lifetime (across fork: the lock
/// belongs to the open file, which the daemon inherits).
class PidfileLock {
 public:
  /// Takes the lock. Returns nullopt and sets `holder` to the running arbiter's pid (0 when
  /// unknown) when another process holds it. Throws std::runtime_error on other failures.
  static std::optional<PidfileLock> acquire(const std::string& path, pid_t& holder);
  /// Writes our pid (after daemonizing: the daemon's).
  void write_pid();
  /// Removes the file; the lock goes with the fd.
  void remove();
  int fd() const { return fd_.get(); }

 private:
  std::string path_;
  loop::UniqueFd fd_;
};

/// Detaches: fork, setsid, fork; the first process waits until the daemon calls
/// `daemon_ready` (then exits 0) or `daemon_failed` / dies (then exits 1). stdin becomes
/// /dev/null, stdout and stderr `log_file` (or /dev/null), and every other fd is closed but
/// `keep_fd`. Returns in the daemon only.
void daemonize(const std::string& log_file, int keep_fd);
void daemon_ready();
void daemon_failed(const std::string& why);

/// systemd's sd_notify: sends `state` ("READY=1", "STOPPING=1", "STATUS=...") to
/// $NOTIFY_SOCKET, as read at startup. Does nothing without one.
void sd_notify(const std::string& state);

}  // namespace trapeze::arbiter
