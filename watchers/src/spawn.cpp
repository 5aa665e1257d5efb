// The one place that creates processes. clone(CLONE_VM | CLONE_VFORK) as posix_spawn does: the
// parent is suspended until the child execs or exits, no page tables are copied (cheap with
// 1000 children and a big arbiter), and CLONE_PIDFD hands back a pidfd with no race against a
// reused pid. The child shares our memory until exec: it only reads the prepared request and
// writes to its own stack.
#include "trapeze/watchers/spawn.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace trapeze::watchers {
namespace {

// What the child was doing when it failed, sent with the errno.
enum class Step : int { fds, pgid, rlimit, umask, chdir, groups, gid, uid, signals, exec };

const char* describe(Step s) {
  switch (s) {
    case Step::fds:
      return "cannot set up fds";
    case Step::pgid:
      return "cannot create a process group";
    case Step::rlimit:
      return "cannot set rlimit";
    case Step::umask:
      return "cannot set umask";
    case Step::chdir:
      return "cannot change directory to";
    case Step::groups:
      return "cannot set supplementary groups";
    case Step::gid:
      return "cannot set gid";
    case Step::uid:
      return "cannot set uid";
    case Step::signals:
      return "cannot reset signals";
    case Step::exec:
      return "cannot exec";
  }
  return "cannot spawn";
}

struct Report {
  int step;
  int error;
};

// Everything the child reads, as plain arrays made in the parent.
struct ChildArgs {
  const SpawnRequest* req;
  const char* path;
  char* const* argv;
  char* const* envp;
  const int* keep;  // fds >= 3 to keep open (sorted), then the report pipe
  std::size_t nkeep;
  int report_fd;
};

[[noreturn]] void child_fail(const ChildArgs* a, Step step) {
  Report r{static_cast<int>(step), errno};
  [[maybe_unused]] auto n = ::write(a->report_fd, &r, sizeof r);
  _exit(127);
}

int child_main(void* arg) {
  const auto* a = static_cast<const ChildArgs*>(arg);
  const SpawnRequest& req = *a->req;

  // fds first: dup2 clears close-on-exec on the target; fds inherited as they are need it
  // cleared by hand. Sources never collide with targets: the parent's 0-2 are open, so pipes
  // and sockets it made are all >= 3, and inherited sockets keep their own number.
  for (const auto& [child_fd, parent_fd] : req.fds) {
    if (child_fd == parent_fd) {
      int flags = fcntl(child_fd, F_GETFD);
      if (flags < 0 || fcntl(child_fd, F_SETFD, flags & ~FD_CLOEXEC) < 0) child_fail(a, Step::fds);
    } else if (dup2(parent_fd, child_fd) < 0) {
      child_fail(a, Step::fds);
    }
  }
  // Close every other fd >= 3, whatever a library opened without O_CLOEXEC.
  unsigned lo = 3;
  for (std::size_t i = 0; i < a->nkeep; ++i) {
    auto k = static_cast<unsigned>(a->keep[i]);
    if (k > lo) syscall(SYS_close_range, lo, k - 1, 0u);
    if (k + 1 > lo) lo = k + 1;
  }
  syscall(SYS_close_range, lo, ~0u, 0u);

  if (setpgid(0, 0) < 0) child_fail(a, Step::pgid);
  for (const auto& [resource, limit] : req.rlimits)
    if (setrlimit(static_cast<__rlimit_resource>(resource), &limit) < 0) child_fail(a, Step::rlimit);
  if (req.umask) umask(*req.umask);
  if (!req.working_dir.empty() && chdir(req.working_dir.c_str()) < 0) child_fail(a, Step::chdir);
  // Raw system calls: glibc's setuid family signals every thread of the process to change
  // theirs too, and our threads are the parent's.
  if (req.groups && syscall(SYS_setgroups, req.groups->size(), req.groups->data()) < 0)
    child_fail(a, Step::groups);
  if (req.gid && syscall(SYS_setgid, *req.gid) < 0) child_fail(a, Step::gid);
  if (req.uid && syscall(SYS_setuid, *req.uid) < 0) child_fail(a, Step::uid);

  // Dispositions: a handler would run our code in the child; an ignored signal (SIGPIPE)
  // would survive exec. Reset both, then unblock everything.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    struct sigaction old {};
    if (sigaction(sig, nullptr, &old) == 0 && old.sa_handler != SIG_DFL) sigaction(sig, &dfl, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  if (sigprocmask(SIG_SETMASK, &none, nullptr) < 0) child_fail(a, Step::signals);

  execve(a->path, a->argv, a->envp);
  child_fail(a, Step::exec);
}

std::vector<char*> c_array(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// ThreadSanitizer's interceptors (sigaction, dup2, close, ...) keep their state in process
// memory: a child sharing ours would rewrite the parent's (its signal handlers, its thread's
// state) and TSan then fails the parent. A TSan build gives the child a copy; the parent
// still waits for its exec (CLONE_VFORK), so the reporting below is the same.
#if defined(__SANITIZE_THREAD__)
constexpr int kCloneShareMemory = 0;
#else
constexpr int kCloneShareMemory = CLONE_VM;
#endif

// The child's stack: one mapping reused by every spawn (spawns happen on the loop thread,
// one at a time, and the parent waits for exec before the next).
constexpr std::size_t kStackSize = 256 * 1024;

void* child_stack() {
  static void* stack = [] {
    void* p =
        mmap(nullptr, kStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  }();
  return stack;
}

std::string message(const SpawnRequest& req, Step step, int error) {
  switch (step) {
    case Step::exec:
      return fmt::format("cannot exec '{}': {}", req.path, std::strerror(error));
    case Step::chdir:
      return fmt::format("cannot change directory to '{}': {}", req.working_dir, std::strerror(error));
    default:
      return fmt::format("{}: {}", describe(step), std::strerror(error));
  }
}

}  // namespace

std::optional<std::string> find_executable(const std::string& name, const std::string& path_list) {
  if (name.empty()) return std::nullopt;
  if (name.find('/') != std::string::npos) return name;
  std::size_t start = 0;
  while (start <= path_list.size()) {
    std::size_t end = path_list.find(':', start);
    if (end == std::string::npos) end = path_list.size();
    std::string dir = path_list.substr(start, end - start);
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
    struct stat st {};
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(candidate.c_str(), X_OK) == 0)
      return candidate;
    start = end + 1;
  }
  return std::nullopt;
}

std::variant<Spawned, SpawnFailure> spawn(const SpawnRequest& req) {
  void* stack = child_stack();
  if (!stack) return SpawnFailure{ENOMEM, "cannot allocate the child's stack"};

  int report[2];
  if (pipe2(report, O_CLOEXEC | O_NONBLOCK) < 0)
    return SpawnFailure{errno, fmt::format("cannot create a pipe: {}", std::strerror(errno))};
  loop::UniqueFd report_read(report[0]), report_write(report[1]);

  std::vector<char*> argv = c_array(req.argv);
  std::vector<char*> envp = c_array(req.env);
  std::vector<int> keep;
  for (const auto& [child_fd, parent_fd] : req.fds)
    if (child_fd >= 3) keep.push_back(child_fd);
  keep.push_back(report_write.get());  // close-on-exec: gone at exec, there until then
  std::sort(keep.begin(), keep.end());
  keep.erase(std::unique(keep.begin(), keep.end()), keep.end());

  ChildArgs args{&req,        req.path.c_str(), argv.data(),       envp.data(),
                 keep.data(), keep.size(),      report_write.get()};

  // No handler of ours may run in the child while it shares our memory: block everything
  // around clone; the child sets its own mask before exec.
  sigset_t all, saved;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  int pidfd = -1;
  pid_t pid = clone(child_main, static_cast<char*>(stack) + kStackSize,
                    kCloneShareMemory | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &args, &pidfd);
  int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  if (pid < 0) return SpawnFailure{clone_errno, fmt::format("cannot clone: {}", std::strerror(clone_errno))};
  loop::UniqueFd owned_pidfd(pidfd);

  report_write.reset();
  Report r{};
  ssize_t n;
  do n = ::read(report_read.get(), &r, sizeof r);
  while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof r)) {
    // The child exited with 127 after writing: reap it here, it never ran the program.
    siginfo_t info{};
    while (waitid(P_PIDFD, static_cast<id_t>(owned_pidfd.get()), &info, WEXITED) < 0 && errno == EINTR) {
    }
    return SpawnFailure{r.error, message(req, static_cast<Step>(r.step), r.error)};
  }
  return Spawned{pid, std::move(owned_pidfd)};
}

}  // namespace trapeze::watchers
