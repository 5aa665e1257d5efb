// Starting one child process: the only code in trapeze that forks. Everything the child needs
// is prepared by the caller as a SpawnRequest, in the parent; between clone and exec the child
// makes only async-signal-safe system calls, allocates nothing, and reports a failure as
// (step, errno) through a close-on-exec pipe: EOF means exec succeeded.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "trapeze/loop/fd.hpp"

namespace trapeze::watchers {

struct SpawnRequest {
  std::string path;               // absolute or relative to working_dir: what execve gets
  std::vector<std::string> argv;  // argv[0] included
  std::vector<std::string> env;   // "NAME=value", the whole environment
  std::string working_dir;        // empty: the arbiter's
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::optional<std::vector<gid_t>> groups;  // supplementary groups, set when given
  std::optional<mode_t> umask;
  std::vector<std::pair<int, rlimit>> rlimits;  // RLIMIT_* and value
  /// The child's fds: child_fd <- parent_fd (equal numbers inherit the parent's fd as it is).
  /// 0, 1 and 2 must be given. Every other fd is closed in the child.
  std::vector<std::pair<int, int>> fds;
};

struct Spawned {
  pid_t pid = -1;
  loop::UniqueFd pidfd;  // readable once the child exited; waitid(P_PIDFD) reaps it
};

struct SpawnFailure {
  int error = 0;     // errno
  std::string what;  // "cannot exec '/usr/bin/foo': No such file or directory"
};

/// Starts the child: its own process group, an empty signal mask, every signal at its default
/// disposition, only the fds of `req.fds`. Returns the child, or why it could not start (the
/// child, if one was made, has exited and been reaped).
std::variant<Spawned, SpawnFailure> spawn(const SpawnRequest& req);

/// Finds `name` in `path_list` (colon-separated) as execvp would; a name with a slash is
/// returned as is. Returns nullopt when no executable file matches.
std::optional<std::string> find_executable(const std::string& name, const std::string& path_list);

}  // namespace trapeze::watchers
