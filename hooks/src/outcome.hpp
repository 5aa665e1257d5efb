// A hook's call and what its return value means: one of each for hooks called in the arbiter
// and in a host.
#pragma once

#include <string>

#include <fmt/format.h>

#include "trapeze/hook.h"
#include "trapeze/hooks/runner.hpp"

namespace trapeze::hooks::detail {

/// The call for `req` (a HookRequest or a wire::HostRequest), its callbacks left to the caller.
template <class Request>
trapeze_hook_call call_for(const Request& req, void* host) {
  trapeze_hook_call call{};
  call.struct_size = sizeof call;
  call.abi_version = TRAPEZE_HOOK_ABI_VERSION;
  call.hook_name = req.hook_name.c_str();
  call.watcher_name = req.watcher_name.c_str();
  call.pid = req.pid;
  call.signum = req.signum;
  call.exit_status = req.exit_status;
  call.host = host;
  return call;
}

/// The result of a hook that returned `r` after set_error(`error`) (empty if never called).
inline HookResult outcome_of(trapeze_hook_result r, const std::string& error) {
  HookResult result;
  switch (r) {
    case TRAPEZE_HOOK_CONTINUE:
      result.outcome = HookOutcome::proceed;
      break;
    case TRAPEZE_HOOK_VETO:
      result.outcome = HookOutcome::veto;
      result.error = "vetoed";
      break;
    case TRAPEZE_HOOK_ERROR:
      result.outcome = HookOutcome::error;
      result.error = error.empty() ? "the hook returned an error without a message" : error;
      break;
    default:
      result.outcome = HookOutcome::error;
      result.error =
          fmt::format("the hook returned {}, which is not a trapeze_hook_result", static_cast<int>(r));
      break;
  }
  return result;
}

}  // namespace trapeze::hooks::detail
