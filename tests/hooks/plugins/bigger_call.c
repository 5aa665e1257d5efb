/* A plugin built with a newer header of the same ABI version: its trapeze_hook_call is longer. */
#include <trapeze/hook.h>

TRAPEZE_EXPORT const trapeze_plugin_info trapeze_plugin = {TRAPEZE_HOOK_ABI_VERSION,
                                                           sizeof(trapeze_hook_call) + 16};

TRAPEZE_EXPORT trapeze_hook_result go_on(const trapeze_hook_call* call) {
  (void)call;
  return TRAPEZE_HOOK_CONTINUE;
}
