/* A plugin built against a later, incompatible ABI. */
#include <trapeze/hook.h>

TRAPEZE_EXPORT const uint32_t trapeze_plugin_abi_version = TRAPEZE_HOOK_ABI_VERSION + 1;

TRAPEZE_EXPORT trapeze_hook_result go_on(const trapeze_hook_call* call) {
  (void)call;
  return TRAPEZE_HOOK_CONTINUE;
}
