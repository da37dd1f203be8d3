/*===- test/tools/udp_send.c - send N UDP datagrams -----------------------===
 *
 * A traffic source for the demo and the end-to-end tests: sends COUNT
 * datagrams of SIZE payload bytes to ADDR:PORT from one socket and prints
 * "sent N". Optional pacing (--pps) keeps a long stream flowing while a test
 * replaces or unloads a program; --ready FILE writes "ready" to FILE (a FIFO)
 * after the first datagram left, so the caller can act while traffic flows.
 * SIGTERM or SIGINT ends a stream early but cleanly (exit 0, "sent N" as
 * always): a caller that needs traffic to flow until something happened
 * sends a large COUNT and stops the stream then, instead of guessing how
 * long it takes. Every loop is bounded: --timeout-ms (default 30 s) ends the
 * run early (an error).
 *
 *   udp_send [--size BYTES] [--pps RATE] [--src ADDR] [--timeout-ms MS]
 *            [--ready FILE] ADDR PORT COUNT
 *===----------------------------------------------------------------------===*/
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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
  fprintf(stderr, "usage: udp_send [--size BYTES] [--pps RATE] [--src ADDR] "
                  "[--timeout-ms MS] [--ready FILE] ADDR PORT COUNT\n");
  exit(2);
}

static long number(const char *s, long min, long max) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || end == s || v < min || v > max) {
    fprintf(stderr, "udp_send: bad number '%s'\n", s);
    exit(2);
  }
  return v;
}

static int64_t nowNs(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Sleeps until the monotonic time NS; false if a stop was requested. */
static int sleepUntil(int64_t ns) {
  struct timespec t = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR) {
    if (stopRequested)
      return 0;
  }
  return !stopRequested;
}

int main(int argc, char **argv) {
  long size = 18, pps = 0, timeoutMs = 30000;
  const char *src = NULL, *ready = NULL;
  int i = 1;
  for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i += 2) {
    if (i + 1 >= argc)
      usage();
    if (!strcmp(argv[i], "--size"))
      size = number(argv[i + 1], 0, 65507);
    else if (!strcmp(argv[i], "--pps"))
      pps = number(argv[i + 1], 0, 100000000);
    else if (!strcmp(argv[i], "--src"))
      src = argv[i + 1];
    else if (!strcmp(argv[i], "--timeout-ms"))
      timeoutMs = number(argv[i + 1], 1, 3600000);
    else if (!strcmp(argv[i], "--ready"))
      ready = argv[i + 1];
    else
      usage();
  }
  if (argc - i != 3)
    usage();
  struct sockaddr_in dst = {.sin_family = AF_INET};
  if (inet_pton(AF_INET, argv[i], &dst.sin_addr) != 1) {
    fprintf(stderr, "udp_send: bad address '%s'\n", argv[i]);
    return 2;
  }
  dst.sin_port = htons((uint16_t)number(argv[i + 1], 1, 65535));
  long count = number(argv[i + 2], 0, 1000000000);

  /* No SA_RESTART: a signal ends a pacing sleep at once. */
  struct sigaction sa = {.sa_handler = onSignal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    perror("udp_send: socket");
    return 1;
  }
  if (src) {
    struct sockaddr_in s = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, src, &s.sin_addr) != 1 ||
        bind(fd, (struct sockaddr *)&s, sizeof s) != 0) {
      fprintf(stderr, "udp_send: cannot bind to %s\n", src);
      return 1;
    }
  }
  /* Report local send errors (ENOBUFS) instead of losing datagrams
   * silently, so "sent" means "handed to the device". */
  int one = 1;
  setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof one);

  char *payload = calloc(1, (size_t)size + 1);
  if (!payload)
    return 1;
  for (long b = 0; b < size; ++b)
    payload[b] = (char)('a' + b % 26);

  const int64_t start = nowNs(), deadline = start + timeoutMs * 1000000LL;
  long sent = 0, errors = 0;
  for (long n = 0; n < count && !stopRequested; ++n) {
    if (nowNs() > deadline) {
      fprintf(stderr, "udp_send: timed out after %ld ms\n", timeoutMs);
      break;
    }
    if (pps && !sleepUntil(start + (int64_t)(n * (1000000000.0 / (double)pps))))
      break; /* stopped while pacing */
    /* A full queue is back-pressure, not loss: retry a bounded number of
     * times (until the deadline) before counting an error. */
    for (;;) {
      ssize_t r = sendto(fd, payload, (size_t)size, 0, (struct sockaddr *)&dst,
                         sizeof dst);
      if (r == size) {
        ++sent;
        break;
      }
      if ((errno == ENOBUFS || errno == EAGAIN) && nowNs() < deadline) {
        sleepUntil(nowNs() + 100000);
        continue; /* a stop waits for this datagram: "sent" stays exact */
      }
      /* With IP_RECVERR an ICMP error about an earlier datagram (port
       * unreachable once a sink is gone) fails this call once; this
       * datagram was not sent, so send it again. */
      if (errno == ECONNREFUSED && nowNs() < deadline)
        continue;
      ++errors;
      if (errors <= 3)
        fprintf(stderr, "udp_send: sendto: %s\n", strerror(errno));
      break;
    }
    if (ready && sent == 1) {
      int rf = open(ready, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
      if (rf >= 0) {
        (void)!write(rf, "ready\n", 6);
        close(rf);
      }
      ready = NULL;
    }
  }
  printf("sent %ld\n", sent);
  fflush(stdout);
  close(fd);
  free(payload);
  return errors || (sent != count && !stopRequested) ? 1 : 0;
}
