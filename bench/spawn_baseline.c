/* The baseline for trapeze's start-up benchmark: a plain C loop that posix_spawns N
 * `sleep 1000` processes, each in its own process group, and prints the seconds it took.
 * Then it kills and reaps them all.
 *   spawn_baseline N */
#define _GNU_SOURCE
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

extern char** environ;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1000;
  pid_t* pids = calloc((size_t)n, sizeof *pids);
  char* args[] = {"sleep", "1000", NULL};
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  double start = now();
  for (int i = 0; i < n; ++i) {
    if (posix_spawn(&pids[i], "/bin/sleep", NULL, &attr, args, environ) != 0) {
      perror("posix_spawn");
      return 1;
    }
  }
  double took = now() - start;
  printf("%.6f\n", took);
  for (int i = 0; i < n; ++i) kill(pids[i], SIGKILL);
  for (int i = 0; i < n; ++i) waitpid(pids[i], NULL, 0);
  return 0;
}
