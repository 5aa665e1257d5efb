/* check_redis: the hook of circus's documentation example. Before a watcher starts, make
 * sure redis answers: connect to host:port, send PING, expect +PONG.
 *
 *   [hooks.before_start]
 *   check = "stock.check_redis"            # or mycoolapp.myplugins.check_redis
 *   options = { host = "127.0.0.1", port = 6379, timeout = 2 }
 *
 * CONTINUE when redis replies +PONG; VETO otherwise (refused, silent, another reply), with a
 * warning in the log that says why: "redis at 127.0.0.1:6379: connection refused".
 * ERROR for an unusable option.
 *
 * This file is a whole plugin on its own (with support.h beside it): examples/redis-queue
 * builds it alone into mycoolapp/myplugins.so. Inside stock.so, which holds other hooks
 * too, stock.c declares the plugin instead and the build defines TRAPEZE_STOCK_PLUGIN. */
#define _POSIX_C_SOURCE 200809L

#include "support.h"

#ifndef TRAPEZE_STOCK_PLUGIN
TRAPEZE_PLUGIN();
#endif

/* An inline command (no RESP array needed): every redis version understands it. */
static const char redis_ping_command[] = "PING\r\n";

/* Reads the first line of the reply, without its CR LF, into LINE. Returns 0, or -1 with
 * WHY. TIMEOUT is for the message only. */
static int redis_read_line(const trapeze_hook_call* call, int fd, double deadline, double timeout, char* line,
                           size_t line_size, char* why, size_t why_size) {
  size_t len = 0;
  for (;;) {
    char* end;
    ssize_t n = tp_recv_some(call, fd, line + len, line_size - 1 - len, deadline, why, why_size);
    if (n < 0) {
      if (strcmp(why, "timed out") == 0) tp_whyf(why, why_size, "no reply within %gs", timeout);
      return -1;
    }
    if (n == 0) {
      tp_whyf(why, why_size, "closed the connection without replying");
      return -1;
    }
    len += (size_t)n;
    line[len] = '\0';
    end = strstr(line, "\r\n");
    if (end != NULL) {
      *end = '\0';
      return 0;
    }
    /* Redis's replies to PING are short; anything longer than the buffer is something else. */
    if (len == line_size - 1 || memchr(line, '\0', len) != NULL) {
      char shown[64];
      tp_printable(shown, sizeof shown, line, len, 40);
      tp_whyf(why, why_size, "replied '%s...', which is not redis", shown);
      return -1;
    }
  }
}

/* Sends PING and checks the reply. Returns 1 for +PONG, else 0 with WHY. */
static int redis_ping(const trapeze_hook_call* call, const char* host, int port, double timeout, char* why,
                      size_t why_size) {
  double deadline = tp_now() + timeout;
  char line[256];
  int ok = 0;
  int fd = tp_connect(call, host, port, deadline, why, why_size);
  if (fd < 0) return 0;
  if (tp_send_all(call, fd, redis_ping_command, strlen(redis_ping_command), deadline, why, why_size) == 0 &&
      redis_read_line(call, fd, deadline, timeout, line, sizeof line, why, why_size) == 0) {
    ok = strcmp(line, "+PONG") == 0;
    if (!ok) {
      char shown[128];
      tp_printable(shown, sizeof shown, line, strlen(line), 100);
      /* An error reply ("-NOAUTH Authentication required.") says it best itself. */
      tp_whyf(why, why_size, "replied '%s' to PING", shown);
    }
  }
  close(fd);
  return ok;
}

TRAPEZE_EXPORT trapeze_hook_result check_redis(const trapeze_hook_call* call) {
  const char* host = tp_host_option(call, "127.0.0.1");
  char endpoint[300], why[512] = "";
  double timeout = 0;
  int port = 0;
  if (host == NULL || tp_port_option(call, 6379, &port) != 0 ||
      tp_seconds_option(call, "timeout", 2.0, &timeout) != 0)
    return TRAPEZE_HOOK_ERROR;
  tp_format_endpoint(endpoint, sizeof endpoint, host, port);

  if (redis_ping(call, host, port, timeout, why, sizeof why)) {
    tp_logf(call, TRAPEZE_LOG_DEBUG, "redis at %s answered PONG", endpoint);
    return TRAPEZE_HOOK_CONTINUE;
  }
  /* Once cancelled, nobody reads the result: no warning for a failure we caused. */
  if (!call->cancelled(call)) tp_logf(call, TRAPEZE_LOG_WARNING, "redis at %s: %s", endpoint, why);
  return TRAPEZE_HOOK_VETO;
}
