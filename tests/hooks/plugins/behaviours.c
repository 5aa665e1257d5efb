/* Hooks that do each thing a hook can do, for the runner's and the arbiter's tests. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <trapeze/hook.h>

TRAPEZE_PLUGIN();

static void nap_ms(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

static double seconds_option(const trapeze_hook_call* call, double fallback) {
  const char* s = call->hook_option(call, "seconds");
  return s ? atof(s) : fallback;
}

TRAPEZE_EXPORT trapeze_hook_result go_on(const trapeze_hook_call* call) {
  (void)call;
  return TRAPEZE_HOOK_CONTINUE;
}

TRAPEZE_EXPORT trapeze_hook_result refuse(const trapeze_hook_call* call) {
  (void)call;
  return TRAPEZE_HOOK_VETO;
}

TRAPEZE_EXPORT trapeze_hook_result fail(const trapeze_hook_call* call) {
  const char* message = call->hook_option(call, "message");
  call->set_error(call, message ? message : "database is down");
  return TRAPEZE_HOOK_ERROR;
}

TRAPEZE_EXPORT trapeze_hook_result bad_result(const trapeze_hook_call* call) {
  (void)call;
  return (trapeze_hook_result)7;
}

/* Sleeps `seconds` (default 5), returning early when cancelled. */
TRAPEZE_EXPORT trapeze_hook_result sleepy(const trapeze_hook_call* call) {
  long steps = (long)(seconds_option(call, 5) * 100);
  for (long i = 0; i < steps; ++i) {
    if (call->cancelled(call)) return TRAPEZE_HOOK_CONTINUE;
    nap_ms(10);
  }
  return TRAPEZE_HOOK_CONTINUE;
}

/* Sleeps `seconds` (default 2), deaf to cancellation. */
TRAPEZE_EXPORT trapeze_hook_result stubborn(const trapeze_hook_call* call) {
  nap_ms((long)(seconds_option(call, 2) * 1000));
  return TRAPEZE_HOOK_CONTINUE;
}

/* Reports what it was given, as its error message. */
TRAPEZE_EXPORT trapeze_hook_result echo(const trapeze_hook_call* call) {
  char line[512];
  const char* n = call->watcher_option(call, "numprocesses");
  const char* cmd = call->watcher_option(call, "cmd");
  const char* port = call->hook_option(call, "port");
  snprintf(line, sizeof line, "hook=%s watcher=%s pid=%lld signum=%d exit=%d numprocesses=%s cmd=%s port=%s nope=%s",
           call->hook_name, call->watcher_name, (long long)call->pid, call->signum, call->exit_status,
           n ? n : "(null)", cmd ? cmd : "(null)", port ? port : "(null)",
           call->hook_option(call, "nope") ? "set" : "(null)");
  call->log(call, TRAPEZE_LOG_INFO, line);
  call->set_error(call, line);
  return TRAPEZE_HOOK_ERROR;
}

/* Appends "HOOK PID SIGNUM EXIT" to the file named by option `file`, then continues; vetoes
 * when option `veto` names this hook point, and fails when option `fail` does. */
TRAPEZE_EXPORT trapeze_hook_result record(const trapeze_hook_call* call) {
  const char* path = call->hook_option(call, "file");
  if (path != NULL) {
    FILE* f = fopen(path, "a");
    if (f != NULL) {
      fprintf(f, "%s %lld %d %d\n", call->hook_name, (long long)call->pid, call->signum, call->exit_status);
      fclose(f);
    }
  }
  const char* veto = call->hook_option(call, "veto");
  if (veto != NULL && strcmp(veto, call->hook_name) == 0) return TRAPEZE_HOOK_VETO;
  const char* failing = call->hook_option(call, "fail");
  if (failing != NULL && strcmp(failing, call->hook_name) == 0) {
    call->set_error(call, "asked to fail");
    return TRAPEZE_HOOK_ERROR;
  }
  return TRAPEZE_HOOK_CONTINUE;
}
