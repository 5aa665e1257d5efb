// From a watcher's cmd and args to the argv of one process, as circus builds it
// (circus/process.py format_args): variables replaced per process, POSIX shell-like splitting,
// and shell = true handing one quoted line to /bin/sh -c. Pure functions.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "trapeze/conf/config.hpp"

namespace trapeze::watchers {

/// Splits like Python's shlex.split (POSIX mode, no comments): blanks separate words, '...'
/// is literal, "..." allows \" and \\, a backslash outside quotes escapes any character.
/// Returns the error "no closing quotation" when a quote is left open.
std::variant<std::vector<std::string>, std::string> shell_split(std::string_view text);

/// Quotes one word for /bin/sh, as Python's shlex.quote: unchanged when it is safe.
std::string shell_quote(std::string_view word);

struct ProcessCommand {
  std::string path;  // what to execute: `executable`, else argv[0]
  std::vector<std::string> argv;
};

/// The command of the process in slot `wid` (from 1), with $(circus.wid) (and the older $WID)
/// and $(circus.sockets.NAME) replaced; `socket_fds` maps socket names to their fds. Returns the
/// command, or what is wrong ("cmd: no closing quotation", "cmd is empty").
std::variant<ProcessCommand, std::string> process_command(const conf::WatcherConfig& w, int wid,
                                                          const std::map<std::string, int>& socket_fds);

}  // namespace trapeze::watchers
