/* trapeze/hook.h: the C ABI between trapeze and hook plugins (C99).
 *
 * A plugin is a shared object that exports:
 *   - TRAPEZE_PLUGIN();   once, in one source file: the ABI version and the size of
 *                         trapeze_hook_call it was built with, both checked at load;
 *   - one function per hook, of type trapeze_hook_fn, named in the config:
 *       hooks.before_start = path/to/libmine.so:my_hook     (path and symbol)
 *       hooks.before_start = mypkg.mymodule.my_hook         (mypkg/mymodule.so, symbol my_hook)
 *
 * Contract of a hook call:
 *   - it runs on a hook thread, never on the arbiter's loop; it may block, up to its timeout
 *     (default 30 s), after which it is reported failed and cancelled() returns non-zero;
 *     several hooks (of other watchers or processes) may run at the same time, so a plugin
 *     keeps no unguarded global state;
 *   - `call` and every string it gives are valid only during the call; copy what you keep;
 *   - return TRAPEZE_HOOK_CONTINUE, TRAPEZE_HOOK_VETO, or TRAPEZE_HOOK_ERROR after set_error();
 *   - never let a C++ exception or a longjmp cross this boundary (see hook.hpp for a wrapper);
 *   - with `isolate = true` in the config, the call runs in a hook-host process of its own
 *     instead (same contract; a crash fails the hook, not the arbiter; globals do not persist
 *     from one call to the next).
 */
#ifndef TRAPEZE_HOOK_H
#define TRAPEZE_HOOK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any incompatible change. A plugin built for another version is refused at load. */
#define TRAPEZE_HOOK_ABI_VERSION 1u

typedef enum trapeze_hook_result {
  TRAPEZE_HOOK_CONTINUE = 0, /* go on */
  TRAPEZE_HOOK_VETO = 1,     /* refuse: the start, spawn or signal does not happen */
  TRAPEZE_HOOK_ERROR = 2     /* failed; set_error() says why */
} trapeze_hook_result;

typedef enum trapeze_log_level {
  TRAPEZE_LOG_DEBUG = 0,
  TRAPEZE_LOG_INFO = 1,
  TRAPEZE_LOG_WARNING = 2,
  TRAPEZE_LOG_ERROR = 3
} trapeze_log_level;

typedef struct trapeze_hook_call trapeze_hook_call;

struct trapeze_hook_call {
  /* sizeof(trapeze_hook_call) as the arbiter knows it. Later versions of this header only
   * append fields; a plugin reads a field past its own header's end only when
   * struct_size says the arbiter has it. */
  uint32_t struct_size;
  uint32_t abi_version;

  const char* hook_name; /* "before_start", "after_spawn", ... */
  const char* watcher_name;
  int64_t pid;     /* spawn, signal and reap hooks: the process concerned; else 0 */
  int signum;      /* before_signal / after_signal: the signal; else 0 */
  int exit_status; /* before_reap / after_reap: the exit code, or minus the signal; else 0 */

  /* The watcher's option KEY ("numprocesses", "cmd", "working_dir", ...) as text, or NULL
   * when it has none. Numbers and booleans read "4", "true"; lists are JSON. */
  const char* (*watcher_option)(const trapeze_hook_call* call, const char* key);
  /* The hook's own option KEY (hooks.NAME.options.KEY in INI, options = {...} in TOML), or NULL. */
  const char* (*hook_option)(const trapeze_hook_call* call, const char* key);
  /* Writes MESSAGE to the arbiter's log, tagged with the watcher and the hook. */
  void (*log)(const trapeze_hook_call* call, trapeze_log_level level, const char* message);
  /* Records the message returned with TRAPEZE_HOOK_ERROR (copied; the last one counts). */
  void (*set_error)(const trapeze_hook_call* call, const char* message);
  /* Non-zero once the hook has timed out or the arbiter is shutting down: return soon, the
   * result will be ignored. Cheap; poll it in loops and between retries. */
  int (*cancelled)(const trapeze_hook_call* call);

  void* host; /* the arbiter's; do not touch */
};

typedef trapeze_hook_result (*trapeze_hook_fn)(const trapeze_hook_call* call);

/* What TRAPEZE_PLUGIN() exports, under the name TRAPEZE_PLUGIN_SYMBOL. */
typedef struct trapeze_plugin_info {
  uint32_t abi_version; /* TRAPEZE_HOOK_ABI_VERSION of the plugin's header */
  uint32_t call_size;   /* sizeof(trapeze_hook_call) in the plugin's header */
} trapeze_plugin_info;

#define TRAPEZE_PLUGIN_SYMBOL "trapeze_plugin"

#if defined(__GNUC__)
#define TRAPEZE_EXPORT __attribute__((visibility("default")))
#else
#define TRAPEZE_EXPORT
#endif

#ifdef __cplusplus
#define TRAPEZE_PLUGIN()                                                  \
  extern "C" TRAPEZE_EXPORT const trapeze_plugin_info trapeze_plugin = { \
      TRAPEZE_HOOK_ABI_VERSION, sizeof(trapeze_hook_call)}
#else
#define TRAPEZE_PLUGIN()                                           \
  TRAPEZE_EXPORT const trapeze_plugin_info trapeze_plugin = {      \
      TRAPEZE_HOOK_ABI_VERSION, sizeof(trapeze_hook_call)}
#endif

#ifdef __cplusplus
}
#endif

#endif /* TRAPEZE_HOOK_H */
