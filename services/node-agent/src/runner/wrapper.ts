// Each rank runs under a tiny POSIX shell wrapper that records the exit status in a file.
// The agent may be restarted while ranks run; the wrapper (not the agent) is their parent's
// stand-in, so a re-adopting agent still learns how each rank ended.
//
// The wrapper ignores SIGTERM/SIGINT/SIGHUP *after* starting the command, so a SIGTERM to
// the process group reaches the command, and the wrapper survives to record its status.
// Exit status follows the shell convention: 128+N means killed by signal N. The status is
// written in place with a builtin, one short write, not to a temp file moved over it: an mv
// per rank was a fork and exec of coreutils, more CPU than the rest of the wrapper. The agent
// reads the file only once the wrapper is gone, and takes an empty one (the wrapper killed
// between creating and writing it) as none, as it does a missing one.
//
// Before starting the command, the wrapper looks it up as exec would (the job's PATH): a
// command that is not there, or not executable, ends the rank with 127 or 126 and a message
// that names the command and the node, on stderr and in a reason file next to the exit file
// (a shell's own "gantry-rank: 1: torchrun: not found" would name the wrapper instead).
//
// Beside the command runs a watchdog. Ranks outlive their agent on purpose (a restarted agent
// re-adopts them), but an agent that stays dead would leave them running on GPUs the
// scheduler already counts as free. The agent rewrites a beat file every second; when its
// content has not changed for longer than the partition grace period, the watchdog stops the
// process group as the agent would (SIGTERM, SIGKILL after the stop grace) and leaves a
// marker next to the exit file. The watchdog counts its own polls instead of comparing
// clocks, so a stepped wall clock can neither fire it early nor hold it back; under load its
// polls only get slower, which errs towards keeping the ranks. It ignores the signals the
// wrapper ignores (inherited), so a stop by the agent leaves it to the wrapper, which kills
// it once the command has ended.
import { constants } from 'node:os';

/** How often the agent rewrites the beat file (the watchdog polls at the same rate). */
export const BEAT_INTERVAL_MS = 1_000;
/**
 * Silence the watchdog always tolerates, whatever the grace: a few missed beats are an
 * event-loop stall or a slow disk, not a dead agent.
 */
export const MIN_SILENCE_MS = 3 * BEAT_INTERVAL_MS;
/** Stop grace for a rank assigned without one (as the agent's own partition stop). */
export const DEFAULT_STOP_GRACE_SECONDS = 10;

/** Environment variables through which the agent configures the wrapper. */
export const WRAPPER_ENV = {
  exitFile: 'GANTRY_EXIT_FILE',
  beatFile: 'GANTRY_AGENT_BEAT_FILE',
  silenceMs: 'GANTRY_AGENT_SILENCE_MS',
  stopGraceSeconds: 'GANTRY_STOP_GRACE_SECONDS',
  deviceCgroup: 'GANTRY_DEVICE_CGROUP',
} as const;

/** Created by the watchdog before it stops the rank: the agent was gone past the grace. */
export const ORPHAN_MARKER_SUFFIX = '.orphaned';
/** Written by the wrapper when it could not start the command: why, in one line. */
export const REASON_SUFFIX = '.reason';

// The lookup runs with the job's PATH, as the command itself would; the wrapper's own printf
// is a builtin.
const PREFLIGHT = [
  'reason=',
  'case "$1" in',
  '  */*)',
  '    if [ ! -e "$1" ]; then reason="$1: no such file"; status=127',
  '    elif [ -d "$1" ] || [ ! -x "$1" ]; then reason="$1: not an executable file"; status=126; fi ;;',
  '  *)',
  '    if ! command -v "$1" >/dev/null 2>&1; then reason="$1: command not found"; status=127; fi ;;',
  'esac',
  'if [ -n "$reason" ]; then',
  '  reason="cannot start $reason on ${GANTRY_NODE_NAME:-this node}"',
  // The PATH searched goes to the log only: the reason is repeated in the job's failure.
  '  printf "gantry: %s (PATH=%s)\\n" "$reason" "$PATH" >&2',
  '  printf "%s\\n" "$reason" > "$GANTRY_EXIT_FILE.reason"',
  '  printf "%s\\n" "$status" > "$GANTRY_EXIT_FILE"',
  '  exit "$status"',
  'fi',
].join('\n');

// With GPU isolation (gpu-devices.ts) the agent moves the wrapper into the rank's devices
// cgroup right after spawning it; the wrapper starts nothing until it is in (its children
// inherit the cgroup), and gives up after about 10 s with a reason, as the preflight does.
const JOIN_DEVICE_CGROUP = [
  'if [ -n "$GANTRY_DEVICE_CGROUP" ]; then',
  '  joined=; n=0',
  '  while [ -z "$joined" ]; do',
  '    while IFS= read -r line; do case "$line" in *":devices:$GANTRY_DEVICE_CGROUP") joined=1 ;; esac; done < /proc/$$/cgroup',
  '    if [ -z "$joined" ]; then',
  '      n=$((n + 1))',
  '      if [ "$n" -gt 200 ]; then',
  '        reason="the agent did not move the rank into its device cgroup $GANTRY_DEVICE_CGROUP on ${GANTRY_NODE_NAME:-this node}"',
  '        printf "gantry: %s\\n" "$reason" >&2',
  '        printf "%s\\n" "$reason" > "$GANTRY_EXIT_FILE.reason"',
  '        printf "126\\n" > "$GANTRY_EXIT_FILE"',
  '        exit 126',
  '      fi',
  '      PATH=/usr/bin:/bin:$PATH sleep 0.05',
  '    fi',
  '  done',
  'fi',
].join('\n');

const WATCHDOG = [
  '  last=; silent=0',
  '  while kill -0 "$child"; do',
  '    sleep 1 || exit 0',
  '    beat=; read -r beat < "$GANTRY_AGENT_BEAT_FILE"',
  '    if [ -n "$beat" ] && [ "$beat" != "$last" ]; then last=$beat; silent=0; else silent=$((silent + 1)); fi',
  '    if [ $((silent * 1000)) -gt "$GANTRY_AGENT_SILENCE_MS" ]; then',
  '      : > "$GANTRY_EXIT_FILE.orphaned"',
  '      kill -s TERM -- -$$',
  '      n=0',
  '      while kill -0 "$child" && [ "$n" -lt "$GANTRY_STOP_GRACE_SECONDS" ]; do sleep 1 || break; n=$((n + 1)); done',
  // Only the command itself: a SIGKILL to the group now would take the wrapper before it
  // records the status. The wrapper clears the rest of the group once it has.
  '      kill -s KILL "$child"',
  '      exit 0',
  '    fi',
  '  done',
].join('\n');

export const WRAPPER_SCRIPT = [
  JOIN_DEVICE_CGROUP,
  PREFLIGHT,
  // GANTRY_ADMIT_PRELOAD (the checkpoint hook, for a job with checkpoint.admit_flushes) is
  // preloaded into the command only, after the job's own LD_PRELOAD: not into this shell, its
  // watchdog or the watchdog's sleeps.
  'if [ -n "$GANTRY_ADMIT_PRELOAD" ]; then LD_PRELOAD="${LD_PRELOAD:+$LD_PRELOAD:}$GANTRY_ADMIT_PRELOAD" "$@" & else "$@" & fi',
  'child=$!',
  // The job's environment may set a PATH without the system folders; the command has it
  // already, the watchdog's sleep needs them.
  'PATH=/usr/bin:/bin:$PATH',
  "trap '' TERM INT HUP",
  'watchdog=',
  'if [ -n "$GANTRY_AGENT_BEAT_FILE" ]; then',
  '  (',
  WATCHDOG,
  '  ) </dev/null >/dev/null 2>&1 &',
  '  watchdog=$!',
  'fi',
  'wait "$child"',
  'code=$?',
  'printf "%s\\n" "$code" > "$GANTRY_EXIT_FILE"',
  'if [ -n "$watchdog" ]; then kill -s KILL "$watchdog" 2>/dev/null; fi',
  // No agent will clear what the command left in its group: do it here (the wrapper included).
  'if [ -e "$GANTRY_EXIT_FILE.orphaned" ]; then kill -s KILL -- -$$; fi',
  'exit "$code"',
].join('\n');

/**
 * The wrapper's own environment: where to record the status and, when the agent beats, how
 * long its silence is tolerated and how long the rank gets between SIGTERM and SIGKILL.
 */
export function wrapperEnv(opts: { exitFile: string; beatFile?: string; partitionGraceMs: number; stopGraceSeconds?: number; deviceCgroup?: string }): Record<string, string> {
  // Every key is set, so a job's environment cannot configure (or disable) its watchdog or device cgroup.
  const env: Record<string, string> = {
    [WRAPPER_ENV.exitFile]: opts.exitFile, [WRAPPER_ENV.beatFile]: '', [WRAPPER_ENV.silenceMs]: '', [WRAPPER_ENV.stopGraceSeconds]: '',
    [WRAPPER_ENV.deviceCgroup]: opts.deviceCgroup ?? '',
  };
  if (!opts.beatFile) return env;
  env[WRAPPER_ENV.beatFile] = opts.beatFile;
  env[WRAPPER_ENV.silenceMs] = String(Math.max(MIN_SILENCE_MS, Math.floor(opts.partitionGraceMs)));
  const grace = opts.stopGraceSeconds;
  env[WRAPPER_ENV.stopGraceSeconds] = String(grace !== undefined && Number.isFinite(grace) && grace >= 0 ? Math.ceil(grace) : DEFAULT_STOP_GRACE_SECONDS);
  return env;
}

/** What the agent writes into the beat file: fixed width, so a rewrite in place never needs new disk space. */
export function beatContent(nowMs: number): string {
  return `${String(Math.max(0, Math.floor(nowMs))).padStart(16, '0')}\n`;
}

const SIGNAL_NAMES = new Map(Object.entries(constants.signals).map(([name, num]) => [num as number, name]));

/** Interprets a wrapper status: a plain exit code, or a signal for 129..192. */
export function interpretStatus(code: number): { exitCode?: number; signal: string } {
  if (code > 128 && code <= 128 + 64) {
    const name = SIGNAL_NAMES.get(code - 128);
    if (name) return { exitCode: undefined, signal: name };
  }
  return { exitCode: code, signal: '' };
}
