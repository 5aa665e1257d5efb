/* test_child: a child process for the integration tests that does one thing per argument
 * group, in order, with no shell quoting involved:
 *   exit N           exit with status N
 *   sleep MS         sleep MS milliseconds
 *   forever          wait for signals until killed
 *   ignore SIG       ignore a signal (TERM, INT, HUP, ...)
 *   print TEXT       write TEXT and a newline to stdout      eprint TEXT: to stderr
 *   partial TEXT     write TEXT to stdout, no newline
 *   spam N           write N bytes to stdout: lines of 'x' ending in '\n'
 *   pidfile FILE     write our pid to FILE (atomically: FILE.tmp then rename)
 *   fds FILE         write our open fd numbers (from /proc/self/fd), one per line, to FILE
 *   env NAME         print NAME=value (or NAME unset) to stdout
 *   grandchild FILE  fork a child that keeps our stdout open and sleeps until killed; its pid
 *                    goes to FILE
 *   raise SIG        send ourselves SIG
 *   onhup FILE       on each SIGHUP, append a line "HUP" to FILE
 *   notify TEXT      send TEXT (e.g. READY=1) to $NOTIFY_SOCKET, as sd_notify does
 *   readyfd N        write a newline to fd N and close it (s6's readiness protocol)
 *   serve PORT       listen on 127.0.0.1:PORT and answer every connection with
 *                    "HTTP/1.0 200 OK" and the body "ready", forever
 *   serve503 PORT    the same, answering "HTTP/1.0 503 Service Unavailable"
 *   stamp FILE       write the time (CLOCK_REALTIME, seconds with decimals) to FILE
 *   servefd FD       accept on the inherited listening socket FD and answer each connection
 *                    "HTTP/1.0 200 OK" with our pid as the body; SIGTERM ends it after the
 *                    answer in hand, so no connection it accepted is cut
 *   hangif FILE      if FILE exists, wait for signals until killed (never go on)
 *   forkbomb MS      for MS milliseconds, fork as fast as possible, each child doing the
 *                    same (a failed fork is retried after 1 ms); then every process of the
 *                    bomb waits for signals until killed. All stay in our process group.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <stddef.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int signal_number(const char* name) {
  static const struct { const char* name; int num; } table[] = {
      {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"TERM", SIGTERM}, {"USR1", SIGUSR1},
      {"USR2", SIGUSR2}, {"KILL", SIGKILL}, {"SEGV", SIGSEGV}, {"ABRT", SIGABRT}, {"PIPE", SIGPIPE}};
  for (size_t i = 0; i < sizeof table / sizeof table[0]; ++i)
    if (strcmp(table[i].name, name) == 0) return table[i].num;
  fprintf(stderr, "test_child: unknown signal %s\n", name);
  exit(100);
}

static void write_all(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n <= 0) exit(101);
    data += n;
    len -= (size_t)n;
  }
}

static void write_file(const char* path, const char* text) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE* f = fopen(tmp, "w");
  if (!f) exit(102);
  fputs(text, f);
  fclose(f);
  if (rename(tmp, path) != 0) exit(103);
}

static const char* hup_file;

static void on_hup(int sig) {
  (void)sig;
  int fd = open(hup_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd >= 0) {
    (void)!write(fd, "HUP\n", 4);
    close(fd);
  }
}

static void notify(const char* text) {
  const char* path = getenv("NOTIFY_SOCKET");
  if (!path || !*path) exit(106);
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  size_t len = strlen(path);
  if (len >= sizeof addr.sun_path) exit(107);
  memcpy(addr.sun_path, path, len);
  if (path[0] == '@') addr.sun_path[0] = '\0';  /* abstract namespace */
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) exit(108);
  socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
  if (sendto(fd, text, strlen(text), 0, (struct sockaddr*)&addr, alen) < 0) exit(109);
  close(fd);
}

static void serve(int port, const char* answer) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int on = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, (struct sockaddr*)&addr, sizeof addr) < 0 || listen(s, 64) < 0) exit(110);
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    char req[2048];
    (void)!read(c, req, sizeof req);
    write_all(c, answer, strlen(answer));
    close(c);
  }
}

static volatile sig_atomic_t terminated;

static void on_term(int sig) {
  (void)sig;
  terminated = 1;
}

static void serve_fd(int listener) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  /* SIGTERM is taken only inside ppoll, so it cannot slip in between the check and the wait. */
  sigset_t term, none;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigemptyset(&none);
  sigprocmask(SIG_BLOCK, &term, NULL);
  fcntl(listener, F_SETFL, fcntl(listener, F_GETFL) | O_NONBLOCK);
  char answer[256];
  int n = snprintf(answer, sizeof answer, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n%ld\n",
                   (long)getpid());
  while (!terminated) {
    struct pollfd pfd = {listener, POLLIN, 0};
    if (ppoll(&pfd, 1, NULL, &none) <= 0) continue;
    int c = accept(listener, NULL, NULL);  /* EAGAIN when a sibling took it */
    if (c < 0) continue;
    char req[2048];
    (void)!read(c, req, sizeof req);
    write_all(c, answer, (size_t)n);
    close(c);
  }
  exit(0);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Bounded in time; bounded in count only by RLIMIT_NPROC, which is the point. */
static void forkbomb(long ms) {
  long deadline = now_ms() + ms;
  while (now_ms() < deadline) {
    pid_t pid = fork();
    if (pid < 0 && (errno == EAGAIN || errno == ENOMEM)) sleep_ms(1);
  }
  for (;;) pause();
}

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const char* op = argv[i];
    const char* arg = i + 1 < argc ? argv[i + 1] : "";
    char buf[4096];
    if (strcmp(op, "exit") == 0) {
      exit(atoi(arg));
    } else if (strcmp(op, "sleep") == 0) {
      sleep_ms(atol(arg));
      ++i;
    } else if (strcmp(op, "forever") == 0) {
      for (;;) pause();
    } else if (strcmp(op, "ignore") == 0) {
      signal(signal_number(arg), SIG_IGN);
      ++i;
    } else if (strcmp(op, "print") == 0 || strcmp(op, "eprint") == 0) {
      snprintf(buf, sizeof buf, "%s\n", arg);
      write_all(op[0] == 'e' ? 2 : 1, buf, strlen(buf));
      ++i;
    } else if (strcmp(op, "partial") == 0) {
      write_all(1, arg, strlen(arg));
      ++i;
    } else if (strcmp(op, "spam") == 0) {
      long n = atol(arg);
      char line[100];
      memset(line, 'x', sizeof line - 1);
      line[sizeof line - 1] = '\n';
      while (n > 0) {
        size_t chunk = n < (long)sizeof line ? (size_t)n : sizeof line;
        if (chunk < sizeof line) line[chunk - 1] = '\n';
        write_all(1, line, chunk);
        n -= (long)chunk;
      }
      ++i;
    } else if (strcmp(op, "pidfile") == 0) {
      snprintf(buf, sizeof buf, "%d\n", (int)getpid());
      write_file(arg, buf);
      ++i;
    } else if (strcmp(op, "fds") == 0) {
      DIR* d = opendir("/proc/self/fd");
      if (!d) exit(104);
      int self = dirfd(d);
      size_t used = 0;
      struct dirent* e;
      buf[0] = '\0';
      while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == self) continue;
        used += (size_t)snprintf(buf + used, sizeof buf - used, "%s\n", e->d_name);
      }
      closedir(d);
      write_file(arg, buf);
      ++i;
    } else if (strcmp(op, "env") == 0) {
      const char* v = getenv(arg);
      if (v) snprintf(buf, sizeof buf, "%s=%s\n", arg, v);
      else snprintf(buf, sizeof buf, "%s unset\n", arg);
      write_all(1, buf, strlen(buf));
      ++i;
    } else if (strcmp(op, "grandchild") == 0) {
      pid_t pid = fork();
      if (pid < 0) exit(105);
      if (pid == 0) {
        for (;;) pause();
      }
      snprintf(buf, sizeof buf, "%d\n", (int)pid);
      write_file(arg, buf);
      ++i;
    } else if (strcmp(op, "onhup") == 0) {
      hup_file = arg;
      signal(SIGHUP, on_hup);
      ++i;
    } else if (strcmp(op, "notify") == 0) {
      notify(arg);
      ++i;
    } else if (strcmp(op, "readyfd") == 0) {
      write_all(atoi(arg), "\n", 1);
      close(atoi(arg));
      ++i;
    } else if (strcmp(op, "serve") == 0) {
      serve(atoi(arg), "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nready\n");
    } else if (strcmp(op, "serve503") == 0) {
      serve(atoi(arg), "HTTP/1.0 503 Service Unavailable\r\n\r\nnot yet\n");
    } else if (strcmp(op, "stamp") == 0) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      snprintf(buf, sizeof buf, "%ld.%09ld\n", (long)ts.tv_sec, ts.tv_nsec);
      write_file(arg, buf);
      ++i;
    } else if (strcmp(op, "servefd") == 0) {
      serve_fd(atoi(arg));
    } else if (strcmp(op, "hangif") == 0) {
      if (access(arg, F_OK) == 0)
        for (;;) pause();
      ++i;
    } else if (strcmp(op, "forkbomb") == 0) {
      forkbomb(atol(arg));
    } else if (strcmp(op, "raise") == 0) {
      raise(signal_number(arg));
      ++i;
    } else {
      fprintf(stderr, "test_child: unknown action %s\n", op);
      return 100;
    }
  }
  return 0;
}
