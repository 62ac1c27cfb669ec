// What a rank said about its own failure, for attribution: the error message and when it
// was raised. First choice is torchelastic's error file, which torchrun (and any entry point
// decorated with @record) writes to $TORCHELASTIC_ERROR_FILE; the fallback is the last
// exception line of the rank's stderr. Pure: the reads happen in rank-runner.ts.
//
// Error file format, from pytorch torch/distributed/elastic/multiprocessing/errors/
// error_handler.py (ErrorHandler.record_exception, dump_error_file,
// override_error_code_in_rootcause_data) and errors/__init__.py (ProcessFailure._get_error_data):
//   {"message": {"message": "ValueError: bad batch",
//                "extraInfo": {"py_callstack": "Traceback ...", "timestamp": "1733090000"},
//                "errorCode": 1}}            <- errorCode only when torchrun copies a child's file
//   {"message": "some text", "timestamp": 1733090000}   <- the plain-string form
// The timestamp is integer seconds since the epoch (a string in the nested form), and
// ProcessFailure's placeholder for "no data" is {"message": "<NONE>"}.
import { constants } from 'node:os';

export interface RankError {
  /** One line, at most MAX_ERROR_CHARS. */
  message: string;
  /** When the error was raised; undefined when the source does not say. */
  time?: Date;
}

export const MAX_ERROR_CHARS = 500;
/** Bytes read from the start of an error file (a traceback can be long; the message comes first in practice). */
export const ERROR_FILE_READ_BYTES = 64 * 1024;
/** Bytes read from the end of stderr.log for the fallback. */
export const STDERR_TAIL_BYTES = 16 * 1024;

const NO_DATA = '<NONE>';
// Seconds between 2001 and 2286: anything else is not an epoch timestamp in seconds.
const MIN_EPOCH_S = 1_000_000_000;
const MAX_EPOCH_S = 10_000_000_000;

/** Collapses whitespace and control characters to single spaces and bounds the length. */
export function oneLine(text: string, max = MAX_ERROR_CHARS): string {
  const flat = text.replace(/[\u0000-\u001f\u007f\s]+/g, ' ').trim();
  if (flat.length <= max) return flat;
  // Never end on half a surrogate pair: the result must stay valid UTF-16 for protobuf.
  let cut = max - 1;
  if (/[\uD800-\uDBFF]/.test(flat[cut - 1] ?? '')) cut -= 1;
  return `${flat.slice(0, cut)}…`;
}

function epochSeconds(value: unknown): Date | undefined {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isFinite(n) || n < MIN_EPOCH_S || n >= MAX_EPOCH_S) return undefined;
  return new Date(Math.floor(n) * 1000);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const SIGNAL_NAMES = new Map(Object.entries(constants.signals).map(([name, num]) => [num as number, name]));

/** torchrun's errorCode is the worker's exit code, negative for a signal (Popen convention). */
function describeErrorCode(code: unknown): string {
  if (typeof code !== 'number' || !Number.isInteger(code) || code === 0) return '';
  if (code < 0) return `worker killed by signal ${SIGNAL_NAMES.get(-code) ?? -code}`;
  return `worker exited with code ${code}`;
}

// The nested message as json.dump writes it, before the (possibly huge) py_callstack: what
// can still be read when a long traceback pushed the end past the bytes read.
const NESTED_MESSAGE = /^\s*\{\s*"message"\s*:\s*\{\s*"message"\s*:\s*("(?:[^"\\\u0000-\u001f]|\\.)*")/;

function salvageMessage(text: string): RankError | undefined {
  const m = NESTED_MESSAGE.exec(text);
  if (!m) return undefined;
  try {
    const message = oneLine(JSON.parse(m[1]!) as string);
    return message && message !== NO_DATA ? { message } : undefined;
  } catch {
    return undefined;
  }
}

/** Parses a torchelastic error file; undefined when it is not one or says nothing. */
export function parseErrorFile(text: string): RankError | undefined {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return salvageMessage(text);
  }
  if (!isRecord(data)) return undefined;
  const m = data.message;
  let message = '';
  let time: Date | undefined;
  if (typeof m === 'string') {
    message = m;
    time = epochSeconds(data.timestamp);
  } else if (isRecord(m)) {
    message = typeof m.message === 'string' ? m.message : '';
    if (isRecord(m.extraInfo)) time = epochSeconds(m.extraInfo.timestamp);
    if (!message.trim() || message.trim() === NO_DATA) message = describeErrorCode(m.errorCode);
  } else {
    return undefined;
  }
  message = oneLine(message);
  if (!message || message === NO_DATA) return undefined;
  return time ? { message, time } : { message };
}

// A Python exception line as the interpreter prints it last in a traceback: a dotted class
// name ending in Error, Exception or Interrupt, then ": detail" or nothing.
const EXCEPTION_LINE = /^(?:[A-Za-z_][A-Za-z0-9_]*\.)*[A-Za-z_][A-Za-z0-9_]*(?:Error|Exception|Interrupt)(?::(?:\s.*)?)?$/;
// Crashes below Python that still print one telling line.
const NATIVE_CRASH_LINE = /^(?:Fatal Python error: .+|terminate called after throwing an instance of .+)$/;
// Launchers prefix their workers' lines: torchrun's "[rank0]:" or "[default0]:" (--tee).
const LINE_PREFIX = /^(?:\[[^\]\s]{1,64}\]:?\s?)+/;
const ANSI = /\u001b\[[0-9;?]*[A-Za-z]/g;
// torchrun's own summary after a worker failed: a worker's exception line is better evidence.
const LAUNCHER_SUMMARY = /(?:^|\.)ChildFailedError\b/;

/**
 * The last line of a stderr tail that looks like an exception, preferring a worker's own
 * exception to the launcher's ChildFailedError summary. `partialFirstLine`: the tail starts
 * mid-file, so its first line may be cut and is skipped.
 */
export function lastExceptionLine(tail: string, partialFirstLine = false): string | undefined {
  const lines = tail.split('\n');
  if (partialFirstLine) lines.shift();
  let summary: string | undefined;
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!.replace(ANSI, '').replace(/\r$/, '').replace(LINE_PREFIX, '').trim();
    if (!line || line.length > 64 * 1024) continue;
    if (!EXCEPTION_LINE.test(line) && !NATIVE_CRASH_LINE.test(line)) continue;
    if (LAUNCHER_SUMMARY.test(line.split(':', 1)[0]!)) {
      summary ??= line;
      continue;
    }
    return oneLine(line);
  }
  return summary === undefined ? undefined : oneLine(summary);
}

/**
 * The rank's error from what could be read: the error file's content (if any, and written
 * during this run), else the stderr tail, dated by the rank's exit.
 */
export function rankError(input: { errorFile?: string; stderrTail?: string; stderrTailPartial?: boolean; exitedAt: Date }): RankError | undefined {
  if (input.errorFile !== undefined) {
    const fromFile = parseErrorFile(input.errorFile);
    if (fromFile) return { message: fromFile.message, time: fromFile.time ?? input.exitedAt };
  }
  if (input.stderrTail !== undefined) {
    const line = lastExceptionLine(input.stderrTail, input.stderrTailPartial);
    if (line) return { message: line, time: input.exitedAt };
  }
  return undefined;
}
