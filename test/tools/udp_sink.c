/*===- test/tools/udp_sink.c - count UDP datagrams ------------------------===
 *
 * The receiving end of the demo and the end-to-end tests: binds ADDR:PORT and
 * counts datagrams until COUNT arrived (--count), nothing arrived for
 * --quiet-ms, the overall --timeout-ms passed, or SIGTERM/SIGINT. Then it
 * prints "received N" (and "socket overflow drops D" if the socket dropped
 * any, which would make the count meaningless). --ready FILE writes "ready"
 * to FILE (a FIFO) once the socket is bound, so the caller can start sending
 * without sleeping; --first FILE writes "first" to FILE when the first
 * datagram arrived, so the caller can wait for traffic to get through.
 *
 *   udp_sink [--count N] [--quiet-ms MS] [--timeout-ms MS] [--ready FILE]
 *            [--first FILE] ADDR PORT
 * Exit: 0 if it stopped because of --count or a signal (or quiet with no
 * --count), 1 on errors or if --count was not reached.
 *===----------------------------------------------------------------------===*/
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stopRequested;

static void onSignal(int sig) {
  (void)sig;
  stopRequested = 1;
}

static void usage(void) {
  fprintf(stderr, "usage: udp_sink [--count N] [--quiet-ms MS] "
                  "[--timeout-ms MS] [--ready FILE] [--first FILE] "
                  "ADDR PORT\n");
  exit(2);
}

static long number(const char *s, long min, long max) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || end == s || v < min || v > max) {
    fprintf(stderr, "udp_sink: bad number '%s'\n", s);
    exit(2);
  }
  return v;
}

/* Writes LINE to the FIFO at PATH (opened now: the reader holds it open). */
static int signalFifo(const char *path, const char *line) {
  int rf = open(path, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
  size_t n = strlen(line);
  int ok = rf >= 0 && write(rf, line, n) == (ssize_t)n;
  if (!ok)
    fprintf(stderr, "udp_sink: cannot signal %s: %s\n", path, strerror(errno));
  if (rf >= 0)
    close(rf);
  return ok;
}

static int64_t nowMs(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int main(int argc, char **argv) {
  long want = 0, quietMs = 0, timeoutMs = 60000;
  const char *ready = NULL, *first = NULL;
  int i = 1;
  for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i += 2) {
    if (i + 1 >= argc)
      usage();
    if (!strcmp(argv[i], "--count"))
      want = number(argv[i + 1], 0, 1000000000);
    else if (!strcmp(argv[i], "--quiet-ms"))
      quietMs = number(argv[i + 1], 1, 3600000);
    else if (!strcmp(argv[i], "--timeout-ms"))
      timeoutMs = number(argv[i + 1], 1, 3600000);
    else if (!strcmp(argv[i], "--ready"))
      ready = argv[i + 1];
    else if (!strcmp(argv[i], "--first"))
      first = argv[i + 1];
    else
      usage();
  }
  if (argc - i != 2)
    usage();

  /* No SA_RESTART: a signal must interrupt poll() so we stop at once. */
  struct sigaction sa = {.sa_handler = onSignal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  struct sockaddr_in a = {.sin_family = AF_INET};
  if (inet_pton(AF_INET, argv[i], &a.sin_addr) != 1) {
    fprintf(stderr, "udp_sink: bad address '%s'\n", argv[i]);
    return 2;
  }
  a.sin_port = htons((uint16_t)number(argv[i + 1], 1, 65535));
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    perror("udp_sink: socket");
    return 1;
  }
  /* A deep buffer so a burst is counted, not dropped by the socket; and the
   * kernel's count of what it did drop, so a short count is explained. */
  int big = 16 << 20, one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) != 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    fprintf(stderr, "udp_sink: bind %s:%s: %s\n", argv[i], argv[i + 1],
            strerror(errno));
    return 1;
  }
  if (ready && !signalFifo(ready, "ready\n"))
    return 1;

  const int64_t deadline = nowMs() + timeoutMs;
  int64_t last = nowMs();
  long received = 0;
  uint32_t overflow = 0;
  const char *why = "timeout";
  for (;;) {
    if (stopRequested) {
      /* One last non-blocking pass below counts what is already queued. */
      why = "signal";
    }
    if (want && received >= want) {
      why = "count";
      break;
    }
    int64_t now = nowMs();
    if (now >= deadline)
      break;
    if (quietMs && now - last >= quietMs) {
      why = "quiet";
      break;
    }
    int64_t wait = deadline - now;
    if (quietMs && last + quietMs - now < wait)
      wait = last + quietMs - now;
    if (!stopRequested) {
      struct pollfd p = {.fd = fd, .events = POLLIN};
      int r = poll(&p, 1, (int)wait);
      if (r < 0 && errno != EINTR) {
        perror("udp_sink: poll");
        return 1;
      }
    }
    for (;;) {
      char buf[65536], ctl[CMSG_SPACE(sizeof(uint32_t))];
      struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
      struct msghdr m = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = ctl,
                         .msg_controllen = sizeof ctl};
      ssize_t n = recvmsg(fd, &m, 0);
      if (n < 0)
        break;
      ++received;
      last = nowMs();
      if (first && !signalFifo(first, "first\n"))
        return 1;
      first = NULL;
      for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL)
          memcpy(&overflow, CMSG_DATA(c), sizeof overflow);
    }
    if (stopRequested)
      break;
  }
  printf("received %ld\n", received);
  if (overflow)
    printf("socket overflow drops %u\n", overflow);
  fflush(stdout);
  close(fd);
  if (overflow)
    return 1;
  if (want)
    return !strcmp(why, "count") || !strcmp(why, "signal") ? 0 : 1;
  return 0;
}
