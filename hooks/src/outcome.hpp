// What a hook's return value means: one mapping for hooks called in the arbiter and in a host.
#pragma once

#include <string>

#include <fmt/format.h>

#include "trapeze/hook.h"
#include "trapeze/hooks/runner.hpp"

namespace trapeze::hooks::detail {

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
