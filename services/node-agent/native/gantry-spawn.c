// gantry-spawn: the node agent's rank spawner (services/node-agent/src/runner/spawn-helper.ts).
//
// Why a separate process: forking a rank's wrapper from the agent, a Node process of 100+ MB,
// copies the agent's page tables, makes every page the agent writes afterwards fault once
// (copy on write), and blocks the agent's event loop until the child has exec'd. Forking from
// this small process costs a fraction of that, and the agent only writes a request to a pipe.
//
// Requests on stdin, from the agent: frames of a 4-byte little-endian length and a payload of
// NUL-terminated strings:
//   id, file, cwd, stdout path, stderr path, uid, gid (both "" to keep the agent's),
//   argc, argv[0..argc), envc, env[0..envc).
// Replies on stdout, one line each:
//   "S <id> <pid>"      started: the child has exec'd `file`;
//   "E <id> <errno>"    not started: errno of the step that failed (open, chdir, setuid, exec ...);
//   "X <pid> <status>"  a child ended: the raw wait status (exit code, or the signal).
// Each child is its own session and process group, with stdin on /dev/null and stdout/stderr
// appended to the given files (created 0666 less the umask, as the agent's own spawn did). With
// a uid/gid it drops supplementary groups, then the gid, then the uid, after opening its files.
//
// When stdin ends (the agent is gone) the spawner exits at once and leaves its children running:
// they are re-parented, and a restarted agent re-adopts them from its state file as it does
// after its own restart.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_FRAME (64u << 20)

static char *inbuf;
static size_t inlen, incap;

static void write_all(const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(1, s, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      _exit(0); // the agent is gone
    }
    s += w;
    n -= (size_t)w;
  }
}

static void reply(char kind, const char *id, long a) {
  char line[160];
  int n = snprintf(line, sizeof line, "%c %.100s %ld\n", kind, id, a);
  write_all(line, (size_t)n);
}

/** The next NUL-terminated string of a frame, or NULL past its end. */
static const char *next_str(const char **p, const char *end) {
  if (*p >= end) return NULL;
  const char *s = *p;
  const char *z = memchr(s, '\0', (size_t)(end - s));
  if (!z) return NULL;
  *p = z + 1;
  return s;
}

static int parse_id(const char *s, long *out) {
  if (!s || !*s) return 0;
  char *e;
  errno = 0;
  long v = strtol(s, &e, 10);
  if (errno || *e || v < 0) return 0;
  *out = v;
  return 1;
}

// In the child, until exec: report errno on the pipe and end.
static void child_fail(int fd) {
  int e = errno;
  ssize_t ignored = write(fd, &e, sizeof e);
  (void)ignored;
  _exit(127);
}

static void spawn_one(const char *frame, size_t len) {
  const char *p = frame, *end = frame + len;
  const char *id = next_str(&p, end);
  const char *file = next_str(&p, end), *cwd = next_str(&p, end);
  const char *out = next_str(&p, end), *err = next_str(&p, end);
  const char *uid_s = next_str(&p, end), *gid_s = next_str(&p, end);
  long argc = -1, envc = -1, uid = -1, gid = -1;
  if (!id) return;
  if (!file || !cwd || !out || !err || !uid_s || !gid_s || !parse_id(next_str(&p, end), &argc) || argc < 1 || argc > 65536 ||
      (*uid_s && !parse_id(uid_s, &uid)) || (*gid_s && !parse_id(gid_s, &gid))) {
    reply('E', id, EINVAL);
    return;
  }
  char **argv = calloc((size_t)argc + 1, sizeof *argv);
  if (!argv) { reply('E', id, ENOMEM); return; }
  for (long i = 0; i < argc; i++) {
    argv[i] = (char *)next_str(&p, end);
    if (!argv[i]) { free(argv); reply('E', id, EINVAL); return; }
  }
  if (!parse_id(next_str(&p, end), &envc) || envc > 1 << 20) { free(argv); reply('E', id, EINVAL); return; }
  char **envp = calloc((size_t)envc + 1, sizeof *envp);
  if (!envp) { free(argv); reply('E', id, ENOMEM); return; }
  for (long i = 0; i < envc; i++) {
    envp[i] = (char *)next_str(&p, end);
    if (!envp[i]) { free(argv); free(envp); reply('E', id, EINVAL); return; }
  }

  int ep[2];
  if (pipe2(ep, O_CLOEXEC) < 0) { free(argv); free(envp); reply('E', id, errno); return; }
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(ep[0]); close(ep[1]); free(argv); free(envp);
    reply('E', id, e);
    return;
  }
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); // the spawner blocks SIGCHLD; a rank must not inherit that
    signal(SIGPIPE, SIG_DFL);
    if (setsid() < 0) child_fail(ep[1]);
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (in < 0) child_fail(ep[1]);
    int o = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (o < 0) child_fail(ep[1]);
    int e = open(err, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (e < 0) child_fail(ep[1]);
    if (dup2(in, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) child_fail(ep[1]);
    if (*cwd && chdir(cwd) < 0) child_fail(ep[1]);
    if (uid >= 0 || gid >= 0) {
      if (setgroups(0, NULL) < 0 && errno != EPERM) child_fail(ep[1]);
      if (gid >= 0 && setgid((gid_t)gid) < 0) child_fail(ep[1]);
      if (uid >= 0 && setuid((uid_t)uid) < 0) child_fail(ep[1]);
    }
    execve(file, argv, envp);
    child_fail(ep[1]);
  }
  close(ep[1]);
  free(argv);
  free(envp);
  int child_errno = 0;
  ssize_t r;
  do r = read(ep[0], &child_errno, sizeof child_errno);
  while (r < 0 && errno == EINTR);
  close(ep[0]);
  if (r == (ssize_t)sizeof child_errno) {
    // It never ran the command: reap it here, so no "X" line follows for it.
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    reply('E', id, child_errno);
    return;
  }
  reply('S', id, (long)pid);
}

static void reap(void) {
  int st;
  pid_t pid;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    char line[64];
    int n = snprintf(line, sizeof line, "X %ld %d\n", (long)pid, st);
    write_all(line, (size_t)n);
  }
}

/** Handles every whole frame in the buffer; false when one is malformed beyond recovery. */
static int handle_frames(void) {
  size_t off = 0;
  while (inlen - off >= 4) {
    uint32_t n = (uint32_t)(unsigned char)inbuf[off] | (uint32_t)(unsigned char)inbuf[off + 1] << 8 |
                 (uint32_t)(unsigned char)inbuf[off + 2] << 16 | (uint32_t)(unsigned char)inbuf[off + 3] << 24;
    if (n > MAX_FRAME) return 0;
    if (inlen - off - 4 < n) break;
    spawn_one(inbuf + off + 4, n);
    off += 4 + n;
  }
  memmove(inbuf, inbuf + off, inlen - off);
  inlen -= off;
  return 1;
}

int main(void) {
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &chld, NULL) < 0) return 1;
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) return 1;
  fcntl(0, F_SETFD, FD_CLOEXEC);
  fcntl(1, F_SETFD, FD_CLOEXEC);
  incap = 1 << 16;
  inbuf = malloc(incap);
  if (!inbuf) return 1;
  write_all("R gantry-spawn 1\n", 17); // ready: the agent sends nothing before this line
  struct pollfd fds[2] = {{.fd = 0, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if (fds[1].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) > 0) {}
      reap();
    }
    if (fds[0].revents) {
      if (incap - inlen < 1 << 15) {
        if (incap > MAX_FRAME * 2u) return 2;
        char *bigger = realloc(inbuf, incap * 2);
        if (!bigger) return 1;
        inbuf = bigger;
        incap *= 2;
      }
      ssize_t r = read(0, inbuf + inlen, incap - inlen);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return 0; // the agent is gone: leave the children running
      inlen += (size_t)r;
      if (!handle_frames()) return 2;
      // A rank that ended while this one was spawned is reported now, not at the next wakeup.
      reap();
    }
  }
}
