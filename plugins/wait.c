/* The wait_* hooks: hold a watcher's start until something it needs is there.
 *
 *   wait_tcp   options host (127.0.0.1), port (required): a TCP connect succeeds
 *   wait_http  option url (http://host[:port][/path]), expect: a GET answers 2xx (and its
 *              body contains `expect`)
 *   wait_file  option path: the path exists (a relative path is taken from the watcher's
 *              working_dir when it has one)
 *
 * Each tries at once, then again every `interval` seconds (default 0.2) until it succeeds
 * (CONTINUE), `timeout` seconds pass (VETO, with a warning saying what failed last), or the
 * call is cancelled (VETO). Without `timeout` it waits until cancelled: the hook's own
 * timeout in the arbiter's config bounds it. ERROR for a missing or unusable option. */
#define _POSIX_C_SOURCE 200809L

#include <strings.h>
#include <sys/stat.h>

#include "support.h"

/* ---- the retry loop ------------------------------------------------------------------ */

/* One try. Returns 1 when what we wait for is there, else 0 with WHY. It must give up by
 * DEADLINE and when the call is cancelled. */
typedef int (*wait_attempt)(const trapeze_hook_call* call, const void* target, double deadline, char* why,
                            size_t why_size);

struct wait_options {
  double interval;
  double timeout; /* 0: none */
};

/* Reads interval and timeout. Returns -1, with the call's error set, on a bad value. */
static int read_wait_options(const trapeze_hook_call* call, struct wait_options* options) {
  if (tp_seconds_option(call, "interval", 0.2, &options->interval) != 0) return -1;
  return tp_seconds_option(call, "timeout", 0, &options->timeout);
}

/* Tries ATTEMPT until it succeeds, the timeout passes, or the call is cancelled. Each try
 * gets at most ATTEMPT_LIMIT seconds. No try starts once the timeout has passed, and one
 * under way then is cut short; its "timed out" says only that, so the warning gives the
 * reason of the try before it. WHAT names the target in log lines. */
static trapeze_hook_result wait_until_ready(const trapeze_hook_call* call, const char* what,
                                            wait_attempt attempt, const void* target, double attempt_limit,
                                            const struct wait_options* options) {
  double start = tp_now();
  double give_up = options->timeout > 0 ? start + options->timeout : 0;
  char why[512] = "", reason[512] = "", logged[512] = "";
  for (;;) {
    double attempt_deadline = tp_now() + attempt_limit;
    int out_of_time;
    if (give_up > 0 && attempt_deadline > give_up) attempt_deadline = give_up;
    if (attempt(call, target, attempt_deadline, why, sizeof why)) {
      if (logged[0] != '\0')
        tp_logf(call, TRAPEZE_LOG_INFO, "%s is ready after %.1fs", what, tp_now() - start);
      else
        tp_logf(call, TRAPEZE_LOG_DEBUG, "%s is ready", what);
      return TRAPEZE_HOOK_CONTINUE;
    }
    if (call->cancelled(call)) break;
    out_of_time = give_up > 0 && tp_now() >= give_up;
    if (!out_of_time || reason[0] == '\0') memcpy(reason, why, sizeof why);
    /* Say why we wait once per distinct reason, not once per try. */
    if (strcmp(reason, logged) != 0) {
      tp_logf(call, TRAPEZE_LOG_INFO, "waiting for %s (%s)", what, reason);
      memcpy(logged, reason, sizeof reason);
    }
    if (!out_of_time) {
      double next = tp_now() + options->interval;
      if (give_up > 0 && next > give_up) next = give_up;
      if (tp_pause_until(call, next)) break;
      out_of_time = give_up > 0 && tp_now() >= give_up;
    }
    if (out_of_time) {
      tp_logf(call, TRAPEZE_LOG_WARNING, "gave up waiting for %s after %gs (%s)", what, options->timeout,
              reason);
      return TRAPEZE_HOOK_VETO;
    }
  }
  tp_logf(call, TRAPEZE_LOG_DEBUG, "cancelled while waiting for %s (%s)", what,
          reason[0] ? reason : "no try yet");
  return TRAPEZE_HOOK_VETO;
}

/* ---- wait_tcp ----------------------------------------------------------------------- */

/* A try at a host that drops packets would otherwise last as long as the kernel's SYN
 * retries (minutes); a fresh try after 2 s also picks up a changed DNS answer. */
#define TCP_ATTEMPT_SECONDS 2.0

struct tcp_target {
  const char* host;
  int port;
};

static int try_tcp(const trapeze_hook_call* call, const void* target, double deadline, char* why,
                   size_t why_size) {
  const struct tcp_target* tcp = (const struct tcp_target*)target;
  int fd = tp_connect(call, tcp->host, tcp->port, deadline, why, why_size);
  if (fd < 0) return 0;
  close(fd);
  return 1;
}

TRAPEZE_EXPORT trapeze_hook_result wait_tcp(const trapeze_hook_call* call) {
  struct tcp_target target = {NULL, 0};
  struct wait_options options;
  char endpoint[300];
  target.host = tp_host_option(call, "127.0.0.1");
  if (target.host == NULL || tp_port_option(call, 0, &target.port) != 0 ||
      read_wait_options(call, &options) != 0)
    return TRAPEZE_HOOK_ERROR;
  tp_format_endpoint(endpoint, sizeof endpoint, target.host, target.port);
  return wait_until_ready(call, endpoint, try_tcp, &target, TCP_ATTEMPT_SECONDS, &options);
}

/* ---- wait_http ---------------------------------------------------------------------- */

#define HTTP_ATTEMPT_SECONDS 5.0
#define HTTP_MAX_HEADER (16 * 1024)
#define HTTP_MAX_BODY (64 * 1024) /* `expect` is looked for in this much of the body */

struct http_target {
  const char* url;
  const char* expect;  /* NULL or "": any 2xx will do */
  char host[256];      /* for getaddrinfo: no brackets */
  char authority[300]; /* for the Host header: host[:port] as the URL has it */
  char path[2048];     /* path and query; "/" when the URL has none */
  int port;
};

/* Splits URL into TARGET. Returns 0, or -1 with the call's error set. */
static int parse_http_url(const trapeze_hook_call* call, const char* url, struct http_target* target) {
  const char *authority, *end, *host, *host_end, *port = NULL;
  size_t i;
  target->url = url;
  if (strncasecmp(url, "https://", 8) == 0) {
    tp_errorf(call, "option url '%s': https is not supported, only http://", url);
    return -1;
  }
  if (strncasecmp(url, "http://", 7) != 0) {
    tp_errorf(call, "option url must start with http://, not '%s'", url);
    return -1;
  }
  /* Nothing in a URL may break the request line or add a header. */
  for (i = 0; url[i] != '\0'; ++i) {
    if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f) {
      tp_errorf(call, "option url '%s' contains a space or a control character", url);
      return -1;
    }
  }
  authority = url + 7;
  end = authority + strcspn(authority, "/?#");
  if (memchr(authority, '@', (size_t)(end - authority)) != NULL) {
    tp_errorf(call, "option url '%s': user info (user@host) is not supported", url);
    return -1;
  }
  if (*authority == '[') { /* an IPv6 address: http://[::1]:8080/ */
    host = authority + 1;
    host_end = memchr(host, ']', (size_t)(end - host));
    if (host_end == NULL) {
      tp_errorf(call, "option url '%s' has a '[' without its ']'", url);
      return -1;
    }
    if (host_end + 1 < end && host_end[1] != ':') {
      tp_errorf(call, "option url '%s' is malformed after ']'", url);
      return -1;
    }
    if (host_end + 1 < end) port = host_end + 2;
  } else {
    host = authority;
    host_end = memchr(host, ':', (size_t)(end - host));
    if (host_end != NULL)
      port = host_end + 1;
    else
      host_end = end;
  }
  if (host_end == host) {
    tp_errorf(call, "option url '%s' has no host", url);
    return -1;
  }
  if ((size_t)(host_end - host) >= sizeof target->host ||
      (size_t)(end - authority) >= sizeof target->authority) {
    tp_errorf(call, "option url '%s' has too long a host", url);
    return -1;
  }
  target->port = port ? tp_parse_port(port, (size_t)(end - port)) : 80;
  if (target->port < 0) {
    tp_errorf(call, "option url '%s' has a bad port (not 1 to 65535)", url);
    return -1;
  }
  memcpy(target->host, host, (size_t)(host_end - host));
  target->host[host_end - host] = '\0';
  memcpy(target->authority, authority, (size_t)(end - authority));
  target->authority[end - authority] = '\0';

  /* The path and query; a fragment stays with the client. */
  i = strcspn(end, "#");
  if (i + 2 > sizeof target->path) {
    tp_errorf(call, "option url '%s' has too long a path", url);
    return -1;
  }
  if (*end == '/') {
    memcpy(target->path, end, i);
    target->path[i] = '\0';
  } else { /* "http://h?q" or "http://h" */
    target->path[0] = '/';
    memcpy(target->path + 1, end, i);
    target->path[i + 1] = '\0';
  }
  return 0;
}

/* Where NEEDLE first occurs in HAY[0..HAY_LEN), or NULL; the body may hold NUL bytes. */
static const char* find_bytes(const char* hay, size_t hay_len, const char* needle, size_t needle_len) {
  size_t i;
  if (needle_len == 0) return hay;
  for (i = 0; i + needle_len <= hay_len; ++i)
    if (hay[i] == needle[0] && memcmp(hay + i, needle, needle_len) == 0) return hay + i;
  return NULL;
}

/* The status code of a status line "HTTP/1.x NNN ...", or -1. */
static int http_status(const char* head, size_t len) {
  const char* space;
  if (len < 5 || memcmp(head, "HTTP/", 5) != 0) return -1;
  space = memchr(head, ' ', len);
  if (space == NULL || (size_t)(space - head) + 4 > len) return -1;
  if (space[1] < '1' || space[1] > '5' || space[2] < '0' || space[2] > '9' || space[3] < '0' ||
      space[3] > '9')
    return -1;
  if ((size_t)(space - head) + 4 < len && space[4] != ' ' && space[4] != '\r' && space[4] != '\n') return -1;
  return (space[1] - '0') * 100 + (space[2] - '0') * 10 + (space[3] - '0');
}

/* The Content-Length header among HEAD[0..LEN), or -1 when there is none (or it is bad). */
static long http_content_length(const char* head, size_t len) {
  static const char name[] = "content-length:";
  const char* line = memchr(head, '\n', len); /* skip the status line */
  while (line != NULL && (size_t)(line + 1 - head) < len) {
    const char* p = line + 1;
    size_t left = len - (size_t)(p - head);
    if (left > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0) {
      long value = -1;
      p += sizeof name - 1;
      while (p < head + len && (*p == ' ' || *p == '\t')) ++p;
      for (; p < head + len && *p >= '0' && *p <= '9'; ++p) {
        if (value < 0) value = 0;
        if (value > HTTP_MAX_BODY) continue; /* big enough: we never read past HTTP_MAX_BODY */
        value = value * 10 + (*p - '0');
      }
      return value;
    }
    line = memchr(p, '\n', left);
  }
  return -1;
}

/* Where the head ends (just past its blank line) in BUF[0..LEN), or 0 while incomplete. */
static size_t http_head_end(const char* buf, size_t len) {
  const char* crlf = find_bytes(buf, len, "\r\n\r\n", 4);
  const char* lf = find_bytes(buf, len, "\n\n", 2); /* lenient: bare LF servers exist */
  if (crlf != NULL && (lf == NULL || crlf < lf)) return (size_t)(crlf - buf) + 4;
  if (lf != NULL) return (size_t)(lf - buf) + 2;
  return 0;
}

/* Reads the response to our request on FD and judges it. Returns 1 or 0 with WHY. */
static int read_http_response(const trapeze_hook_call* call, int fd, const struct http_target* http,
                              double deadline, char* buffer, char* why, size_t why_size) {
  const size_t expect_len = http->expect ? strlen(http->expect) : 0;
  size_t len = 0, head_end = 0;
  long content_length = -1;
  for (;;) {
    /* Room: the whole head, then HTTP_MAX_BODY of body past wherever the head ended. */
    size_t cap = head_end ? head_end + HTTP_MAX_BODY : HTTP_MAX_HEADER;
    ssize_t n;
    if (head_end) {
      size_t body = len - head_end;
      if (find_bytes(buffer + head_end, body, http->expect, expect_len) != NULL) return 1;
      if (body >= HTTP_MAX_BODY || (content_length >= 0 && body >= (size_t)content_length)) break;
    } else if (len == cap) {
      tp_whyf(why, why_size, "the response head is longer than %d bytes", HTTP_MAX_HEADER);
      return 0;
    }
    n = tp_recv_some(call, fd, buffer + len, cap - len, deadline, why, why_size);
    if (n < 0) {
      if (strcmp(why, "timed out") == 0)
        tp_whyf(why, why_size, "timed out waiting for %s", head_end ? "the rest of the body" : "a response");
      return 0;
    }
    if (n == 0) break;
    len += (size_t)n;
    if (!head_end && (head_end = http_head_end(buffer, len)) != 0) {
      int status = http_status(buffer, head_end);
      if (status < 0) {
        char shown[64];
        size_t line = 0;
        while (line < head_end && buffer[line] != '\r' && buffer[line] != '\n') ++line;
        tp_printable(shown, sizeof shown, buffer, line, 40);
        tp_whyf(why, why_size, "not an HTTP response: '%s'", shown);
        return 0;
      }
      if (status < 200 || status > 299) {
        tp_whyf(why, why_size, "status %d", status);
        return 0;
      }
      if (expect_len == 0) return 1;
      content_length = http_content_length(buffer, head_end);
    }
  }
  if (!head_end) {
    tp_whyf(why, why_size,
            len ? "the connection closed mid-response" : "the connection closed without a response");
    return 0;
  }
  tp_whyf(why, why_size, "the body lacks '%.100s'", http->expect);
  return 0;
}

static int try_http(const trapeze_hook_call* call, const void* target, double deadline, char* why,
                    size_t why_size) {
  const struct http_target* http = (const struct http_target*)target;
  char request[2560];
  char* buffer;
  int fd, ok = 0;
  snprintf(request, sizeof request,
           "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: trapeze-wait_http\r\nAccept: */*\r\nConnection: "
           "close\r\n\r\n",
           http->path, http->authority);
  buffer = (char*)malloc(HTTP_MAX_HEADER + HTTP_MAX_BODY);
  if (buffer == NULL) {
    tp_whyf(why, why_size, "out of memory");
    return 0;
  }
  fd = tp_connect(call, http->host, http->port, deadline, why, why_size);
  if (fd >= 0) {
    if (tp_send_all(call, fd, request, strlen(request), deadline, why, why_size) == 0)
      ok = read_http_response(call, fd, http, deadline, buffer, why, why_size);
    close(fd);
  }
  free(buffer);
  return ok;
}

TRAPEZE_EXPORT trapeze_hook_result wait_http(const trapeze_hook_call* call) {
  struct http_target target;
  struct wait_options options;
  const char* url = call->hook_option(call, "url");
  if (url == NULL) {
    call->set_error(call, "option url is required");
    return TRAPEZE_HOOK_ERROR;
  }
  if (parse_http_url(call, url, &target) != 0 || read_wait_options(call, &options) != 0)
    return TRAPEZE_HOOK_ERROR;
  target.expect = call->hook_option(call, "expect");
  return wait_until_ready(call, url, try_http, &target, HTTP_ATTEMPT_SECONDS, &options);
}

/* ---- wait_file ---------------------------------------------------------------------- */

static int try_file(const trapeze_hook_call* call, const void* target, double deadline, char* why,
                    size_t why_size) {
  struct stat st;
  (void)call;
  (void)deadline;
  if (stat((const char*)target, &st) == 0) return 1;
  tp_why_errno(why, why_size, errno);
  return 0;
}

TRAPEZE_EXPORT trapeze_hook_result wait_file(const trapeze_hook_call* call) {
  const char* path = call->hook_option(call, "path");
  const char* dir = call->watcher_option(call, "working_dir");
  struct wait_options options;
  char full[4096];
  int n;
  if (path == NULL || path[0] == '\0') {
    call->set_error(call, "option path is required");
    return TRAPEZE_HOOK_ERROR;
  }
  if (read_wait_options(call, &options) != 0) return TRAPEZE_HOOK_ERROR;
  /* A relative path means what it would mean to the watcher's processes. */
  if (path[0] != '/' && dir != NULL && dir[0] != '\0')
    n = snprintf(full, sizeof full, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", path);
  else
    n = snprintf(full, sizeof full, "%s", path);
  if (n < 0 || (size_t)n >= sizeof full) {
    tp_errorf(call, "option path is too long (%d characters)", n);
    return TRAPEZE_HOOK_ERROR;
  }
  /* A stat() is instant; no per-try limit is needed. */
  return wait_until_ready(call, full, try_file, full, 1.0, &options);
}
