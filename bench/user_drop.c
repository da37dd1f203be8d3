/*===- bench/user_drop.c - the talk's user-drop.c ---------------------------===
 *
 * "Userspace Packet Drop": a UDP socket bound to PORT, read in a loop, each
 * datagram counted and thrown away. The talk's loop, unchanged; instead of
 * printing once a second it keeps its count in COUNTFILE (one 64-bit
 * integer, mmapped) so bench/run can read it before and after a run.
 *
 *   user_drop PORT COUNTFILE
 *===----------------------------------------------------------------------===*/
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define MTU_SIZE 1500

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: user_drop PORT COUNTFILE\n");
    return 2;
  }
  int cf = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (cf < 0 || ftruncate(cf, 16) != 0) {
    perror("user_drop: count file");
    return 1;
  }
  volatile uint64_t *count =
      mmap(NULL, 16, PROT_READ | PROT_WRITE, MAP_SHARED, cf, 0);
  if (count == MAP_FAILED) {
    perror("user_drop: mmap");
    return 1;
  }
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)atoi(argv[1]))};
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    perror("user_drop: socket");
    return 1;
  }
  char buf[MTU_SIZE];
  uint64_t pkts = 0, bytes = 0;
  while (1) {
    ssize_t res = read(fd, buf, MTU_SIZE);

    if (res <= 0)
      return 0;

    pkts += 1;
    bytes += (uint64_t)res;
    count[0] = pkts;
    count[1] = bytes;
  }
}
