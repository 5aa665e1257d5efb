/* A well-formed plugin: continues. */
#include <trapeze/hook.h>

TRAPEZE_PLUGIN();

TRAPEZE_EXPORT trapeze_hook_result go_on(const trapeze_hook_call* call) {
  (void)call;
  return TRAPEZE_HOOK_CONTINUE;
}
