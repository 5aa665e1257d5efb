/* A plugin whose constructor crashes: opening it kills the process that opens it. Isolated,
 * it can only kill a hook host. */
#include <signal.h>

#include <trapeze/hook.h>

TRAPEZE_PLUGIN();

__attribute__((constructor)) static void crash_on_load(void) { raise(SIGSEGV); }

TRAPEZE_EXPORT trapeze_hook_result never_reached(const trapeze_hook_call* call) {
  (void)call;
  return TRAPEZE_HOOK_CONTINUE;
}
