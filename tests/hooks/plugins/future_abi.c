/* A plugin built against a later, incompatible ABI. */
#include <trapeze/hook.h>

TRAPEZE_EXPORT const trapeze_plugin_info trapeze_plugin = {TRAPEZE_HOOK_ABI_VERSION + 1, sizeof(trapeze_hook_call)};

TRAPEZE_EXPORT trapeze_hook_result go_on(const trapeze_hook_call* call) {
  (void)call;
  return TRAPEZE_HOOK_CONTINUE;
}
