/* plugins/support.h: what the stock plugins share: options, a monotonic clock, pauses, and
 * TCP connects, sends and reads that give up at a deadline or when the call is cancelled.
 *
 * Header-only (static inline functions, so an unused one costs nothing and warns about
 * nothing) because each plugin source must compile on its own: examples/redis-queue builds
 * check_redis.c alone into mycoolapp/myplugins.so, and "support.h" is found beside it.
 *
 * Rules every function here keeps, because hooks share the arbiter's process:
 *   - no global mutable state: several calls run at once on different hook threads;
 *   - no wait longer than TP_SLICE_MS without a look at call->cancelled(call);
 *   - sockets are close-on-exec from birth (the arbiter forks children while hooks run)
 *     and never raise SIGPIPE.
 *
 * The includer defines _POSIX_C_SOURCE 200809L before any system header. */
#ifndef TRAPEZE_PLUGINS_SUPPORT_H
#define TRAPEZE_PLUGINS_SUPPORT_H

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <trapeze/hook.h>

/* The longest a helper waits between two looks at call->cancelled(). */
#define TP_SLICE_MS 50

/* What a wait on a socket came to. */
enum { TP_READY = 1, TP_TIMEOUT = 0, TP_CANCELLED = -1, TP_FAILED = -2 };

#if defined(__GNUC__)
#define TP_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define TP_PRINTF(f, a)
#endif

/* ---- messages ---------------------------------------------------------------------- */

static inline void tp_logf(const trapeze_hook_call* call, trapeze_log_level level, const char* format, ...)
    TP_PRINTF(3, 4);
static inline void tp_logf(const trapeze_hook_call* call, trapeze_log_level level, const char* format, ...) {
  char message[768];
  va_list args;
  va_start(args, format);
  vsnprintf(message, sizeof message, format, args);
  va_end(args);
  call->log(call, level, message);
}

static inline void tp_errorf(const trapeze_hook_call* call, const char* format, ...) TP_PRINTF(2, 3);
static inline void tp_errorf(const trapeze_hook_call* call, const char* format, ...) {
  char message[768];
  va_list args;
  va_start(args, format);
  vsnprintf(message, sizeof message, format, args);
  va_end(args);
  call->set_error(call, message);
}

static inline void tp_whyf(char* why, size_t size, const char* format, ...) TP_PRINTF(3, 4);
static inline void tp_whyf(char* why, size_t size, const char* format, ...) {
  va_list args;
  va_start(args, format);
  vsnprintf(why, size, format, args);
  va_end(args);
}

/* errno as a short lower-case phrase for log lines: "connection refused". Our own table,
 * because strerror() is not thread-safe and strerror_r() has two incompatible variants. */
static inline const char* tp_errno_text(int err) {
  switch (err) {
    case ECONNREFUSED:
      return "connection refused";
    case ETIMEDOUT:
      return "connection timed out";
    case EHOSTUNREACH:
      return "no route to host";
    case ENETUNREACH:
      return "network is unreachable";
    case ECONNRESET:
      return "connection reset by peer";
    case ECONNABORTED:
      return "connection aborted";
    case EPIPE:
      return "connection closed by peer";
    case EADDRNOTAVAIL:
      return "address not available";
    case EAFNOSUPPORT:
      return "address family not supported";
    case EACCES:
      return "permission denied";
    case EPERM:
      return "operation not permitted";
    case ENOENT:
      return "no such file or directory";
    case ENOTDIR:
      return "a component of the path is not a directory";
    case ENAMETOOLONG:
      return "file name too long";
    case ELOOP:
      return "too many symbolic links";
    case EMFILE:
    case ENFILE:
      return "too many open files";
    case ENOMEM:
    case ENOBUFS:
      return "out of memory";
    default:
      return "system error";
  }
}

/* Writes "ERR-TEXT" or, for errors outside the table, "system error N". */
static inline void tp_why_errno(char* why, size_t size, int err) {
  const char* text = tp_errno_text(err);
  if (strcmp(text, "system error") == 0)
    tp_whyf(why, size, "system error %d", err);
  else
    tp_whyf(why, size, "%s", text);
}

/* ---- time -------------------------------------------------------------------------- */

/* Seconds on the monotonic clock: deadlines must not move with the wall clock. */
static inline double tp_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Milliseconds for the next wait: what is left until DEADLINE, at most one slice. */
static inline int tp_slice_ms(double deadline) {
  double left_ms = (deadline - tp_now()) * 1000.0;
  if (left_ms <= 0) return 0;
  if (left_ms >= TP_SLICE_MS) return TP_SLICE_MS;
  return (int)left_ms + 1; /* round up: a 0 ms poll before the deadline would spin */
}

static inline void tp_nap_ms(int ms) {
  struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

/* Sleeps until DEADLINE. Returns non-zero, early, when the call is cancelled. */
static inline int tp_pause_until(const trapeze_hook_call* call, double deadline) {
  while (!call->cancelled(call)) {
    int ms = tp_slice_ms(deadline);
    if (ms <= 0) return 0;
    tp_nap_ms(ms);
  }
  return 1;
}

/* ---- options ----------------------------------------------------------------------- */

/* TEXT[0..LEN) as a TCP port, or -1 unless it is 1 to 65535 in decimal digits. */
static inline int tp_parse_port(const char* text, size_t len) {
  long port = 0;
  if (len == 0 || len > 5) return -1;
  for (size_t i = 0; i < len; ++i) {
    if (text[i] < '0' || text[i] > '9') return -1;
    port = port * 10 + (text[i] - '0');
  }
  return port >= 1 && port <= 65535 ? (int)port : -1;
}

/* Option "port" into *PORT; FALLBACK when absent, where 0 means the option is required.
 * On a bad or missing value, sets the call's error and returns -1. */
static inline int tp_port_option(const trapeze_hook_call* call, int fallback, int* port) {
  const char* text = call->hook_option(call, "port");
  if (text == NULL) {
    if (fallback == 0) {
      call->set_error(call, "option port is required");
      return -1;
    }
    *port = fallback;
    return 0;
  }
  *port = tp_parse_port(text, strlen(text));
  if (*port < 0) {
    tp_errorf(call, "option port must be a number from 1 to 65535, not '%s'", text);
    return -1;
  }
  return 0;
}

/* Option "host" (FALLBACK when absent). NULL, with the call's error set, when unusable. */
static inline const char* tp_host_option(const trapeze_hook_call* call, const char* fallback) {
  const char* host = call->hook_option(call, "host");
  if (host == NULL) return fallback;
  if (host[0] == '\0') {
    call->set_error(call, "option host must not be empty");
    return NULL;
  }
  if (strlen(host) > 253) {
    tp_errorf(call, "option host is too long (%zu characters)", strlen(host));
    return NULL;
  }
  return host;
}

/* The seconds in a unit suffix ("", "s", "ms", "m", "h"), or 0 for anything else. */
static inline double tp_unit_seconds(const char* unit) {
  if (unit[0] == '\0' || strcmp(unit, "s") == 0) return 1;
  if (strcmp(unit, "ms") == 0) return 0.001;
  if (strcmp(unit, "m") == 0) return 60;
  if (strcmp(unit, "h") == 0) return 3600;
  return 0;
}

/* Option NAME as a positive duration in seconds into *SECONDS (FALLBACK when absent): a
 * plain number of seconds ("2", "0.5", as TOML numbers arrive) or one with a unit as the
 * config writes durations ("250ms", "5s", "2m"). On a bad value, sets the call's error and
 * returns -1. */
static inline int tp_seconds_option(const trapeze_hook_call* call, const char* name, double fallback,
                                    double* seconds) {
  const char* text = call->hook_option(call, name);
  char* end = NULL;
  double value;
  if (text == NULL) {
    *seconds = fallback;
    return 0;
  }
  errno = 0;
  value = strtod(text, &end);
  if (end != text && errno == 0) value *= tp_unit_seconds(end);
  /* !(value > 0) refuses NaN, a bad unit and no number at all; the upper bound refuses
   * "inf" and keeps sums of seconds finite. */
  if (end == text || errno != 0 || !(value > 0) || value > 1e9) {
    tp_errorf(call,
              "option %s must be a positive number of seconds or a duration like 250ms, 5s or 2m, not '%s'",
              name, text);
    return -1;
  }
  *seconds = value;
  return 0;
}

/* "HOST:PORT", or "[HOST]:PORT" for an IPv6 address, for messages. */
static inline void tp_format_endpoint(char* out, size_t size, const char* host, int port) {
  if (strchr(host, ':') != NULL)
    snprintf(out, size, "[%s]:%d", host, port);
  else
    snprintf(out, size, "%s:%d", host, port);
}

/* ---- name resolution ----------------------------------------------------------------- */

/* getaddrinfo() cannot be interrupted and may wait seconds on a dead DNS server, so a host
 * name is resolved on a thread of its own while the caller polls for the answer and its
 * cancellation. The job is shared by the two and freed by whichever lets go last; a
 * cancelled caller leaves the thread to finish and free alone. (Plugins are never unloaded,
 * so the thread's code stays mapped.) */
struct tp_resolve_job {
  pthread_mutex_t mutex;
  int refs; /* under mutex: the caller and the thread */
  int done; /* under mutex */
  int rc;   /* getaddrinfo's result, once done */
  struct addrinfo* list;
  char host[256];
  char port[8];
};

static inline void tp_resolve_release(struct tp_resolve_job* job) {
  int last;
  pthread_mutex_lock(&job->mutex);
  last = --job->refs == 0;
  pthread_mutex_unlock(&job->mutex);
  if (!last) return;
  if (job->list != NULL) freeaddrinfo(job->list);
  pthread_mutex_destroy(&job->mutex);
  free(job);
}

static inline struct addrinfo tp_stream_hints(int flags) {
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC; /* IPv4 and IPv6 alike */
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = flags | AI_NUMERICSERV;
  return hints;
}

static inline void* tp_resolve_thread(void* arg) {
  struct tp_resolve_job* job = (struct tp_resolve_job*)arg;
  struct addrinfo hints = tp_stream_hints(0);
  struct addrinfo* list = NULL;
  int rc = getaddrinfo(job->host, job->port, &hints, &list);
  pthread_mutex_lock(&job->mutex);
  job->rc = rc;
  job->list = list;
  job->done = 1;
  pthread_mutex_unlock(&job->mutex);
  tp_resolve_release(job);
  return NULL;
}

/* Starts the resolver thread, detached. Returns -1 when no thread could be started. */
static inline int tp_resolve_start(struct tp_resolve_job* job) {
  pthread_attr_t attr;
  pthread_t thread;
  int rc;
  if (pthread_attr_init(&attr) != 0) return -1;
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  rc = pthread_create(&thread, &attr, tp_resolve_thread, job);
  pthread_attr_destroy(&attr);
  return rc == 0 ? 0 : -1;
}

/* Addresses of HOST:PORT into *LIST (free with freeaddrinfo), or -1 with WHY. */
static inline int tp_resolve(const trapeze_hook_call* call, const char* host, int port, double deadline,
                             struct addrinfo** list, char* why, size_t why_size) {
  struct addrinfo hints = tp_stream_hints(AI_NUMERICHOST);
  struct tp_resolve_job* job;
  char service[8];
  int rc;

  /* An address literal needs no DNS: resolve it here, at once. */
  snprintf(service, sizeof service, "%d", port);
  rc = getaddrinfo(host, service, &hints, list);
  if (rc == 0) return 0;
  if (rc != EAI_NONAME) {
    tp_whyf(why, why_size, "cannot resolve %s: %s", host, gai_strerror(rc));
    return -1;
  }

  if (strlen(host) >= sizeof job->host) {
    tp_whyf(why, why_size, "cannot resolve %s: name too long", host);
    return -1;
  }
  job = (struct tp_resolve_job*)calloc(1, sizeof *job);
  if (job == NULL) {
    tp_whyf(why, why_size, "cannot resolve %s: out of memory", host);
    return -1;
  }
  pthread_mutex_init(&job->mutex, NULL);
  memcpy(job->host, host, strlen(host) + 1);
  memcpy(job->port, service, sizeof service);
  job->refs = 2;
  /* No thread to be had: resolve here, uninterruptibly, rather than not at all. */
  if (tp_resolve_start(job) != 0) tp_resolve_thread(job);

  for (;;) {
    int done;
    pthread_mutex_lock(&job->mutex);
    done = job->done;
    if (done) {
      rc = job->rc;
      *list = job->list;
      job->list = NULL; /* ours now */
    }
    pthread_mutex_unlock(&job->mutex);
    if (done) break;
    if (call->cancelled(call) || tp_now() >= deadline) {
      tp_resolve_release(job);
      tp_whyf(why, why_size, "cannot resolve %s: %s", host,
              call->cancelled(call) ? "cancelled" : "timed out");
      return -1;
    }
    tp_nap_ms(5);
  }
  tp_resolve_release(job);
  if (rc != 0) {
    tp_whyf(why, why_size, "cannot resolve %s: %s", host, gai_strerror(rc));
    return -1;
  }
  return 0;
}

/* ---- sockets ----------------------------------------------------------------------- */

/* Waits until FD has one of EVENTS, DEADLINE passes, or the call is cancelled. */
static inline int tp_wait_fd(const trapeze_hook_call* call, int fd, short events, double deadline) {
  for (;;) {
    struct pollfd p = {fd, events, 0};
    int ms, rc;
    if (call->cancelled(call)) return TP_CANCELLED;
    ms = tp_slice_ms(deadline);
    rc = poll(&p, 1, ms);
    if (rc > 0) return TP_READY; /* errors and hang-ups too: the next call on FD says which */
    if (rc < 0 && errno != EINTR) return TP_FAILED;
    if (ms == 0) return TP_TIMEOUT;
  }
}

/* tp_wait_fd, with the reason in WHY when FD is not ready: TIMED_OUT when the deadline passed,
 * "cancelled", or the error. Returns 0 when ready, -1 otherwise. */
static inline int tp_wait_or_why(const trapeze_hook_call* call, int fd, short events, double deadline,
                                 const char* timed_out, char* why, size_t why_size) {
  switch (tp_wait_fd(call, fd, events, deadline)) {
    case TP_READY:
      return 0;
    case TP_TIMEOUT:
      tp_whyf(why, why_size, "%s", timed_out);
      return -1;
    case TP_CANCELLED:
      tp_whyf(why, why_size, "cancelled");
      return -1;
    default:
      tp_why_errno(why, why_size, errno);
      return -1;
  }
}

/* Connects one address before DEADLINE. Returns the non-blocking socket, or -1 with WHY. */
static inline int tp_connect_one(const trapeze_hook_call* call, const struct addrinfo* ai, double deadline,
                                 char* why, size_t why_size) {
  int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
  int err = 0;
  socklen_t len = sizeof err;
  if (fd < 0) {
    tp_why_errno(why, why_size, errno);
    return -1;
  }
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) return fd;
  /* EINTR: the connect goes on in the background, exactly as for EINPROGRESS. */
  if (errno != EINPROGRESS && errno != EINTR) {
    tp_why_errno(why, why_size, errno);
    close(fd);
    return -1;
  }
  if (tp_wait_or_why(call, fd, POLLOUT, deadline, "timed out connecting", why, why_size) == 0) {
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == 0) return fd;
    tp_why_errno(why, why_size, err);
  }
  close(fd);
  return -1;
}

/* Connects to HOST:PORT before DEADLINE, trying each of its addresses in turn. Returns the
 * (non-blocking) socket, or -1 with WHY from the last address tried. */
static inline int tp_connect(const trapeze_hook_call* call, const char* host, int port, double deadline,
                             char* why, size_t why_size) {
  struct addrinfo* list = NULL;
  const struct addrinfo* ai;
  int fd = -1;
  if (tp_resolve(call, host, port, deadline, &list, why, why_size) != 0) return -1;
  for (ai = list; ai != NULL && fd < 0; ai = ai->ai_next) {
    if (call->cancelled(call)) {
      tp_whyf(why, why_size, "cancelled");
      break;
    }
    fd = tp_connect_one(call, ai, deadline, why, why_size);
  }
  freeaddrinfo(list);
  return fd;
}

/* Sends all of DATA before DEADLINE. Returns 0, or -1 with WHY. */
static inline int tp_send_all(const trapeze_hook_call* call, int fd, const char* data, size_t size,
                              double deadline, char* why, size_t why_size) {
  while (size > 0) {
    ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    if (n > 0) {
      data += n;
      size -= (size_t)n;
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      tp_why_errno(why, why_size, errno);
      return -1;
    }
    if (tp_wait_or_why(call, fd, POLLOUT, deadline, "timed out sending", why, why_size) != 0) return -1;
  }
  return 0;
}

/* Reads what has come, up to SIZE bytes, waiting until DEADLINE for something. Returns the
 * count, 0 at end of stream, or -1 with WHY ("timed out" when the deadline passed). */
static inline ssize_t tp_recv_some(const trapeze_hook_call* call, int fd, char* buffer, size_t size,
                                   double deadline, char* why, size_t why_size) {
  for (;;) {
    ssize_t n = recv(fd, buffer, size, 0);
    if (n >= 0) return n;
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      tp_why_errno(why, why_size, errno);
      return -1;
    }
    if (tp_wait_or_why(call, fd, POLLIN, deadline, "timed out", why, why_size) != 0) return -1;
  }
}

/* Copies TEXT[0..LEN) into OUT for a log line: at most MAX characters, anything not
 * printable ASCII as '?', so a hostile reply cannot forge log lines. */
static inline void tp_printable(char* out, size_t out_size, const char* text, size_t len, size_t max) {
  size_t i, n = len < max ? len : max;
  if (out_size == 0) return;
  if (n > out_size - 1) n = out_size - 1;
  for (i = 0; i < n; ++i) out[i] = text[i] >= 0x20 && text[i] < 0x7f ? text[i] : '?';
  out[n] = '\0';
}

#endif /* TRAPEZE_PLUGINS_SUPPORT_H */
