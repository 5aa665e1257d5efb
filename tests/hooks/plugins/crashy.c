/* Hooks that a sane arbiter must never run in its own process: they crash, exit or hang, for
 * the tests of isolated hooks (isolate = true). And one that reports what its host process
 * looks like from the inside. */
#define _GNU_SOURCE
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <trapeze/hook.h>

TRAPEZE_PLUGIN();

/* Dereferences NULL. */
TRAPEZE_EXPORT trapeze_hook_result segfault(const trapeze_hook_call* call) {
  volatile int* volatile p = NULL; /* both volatile: the store must be emitted */
  call->log(call, TRAPEZE_LOG_INFO, "about to dereference NULL");
  *p = 42;
  return TRAPEZE_HOOK_CONTINUE;
}

TRAPEZE_EXPORT trapeze_hook_result aborts(const trapeze_hook_call* call) {
  (void)call;
  abort();
}

/* exit(N), N from option `status` (default 3). */
TRAPEZE_EXPORT trapeze_hook_result exits(const trapeze_hook_call* call) {
  const char* s = call->hook_option(call, "status");
  exit(s ? atoi(s) : 3);
}

/* Never returns, deaf to cancellation. */
TRAPEZE_EXPORT trapeze_hook_result hangs(const trapeze_hook_call* call) {
  (void)call;
  for (;;) pause();
}

/* Logs one line at each level (option `text` is appended), then continues. */
TRAPEZE_EXPORT trapeze_hook_result chatty(const trapeze_hook_call* call) {
  const char* text = call->hook_option(call, "text");
  char line[256];
  snprintf(line, sizeof line, "a word from the host: %s", text ? text : "hello");
  call->log(call, TRAPEZE_LOG_WARNING, line);
  call->log(call, TRAPEZE_LOG_DEBUG, "a debug word");
  return TRAPEZE_HOOK_CONTINUE;
}

/* Waits until cancelled (at most `seconds`, default 10), then says so in its error. */
TRAPEZE_EXPORT trapeze_hook_result until_cancelled(const trapeze_hook_call* call) {
  const char* s = call->hook_option(call, "seconds");
  long steps = (s ? atol(s) : 10) * 100;
  struct timespec t = {0, 10000000L};
  for (long i = 0; i < steps; ++i) {
    if (call->cancelled(call)) {
      call->set_error(call, "cancelled");
      return TRAPEZE_HOOK_ERROR;
    }
    nanosleep(&t, NULL);
  }
  call->set_error(call, "never cancelled");
  return TRAPEZE_HOOK_ERROR;
}

static void status_field(const char* name, char* out, size_t size) {
  snprintf(out, size, "?");
  FILE* f = fopen("/proc/self/status", "r");
  if (f == NULL) return;
  char line[256];
  size_t n = strlen(name);
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, name, n) == 0 && line[n] == ':') {
      char* v = line + n + 1;
      while (*v == ' ' || *v == '\t') ++v;
      v[strcspn(v, "\n")] = '\0';
      snprintf(out, size, "%s", v);
      break;
    }
  }
  fclose(f);
}

/* Reports, as its error: "pid=P ppid=Q fds=0,1,2,3 sigblk=... sigign=... notify=unset". */
TRAPEZE_EXPORT trapeze_hook_result inspect(const trapeze_hook_call* call) {
  char fds[256] = "";
  DIR* d = opendir("/proc/self/fd");
  if (d != NULL) {
    int own = dirfd(d);
    int seen[64];
    int count = 0;
    struct dirent* e;
    while ((e = readdir(d)) != NULL && count < 64) {
      if (e->d_name[0] == '.') continue;
      int fd = atoi(e->d_name);
      if (fd != own) seen[count++] = fd;
    }
    closedir(d);
    for (int i = 0; i < count; ++i) /* sort, small */
      for (int j = i + 1; j < count; ++j)
        if (seen[j] < seen[i]) {
          int t = seen[i];
          seen[i] = seen[j];
          seen[j] = t;
        }
    for (int i = 0; i < count; ++i) {
      char one[16];
      snprintf(one, sizeof one, "%s%d", i ? "," : "", seen[i]);
      strncat(fds, one, sizeof fds - strlen(fds) - 1);
    }
  }
  char blocked[64], ignored[64];
  status_field("SigBlk", blocked, sizeof blocked);
  status_field("SigIgn", ignored, sizeof ignored);
  char line[512];
  snprintf(line, sizeof line, "pid=%ld ppid=%ld fds=%s sigblk=%s sigign=%s notify=%s", (long)getpid(),
           (long)getppid(), fds, blocked, ignored, getenv("NOTIFY_SOCKET") ? "set" : "unset");
  call->set_error(call, line);
  return TRAPEZE_HOOK_ERROR;
}
