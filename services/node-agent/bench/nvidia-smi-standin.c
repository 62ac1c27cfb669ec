/*
 * A stand-in for nvidia-smi in the agent benchmark (bench/smi-cycle.ts builds it with cc):
 * a native binary, so a fork + exec costs what a real one's does, that prints recorded
 * output of the real nvidia-smi and takes a set time to do it.
 *
 *   --query-gpu=... --format=...   prints $STANDIN_DIR/query.csv
 *   pci -gErrCnt                   prints $STANDIN_DIR/pci.txt
 *   -l SEC | -lms MS | --loop-ms=MS   repeats every interval until stdout closes, as nvidia-smi does
 *
 * Time model: STANDIN_INIT_MS once per process (driver/NVML start-up), STANDIN_QUERY_MS per
 * query, of which the share STANDIN_CPU_SHARE is spent on the CPU (the rest sleeps, as
 * nvidia-smi waits on the driver).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double clock_ms(clockid_t id) {
  struct timespec t;
  clock_gettime(id, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static double now_ms(void) { return clock_ms(CLOCK_MONOTONIC); }

static void sleep_ms(double ms) {
  if (ms <= 0) return;
  struct timespec t = { (time_t)(ms / 1000), (long)((ms - (time_t)(ms / 1000) * 1000) * 1e6) };
  nanosleep(&t, NULL);
}

static volatile unsigned long sink;

/* CPU time, not wall time, so that a loaded machine stretches the wall time as it would the real one's. */
static void spend(double ms, double cpu_share) {
  double busy_until = clock_ms(CLOCK_PROCESS_CPUTIME_ID) + ms * cpu_share;
  while (clock_ms(CLOCK_PROCESS_CPUTIME_ID) < busy_until) sink++;
  sleep_ms(ms * (1 - cpu_share));
}

static double env_num(const char *name, double fallback) {
  const char *v = getenv(name);
  return v && *v ? atof(v) : fallback;
}

int main(int argc, char **argv) {
  const char *file = NULL;
  double loop_ms = 0;
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--query-gpu=", 12) == 0) file = "query.csv";
    else if (strcmp(argv[i], "pci") == 0) file = "pci.txt";
    else if (strcmp(argv[i], "-lms") == 0 && i + 1 < argc) loop_ms = atof(argv[++i]);
    else if (strncmp(argv[i], "--loop-ms=", 10) == 0) loop_ms = atof(argv[i] + 10);
    else if (strcmp(argv[i], "-l") == 0 && i + 1 < argc) loop_ms = atof(argv[++i]) * 1000;
  }
  const char *dir = getenv("STANDIN_DIR");
  if (!file || !dir) {
    fprintf(stderr, "nvidia-smi stand-in: needs STANDIN_DIR and --query-gpu=... or pci -gErrCnt\n");
    return 2;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "nvidia-smi stand-in: cannot read %s\n", path);
    return 2;
  }
  static char buf[1 << 20];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  double cpu_share = env_num("STANDIN_CPU_SHARE", 0.5);
  double query_ms = env_num("STANDIN_QUERY_MS", 20);
  spend(env_num("STANDIN_INIT_MS", 20), cpu_share);
  for (;;) {
    double started = now_ms();
    spend(query_ms, cpu_share);
    if (fwrite(buf, 1, n, stdout) != n || fflush(stdout) != 0) return 1;
    if (loop_ms <= 0) return 0;
    sleep_ms(loop_ms - (now_ms() - started));
  }
}
