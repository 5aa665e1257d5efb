/* A complete hook plugin in C: logs a greeting, and vetoes the start when the hook option
 * "refuse" is "yes". Build it with the CMakeLists.txt beside it (find_package(trapeze)) or by
 * hand:  cc -shared -fPIC $(pkg-config --cflags trapeze) hello.c -o hello.so */
#include <stdio.h>
#include <string.h>

#include <trapeze/hook.h>

TRAPEZE_PLUGIN();

TRAPEZE_EXPORT trapeze_hook_result say_hello(const trapeze_hook_call* call) {
  char line[256];
  snprintf(line, sizeof line, "hello from %s of watcher %s", call->hook_name, call->watcher_name);
  call->log(call, TRAPEZE_LOG_INFO, line);

  const char* refuse = call->hook_option(call, "refuse");
  if (refuse != NULL && strcmp(refuse, "yes") == 0) return TRAPEZE_HOOK_VETO;
  return TRAPEZE_HOOK_CONTINUE;
}
