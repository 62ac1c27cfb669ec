// Each rank runs under a tiny POSIX shell wrapper that records the exit status in a file.
// The agent may be restarted while ranks run; the wrapper (not the agent) is their parent's
// stand-in, so a re-adopting agent still learns how each rank ended.
//
// The wrapper ignores SIGTERM/SIGINT/SIGHUP *after* starting the command, so a SIGTERM to
// the process group reaches the command, and the wrapper survives to record its status.
// Exit status follows the shell convention: 128+N means killed by signal N.
import { constants } from 'node:os';

export const WRAPPER_SCRIPT = [
  '"$@" &',
  'child=$!',
  "trap '' TERM INT HUP",
  'wait "$child"',
  'code=$?',
  'printf "%s\\n" "$code" > "$GANTRY_EXIT_FILE.tmp" && mv "$GANTRY_EXIT_FILE.tmp" "$GANTRY_EXIT_FILE"',
  'exit "$code"',
].join('\n');

const SIGNAL_NAMES = new Map(Object.entries(constants.signals).map(([name, num]) => [num as number, name]));

/** Interprets a wrapper status: a plain exit code, or a signal for 129..192. */
export function interpretStatus(code: number): { exitCode?: number; signal: string } {
  if (code > 128 && code <= 128 + 64) {
    const name = SIGNAL_NAMES.get(code - 128);
    if (name) return { exitCode: undefined, signal: name };
  }
  return { exitCode: code, signal: '' };
}
