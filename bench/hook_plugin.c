/* The plugin of bench/hook_bench: a hook that does nothing, so a call's time is trapeze's. */
#include <trapeze/hook.h>

TRAPEZE_PLUGIN();

TRAPEZE_EXPORT trapeze_hook_result nothing(const trapeze_hook_call* call) {
  (void)call;
  return TRAPEZE_HOOK_CONTINUE;
}
