/* A stand-in for a charm's dispatch, for bench/run.py juju: appends the time it started
 * (CLOCK_REALTIME) to the file named by $STAMP_FILE, and exits 0. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  const char* path = getenv("STAMP_FILE");
  if (path == NULL) return 2;
  FILE* f = fopen(path, "a");
  if (f == NULL) return 3;
  fprintf(f, "%ld.%09ld\n", (long)ts.tv_sec, ts.tv_nsec);
  return fclose(f) == 0 ? 0 : 4;
}
