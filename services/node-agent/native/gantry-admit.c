// libgantry-admit.so: storage admission for checkpoint flushes of training code that does not
// ask for it itself (issue 11, JobSpec.checkpoint.admit_flushes; docs/storage.md).
//
// The agent puts this library in LD_PRELOAD of the ranks of a job that opted in. It wraps the
// calls that push a written file's data to storage: close, fclose, fsync and fdatasync. For a
// regular file open for writing whose path lies inside GANTRY_CHECKPOINT_DIR it takes a WRITE
// lease from the agent's per-job endpoint (POST GANTRY_CKPT_URL/v1/storage/acquire with
// GANTRY_CKPT_TOKEN, the same calls python/gantry_ckpt.py makes) before calling the real
// function, and gives it back after. On NFS close() writes back the file's dirty pages
// (close-to-open consistency), so the lease covers the storage I/O of a save that first filled
// the page cache, which is what the admission pool is sized for.
//
// What it must never do is break or hang the job:
//   - the HTTP client closes its own sockets: a thread-local flag keeps the wrappers out of
//     their own calls (and the renewal thread never takes a lease);
//   - an agent that cannot be reached, or answers an error, costs one line on stderr and the
//     flush goes ahead unadmitted, as it would without Gantry; a turn that does not come within
//     GANTRY_CKPT_TIMEOUT seconds (default 600) goes ahead the same way;
//   - reads are not admitted: a lease held from open to close could be held across the
//     collectives a rank runs between them, and ranks waiting for each other's lease there
//     would deadlock;
//   - leases are per rank (the service's lease id is "w:job:attempt:rank"), so the threads of a
//     process share one: the first flush acquires it, the last one out releases it, and a
//     background thread renews it while any flush still runs.
//
// Only the C library's entry points are wrapped: statically linked writers, raw syscalls,
// io_uring and O_DIRECT writes that complete before close, and writeback the kernel starts on
// its own before close are not held (docs/storage.md).
//
// Build: cc -O2 -shared -fPIC -o libgantry-admit.so gantry-admit.c -ldl -lpthread
// (pnpm build:admit). Plain POSIX sockets and a minimal HTTP/1.1 request, because it runs
// inside arbitrary processes and must not bring dependencies of its own.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int (*real_close)(int);
static int (*real_fclose)(FILE *);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

// Set while this thread is inside a wrapper or the HTTP client: nested calls go straight through.
static __thread int in_shim;

static struct {
  int enabled;
  char dir[4096];       // GANTRY_CHECKPOINT_DIR as given, without a trailing '/'
  char real_dir[4096];  // and resolved (readlink of an fd gives the resolved path)
  struct sockaddr_in addr;
  char host[64];
  char token[160];
  long rank;
  double timeout_s;     // the longest one flush waits for its turn
  long ttl_ms;          // 0: the storage target's lease TTL
  int verbose;          // GANTRY_ADMIT_LOG=1: one line per admitted flush (diagnostics, tests)
} cfg;

static pthread_once_t once = PTHREAD_ONCE_INIT;

// The process's one lease and who is inside it.
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;  // re-made on the monotonic clock by init
static int holders;        // flushes running under the lease
static int busy;           // an acquire or release is on the wire: others wait for its outcome
static unsigned long gen;  // bumped when an acquire ends, so waiters learn it failed
static int have_lease;
static char lease_id[256];
static char lease_target[256];
static double renew_every_s;
static int renewer_started;
static int failing;        // the last call failed: say so once, not once per flush

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

// stderr via write(2): stdio could be locked by the very thread that is in fclose.
static void say(const char *fmt, ...) {
  char line[1024];
  int n = snprintf(line, sizeof line, "gantry-admit[%d]: ", (int)getpid());
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
  if (len > sizeof line - 2) len = sizeof line - 2;  // truncated
  line[len++] = '\n';
  ssize_t w = write(2, line, len);
  (void)w;
}

// The renewal thread's timed waits count on the monotonic clock: a stepped wall clock must
// neither hold a renewal back past the lease's expiry nor fire it early.
static void init_changed(void) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&changed, &ca);
  pthread_condattr_destroy(&ca);
}

static void reset_after_fork(void) {
  // The child holds no lease (the parent's flush owns it) and has no renewal thread.
  pthread_mutex_init(&mu, NULL);
  init_changed();
  holders = 0;
  busy = 0;
  have_lease = 0;
  renewer_started = 0;
}
static void before_fork(void) { pthread_mutex_lock(&mu); }
static void after_fork_parent(void) { pthread_mutex_unlock(&mu); }

static void init(void) {
  real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
  real_fclose = (int (*)(FILE *))dlsym(RTLD_NEXT, "fclose");
  real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  init_changed();
  pthread_atfork(before_fork, after_fork_parent, reset_after_fork);

  const char *dir = getenv("GANTRY_CHECKPOINT_DIR");
  const char *url = getenv("GANTRY_CKPT_URL");
  const char *token = getenv("GANTRY_CKPT_TOKEN");
  if (!dir || dir[0] != '/' || !url || !token || !token[0]) return;  // not a rank of an opted-in job
  if (strlen(dir) >= sizeof cfg.dir || strlen(token) >= sizeof cfg.token) return;
  strcpy(cfg.dir, dir);
  size_t dl = strlen(cfg.dir);
  while (dl > 1 && cfg.dir[dl - 1] == '/') cfg.dir[--dl] = 0;
  strcpy(cfg.token, token);

  // The agent's endpoint is loopback HTTP: http://127.0.0.1:PORT (endpoint.ts).
  unsigned port = 0;
  if (sscanf(url, "http://%63[^:/]:%u", cfg.host, &port) != 2 || port == 0 || port > 65535) {
    say("GANTRY_CKPT_URL %.200s is not http://HOST:PORT; checkpoint flushes are not admitted", url);
    return;
  }
  cfg.addr.sin_family = AF_INET;
  cfg.addr.sin_port = htons((unsigned short)port);
  if (inet_pton(AF_INET, strcmp(cfg.host, "localhost") == 0 ? "127.0.0.1" : cfg.host, &cfg.addr.sin_addr) != 1) {
    say("GANTRY_CKPT_URL host %s is not an IPv4 address; checkpoint flushes are not admitted", cfg.host);
    return;
  }
  // The global rank (per GPU, or torchrun's workers); a per-node rank that is the process itself has only NODE_RANK.
  const char *r = getenv("RANK");
  if (!r || !*r) r = getenv("NODE_RANK");
  cfg.rank = r && *r ? strtol(r, NULL, 10) : 0;
  if (cfg.rank < 0) cfg.rank = 0;
  const char *t = getenv("GANTRY_CKPT_TIMEOUT");
  cfg.timeout_s = t && *t ? strtod(t, NULL) : 600.0;
  if (!(cfg.timeout_s > 0)) cfg.timeout_s = 600.0;
  const char *ttl = getenv("GANTRY_CKPT_TTL_MS");
  cfg.ttl_ms = ttl && *ttl ? strtol(ttl, NULL, 10) : 0;
  if (cfg.ttl_ms < 0) cfg.ttl_ms = 0;
  const char *v = getenv("GANTRY_ADMIT_LOG");
  cfg.verbose = v && strcmp(v, "1") == 0;
  cfg.enabled = 1;
}

// --- HTTP ---------------------------------------------------------------------------------

// POST route with a JSON body; returns the HTTP status (-1: no answer, errno-like text in err)
// and the body in out. One request per connection (Connection: close).
static int post(const char *route, const char *body, double timeout_s, char *out, size_t outsz, char *err, size_t errsz) {
  out[0] = 0;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(err, errsz, "socket: %s", strerror(errno));
    return -1;
  }
  struct timeval tv = {(time_t)timeout_s, (suseconds_t)((timeout_s - (double)(time_t)timeout_s) * 1e6)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);  // also bounds connect() on Linux
  int status = -1;
  if (connect(fd, (struct sockaddr *)&cfg.addr, sizeof cfg.addr) != 0) {
    snprintf(err, errsz, "agent unreachable at %s:%u: %s", cfg.host, ntohs(cfg.addr.sin_port), strerror(errno));
    goto done;
  }
  char req[2048];
  int n = snprintf(req, sizeof req,
                   "POST %s HTTP/1.1\r\nHost: %s:%u\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                   route, cfg.host, ntohs(cfg.addr.sin_port), cfg.token, strlen(body), body);
  if (n < 0 || (size_t)n >= sizeof req) {
    snprintf(err, errsz, "request too long");
    goto done;
  }
  for (int sent = 0; sent < n;) {
    ssize_t w = send(fd, req + sent, (size_t)(n - sent), MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      snprintf(err, errsz, "agent at %s:%u: send: %s", cfg.host, ntohs(cfg.addr.sin_port), strerror(errno));
      goto done;
    }
    sent += (int)w;
  }
  char buf[8192];
  size_t got = 0;
  double deadline = mono() + timeout_s;
  for (;;) {
    ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
    if (r < 0 && errno == EINTR && mono() < deadline) continue;
    if (r < 0) {
      snprintf(err, errsz, "agent at %s:%u: no answer: %s", cfg.host, ntohs(cfg.addr.sin_port), strerror(errno));
      goto done;
    }
    if (r == 0 || (got += (size_t)r) >= sizeof buf - 1) break;
  }
  buf[got] = 0;
  int code = 0;
  if (sscanf(buf, "HTTP/1.%*d %d", &code) != 1) {
    snprintf(err, errsz, "agent at %s:%u: not an HTTP answer", cfg.host, ntohs(cfg.addr.sin_port));
    goto done;
  }
  const char *b = strstr(buf, "\r\n\r\n");
  snprintf(out, outsz, "%s", b ? b + 4 : "");
  status = code;
done:
  real_close(fd);
  return status;
}

// The answers are the endpoint's own flat JSON objects: a field's string or literal value.
static int field(const char *json, const char *name, char *out, size_t outsz) {
  char key[64];
  snprintf(key, sizeof key, "\"%s\":", name);
  const char *p = strstr(json, key);
  if (!p) return 0;
  p += strlen(key);
  while (*p == ' ') p++;
  size_t i = 0;
  if (*p == '"') {
    for (p++; *p && *p != '"' && i + 1 < outsz; p++) {
      if (*p == '\\' && p[1]) p++;
      out[i++] = *p;
    }
  } else {
    for (; *p && *p != ',' && *p != '}' && i + 1 < outsz; p++) out[i++] = *p;
  }
  out[i] = 0;
  return 1;
}

// Seconds from now until an ISO time "2026-12-02T13:24:31.123Z" (0 when unreadable).
static double seconds_until(const char *iso) {
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  int ms = 0;
  if (sscanf(iso, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) < 6) return 0;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  struct timeval now;
  gettimeofday(&now, NULL);
  double left = (double)timegm(&tm) + ms / 1000.0 - ((double)now.tv_sec + now.tv_usec / 1e6);
  return left > 0 ? left : 0;
}

static void failed(const char *what) {
  pthread_mutex_lock(&mu);
  int first = !failing;
  failing = 1;
  pthread_mutex_unlock(&mu);
  // One line per outage: an unreachable agent must not flood the job's log with a line per file.
  if (first) say("%s; checkpoint flushes go ahead unadmitted until it answers again", what);
}

// --- the lease ----------------------------------------------------------------------------

// Asks until granted; 1 with lease_id/target set, 0 when the flush is to go ahead unadmitted.
static int acquire_lease(char *id, size_t idsz, char *target, size_t targetsz, double *renew_s) {
  double deadline = mono() + cfg.timeout_s;
  double backoff = 0.25;
  char res[8192], err[512], body[256], v[256];
  for (;;) {
    double left = deadline - mono();
    if (left <= 0) {
      say("no storage lease within GANTRY_CKPT_TIMEOUT=%gs; this checkpoint flush goes ahead unadmitted", cfg.timeout_s);
      return 0;
    }
    long wait_ms = left > 10 ? 10000 : (long)(left * 1000);
    snprintf(body, sizeof body, "{\"mode\":\"write\",\"rank\":%ld,\"wait_ms\":%ld,\"ttl_ms\":%ld}", cfg.rank, wait_ms, cfg.ttl_ms);
    // The agent waits up to wait_ms at the service and allows itself 10 s more for the call.
    int st = post("/v1/storage/acquire", body, wait_ms / 1000.0 + 15, res, sizeof res, err, sizeof err);
    if (st < 0) {
      failed(err);
      return 0;
    }
    if (st == 503 && mono() + backoff < deadline) {  // the service is briefly unavailable: as the Python module, retry
      struct timespec ts = {(time_t)backoff, (long)((backoff - (double)(time_t)backoff) * 1e9)};
      nanosleep(&ts, NULL);
      backoff = backoff * 2 > 5 ? 5 : backoff * 2;
      continue;
    }
    if (st != 200) {
      char msg[300] = "";
      field(res, "error", msg, sizeof msg);
      snprintf(err, sizeof err, "the agent refused a storage lease (HTTP %d: %s)", st, msg);
      failed(err);
      return 0;
    }
    if (field(res, "granted", v, sizeof v) && strcmp(v, "true") == 0 && field(res, "lease_id", id, idsz)) {
      if (!field(res, "target", target, targetsz)) target[0] = 0;
      // A third of the time left, as the Python module renews; at most 2 s, because expires_at
      // is the service's clock (another host) and a skew must not outlast the lease.
      double left_s = field(res, "expires_at", v, sizeof v) ? seconds_until(v) : 0;
      *renew_s = left_s / 3 < 0.2 ? 0.2 : left_s / 3 > 2 ? 2 : left_s / 3;
      pthread_mutex_lock(&mu);
      int was = failing;
      failing = 0;
      pthread_mutex_unlock(&mu);
      if (was) say("the agent answers again; checkpoint flushes are admitted");
      return 1;
    }
    // Not yet: asking again keeps this rank's place in the queue.
  }
}

static void release_lease(const char *id, const char *target) {
  char body[600], res[1024], err[512];
  snprintf(body, sizeof body, "{\"lease_id\":\"%s\",\"target\":\"%s\"}", id, target);
  int st = post("/v1/storage/release", body, 15, res, sizeof res, err, sizeof err);
  if (st < 0) failed(err);
  else if (st != 200) say("releasing storage lease %s: HTTP %d (it expires with its TTL)", id, st);
}

// Renews the lease every third of its TTL while flushes still run under it.
static void *renewer(void *arg) {
  (void)arg;
  in_shim = 1;
  char id[256], target[256], body[600], res[1024], err[512];
  pthread_mutex_lock(&mu);
  for (;;) {
    while (!have_lease) pthread_cond_wait(&changed, &mu);
    struct timespec at;
    clock_gettime(CLOCK_MONOTONIC, &at);
    double s = renew_every_s;
    at.tv_sec += (time_t)s;
    at.tv_nsec += (long)((s - (double)(time_t)s) * 1e9);
    if (at.tv_nsec >= 1000000000L) { at.tv_sec++; at.tv_nsec -= 1000000000L; }
    unsigned long g = gen;
    int rc = 0;
    while (have_lease && gen == g && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&changed, &mu, &at);
    if (!have_lease || gen != g) continue;
    snprintf(id, sizeof id, "%s", lease_id);
    snprintf(target, sizeof target, "%s", lease_target);
    pthread_mutex_unlock(&mu);
    snprintf(body, sizeof body, "{\"lease_id\":\"%s\",\"target\":\"%s\",\"ttl_ms\":%ld}", id, target, cfg.ttl_ms);
    int st = post("/v1/storage/renew", body, 15, res, sizeof res, err, sizeof err);
    if (st < 0) failed(err);
    else if (st == 404) say("storage lease %s is gone (expired or taken back); this flush finishes unadmitted", id);
    pthread_mutex_lock(&mu);
  }
  return NULL;
}

static void start_renewer(void) {
  // Called with mu held. Signals go to the application's threads, never to this one.
  if (renewer_started) return;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t t;
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&t, &a, renewer, NULL) == 0) renewer_started = 1;
  pthread_attr_destroy(&a);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}

// Enters an admitted flush: 1 when it runs under the lease (call leave), 0 when unadmitted.
static int enter(const char *path, double *waited) {
  double t0 = mono();
  pthread_mutex_lock(&mu);
  while (busy) {
    unsigned long g = gen;
    while (busy && gen == g) pthread_cond_wait(&changed, &mu);
    // The acquire this thread waited for failed or timed out: do not queue again behind it.
    if (!busy && !have_lease && gen != g) {
      pthread_mutex_unlock(&mu);
      return 0;
    }
  }
  if (have_lease) {
    holders++;
    pthread_mutex_unlock(&mu);
    *waited = mono() - t0;
    return 1;
  }
  busy = 1;
  pthread_mutex_unlock(&mu);
  char id[256], target[256];
  double renew_s = 10;
  int ok = acquire_lease(id, sizeof id, target, sizeof target, &renew_s);
  pthread_mutex_lock(&mu);
  busy = 0;
  gen++;
  if (ok) {
    snprintf(lease_id, sizeof lease_id, "%s", id);
    snprintf(lease_target, sizeof lease_target, "%s", target);
    renew_every_s = renew_s;
    have_lease = 1;
    holders = 1;
    start_renewer();
  }
  pthread_cond_broadcast(&changed);
  pthread_mutex_unlock(&mu);
  *waited = mono() - t0;
  (void)path;
  return ok;
}

static void leave(void) {
  char id[256], target[256];
  pthread_mutex_lock(&mu);
  if (--holders > 0) {
    pthread_mutex_unlock(&mu);
    return;
  }
  // The last flush out gives the lease back; a flush that starts meanwhile waits (busy) so it
  // cannot be granted the same lease id just before this release takes it away.
  snprintf(id, sizeof id, "%s", lease_id);
  snprintf(target, sizeof target, "%s", lease_target);
  have_lease = 0;
  busy = 1;
  gen++;
  pthread_cond_broadcast(&changed);
  pthread_mutex_unlock(&mu);
  release_lease(id, target);
  pthread_mutex_lock(&mu);
  busy = 0;
  pthread_cond_broadcast(&changed);
  pthread_mutex_unlock(&mu);
}

// --- which files --------------------------------------------------------------------------

static int under(const char *path, const char *dir) {
  size_t n = strlen(dir);
  return n > 0 && strncmp(path, dir, n) == 0 && path[n] == '/';
}

// A regular file open for writing inside the checkpoint directory; its path in `path`.
static int is_checkpoint_write(int fd, char *path, size_t pathsz) {
  if (!cfg.enabled || fd < 0) return 0;
  int fl = fcntl(fd, F_GETFL);  // cheapest test first: most closes are of read-only files and sockets
  if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY) return 0;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, pathsz - 1);
  if (n <= 0) return 0;
  path[n] = 0;
  if (under(path, cfg.dir)) return 1;
  // The directory may be reached through a symlink, and may not have existed at start.
  if (!cfg.real_dir[0]) {
    char buf[PATH_MAX];
    if (realpath(cfg.dir, buf) && strlen(buf) < sizeof cfg.real_dir) {
      pthread_mutex_lock(&mu);
      strcpy(cfg.real_dir, buf);
      pthread_mutex_unlock(&mu);
    }
  }
  return cfg.real_dir[0] && under(path, cfg.real_dir);
}

// Runs real_call under a write lease when fd is a checkpoint file being written. The flag is
// set before the check, so a signal handler that closes a file meanwhile goes straight through
// instead of waiting on a lock this thread holds; errno is the real call's alone.
#define ADMITTED(kind, fd, real_call)                                                              \
  do {                                                                                             \
    char path[4096];                                                                               \
    int saved_errno = errno;                                                                       \
    in_shim = 1;                                                                                   \
    int hit = is_checkpoint_write((fd), path, sizeof path);                                        \
    if (!hit) {                                                                                    \
      in_shim = 0;                                                                                 \
      errno = saved_errno;                                                                         \
      return real_call;                                                                            \
    }                                                                                              \
    double waited = 0;                                                                             \
    int admitted = enter(path, &waited);                                                           \
    double t0 = mono();                                                                            \
    errno = saved_errno;                                                                           \
    int rc = real_call;                                                                            \
    saved_errno = errno;                                                                           \
    double t1 = mono();                                                                            \
    if (admitted) {                                                                                \
      if (cfg.verbose)                                                                             \
        say("%s %s admitted as %s (waited %.3fs) held %.6f-%.6f", kind, path, lease_id, waited, t0, t1); \
      leave();                                                                                     \
    }                                                                                              \
    in_shim = 0;                                                                                   \
    errno = saved_errno;                                                                           \
    return rc;                                                                                     \
  } while (0)

int close(int fd) {
  pthread_once(&once, init);
  if (in_shim) return real_close(fd);
  ADMITTED("close", fd, real_close(fd));
}

int fsync(int fd) {
  pthread_once(&once, init);
  if (in_shim) return real_fsync(fd);
  ADMITTED("fsync", fd, real_fsync(fd));
}

int fdatasync(int fd) {
  pthread_once(&once, init);
  if (in_shim) return real_fdatasync(fd);
  ADMITTED("fdatasync", fd, real_fdatasync(fd));
}

// glibc's fclose flushes the stream's buffer and closes through an internal symbol, not
// close(): torch.save, std::ofstream and every stdio writer end here instead.
int fclose(FILE *f) {
  pthread_once(&once, init);
  if (in_shim || !f) return real_fclose(f);
  int fd = fileno(f);
  ADMITTED("fclose", fd, real_fclose(f));
}
