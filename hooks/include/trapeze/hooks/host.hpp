// Isolated hooks: a hook whose config says `isolate = true` runs in a hook-host process (the
// trapeze binary itself, as the hidden `trapeze hook-host`), one process per call, so a plugin
// that crashes, leaks or hangs takes down its host and never the arbiter.
//
// The host is started with clone3(CLONE_PIDFD) by the hook thread, which waits on its pidfd and
// reaps it. The arbiter's SIGCHLD backstop (Arbiter::reap_strays) sees every exited child
// first; it asks claim_host_child, which reaps a host there and then and keeps its exit status
// for the hook thread. Either way the host is reaped once, by one of the two, and its status
// reaches its call. The host gets fd 3 (its end of a socketpair),
// stdin/stdout/stderr, and nothing else; an empty signal mask; default signal dispositions;
// the arbiter's environment less what belongs to the arbiter alone (NOTIFY_SOCKET, LISTEN_*);
// and SIGKILL when the thread that started it ends.
#pragma once

#include <atomic>
#include <chrono>
#include <optional>
#include <string>

#include <sys/types.h>

#include "trapeze/hooks/runner.hpp"

namespace trapeze::hooks {

/// What starts a host unless told otherwise: this very binary.
inline const std::string kSelfBinary = "/proc/self/exe";

/// The main of `trapeze hook-host`: reads one request from fd 3, runs it, answers, exits.
/// Returns 2 when fd 3 is not a socket (someone ran it by hand).
int host_main();

/// Runs `req` (req.isolate, library and symbol set) in a new host started from `binary`;
/// blocks the calling thread until the host is reaped. At `deadline` the host is SIGKILLed
/// and the call is timed out. Once `cancelled` is raised (and `wake_fd`, an eventfd, is
/// written to wake the wait; -1 for none), the host is told to cancel. A host that dies
/// without an answer fails the call: "crashed: SIGSEGV", "crashed: exit status 3".
/// duration_ms is left 0 (the caller measures from submission).
HookResult call_in_host(const HookRequest& req, const std::string& binary,
                        std::chrono::steady_clock::time_point deadline, const std::atomic<int>& cancelled,
                        int wake_fd);

/// Loads `symbol` of `library` in a host, with the plugin loader's checks, and calls nothing:
/// nullopt when it would load, else why not ("cannot load plugin ...", "... crashed: SIGSEGV").
/// For `trapeze run` and `trapeze check`, so an isolated hook's plugin is refused before
/// anything starts, without ever being opened in the arbiter.
std::optional<std::string> check_in_host(const std::string& library, const std::string& symbol,
                                         const std::string& binary = kSelfBinary,
                                         std::chrono::milliseconds timeout = std::chrono::seconds(10));

/// For a reaper of stray children (Arbiter::reap_strays), on the loop thread: if `pid` is a
/// hook host that exited (waitid(P_ALL, WNOWAIT) said so), reaps it, keeps its exit status for
/// the hook thread that waits for it, and returns true. False for any other pid. Thread-safe.
bool claim_host_child(pid_t pid);

/// "SIGSEGV", "SIGRTMIN+2", "signal 99".
std::string signal_name(int signum);

}  // namespace trapeze::hooks
