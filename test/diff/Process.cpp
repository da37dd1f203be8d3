//===- test/diff/Process.cpp - run helper programs with a deadline --------===//
#include "test/diff/Process.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace r2x::diff {

namespace {
cpu_set_t gChildMask;
bool gHaveChildMask = false;
} // namespace

void setChildAffinityAll() {
  CPU_ZERO(&gChildMask);
  if (sched_getaffinity(0, sizeof gChildMask, &gChildMask) == 0)
    gHaveChildMask = true;
}

std::string joinWords(const std::vector<std::string> &words) {
  std::string s;
  for (const auto &w : words)
    s += (s.empty() ? "" : " ") + w;
  return s;
}

ProcessResult run(const std::vector<std::string> &argv,
                  const std::string &input, int timeoutMs) {
  ProcessResult r;
  int inPipe[2], outPipe[2], errPipe[2];
  if (pipe2(inPipe, O_CLOEXEC) != 0) {
    r.err = std::string("pipe: ") + std::strerror(errno);
    return r;
  }
  if (pipe2(outPipe, O_CLOEXEC) != 0 || pipe2(errPipe, O_CLOEXEC) != 0) {
    r.err = std::string("pipe: ") + std::strerror(errno);
    return r; // a leaked pipe on this path ends the test anyway
  }
  std::vector<char *> args;
  for (const auto &a : argv)
    args.push_back(const_cast<char *>(a.c_str()));
  args.push_back(nullptr);

  pid_t pid = fork();
  if (pid < 0) {
    r.err = std::string("fork: ") + std::strerror(errno);
    for (int fd :
         {inPipe[0], inPipe[1], outPipe[0], outPipe[1], errPipe[0], errPipe[1]})
      close(fd);
    return r;
  }
  if (pid == 0) {
    dup2(inPipe[0], 0);
    dup2(outPipe[1], 1);
    dup2(errPipe[1], 2);
    if (gHaveChildMask)
      sched_setaffinity(0, sizeof gChildMask, &gChildMask);
    signal(SIGPIPE, SIG_DFL);
    execvp(args[0], args.data());
    const char *msg = "exec failed: ";
    (void)!write(2, msg, strlen(msg));
    (void)!write(2, args[0], strlen(args[0]));
    (void)!write(2, "\n", 1);
    _exit(127);
  }
  close(inPipe[0]);
  close(outPipe[1]);
  close(errPipe[1]);
  // Small inputs only (restore files): fits the pipe buffer, no deadlock.
  if (!input.empty())
    (void)!write(inPipe[1], input.data(), input.size());
  close(inPipe[1]);

  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  bool timedOut = false;
  int open = 2;
  pollfd fds[2] = {{outPipe[0], POLLIN, 0}, {errPipe[0], POLLIN, 0}};
  while (open > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) {
      timedOut = true;
      break;
    }
    int n = poll(fds, 2, int(left));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      char buf[8192];
      ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open;
      } else {
        (i == 0 ? r.out : r.err).append(buf, size_t(got));
      }
    }
  }
  for (auto &p : fds)
    if (p.fd >= 0)
      close(p.fd);
  if (timedOut)
    kill(pid, SIGKILL); // only the child started here
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timedOut)
    r.err += "[timed out after " + std::to_string(timeoutMs) + " ms]";
  else if (WIFEXITED(status))
    r.status = WEXITSTATUS(status);
  else
    r.err += "[killed by signal " + std::to_string(WTERMSIG(status)) + "]";
  return r;
}

} // namespace r2x::diff
