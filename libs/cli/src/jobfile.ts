// Job files (`gantry job submit -f job.yaml`): the YAML shape, its validation, and the merge
// with command-line flags. Both sides are turned into the same `Submission` (proto field names,
// parsed values), so the merge is a plain object merge and every value is validated once.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { parseCheckpointFormat, type JobSpecInput } from '@gantry/sdk';
import { UsageError } from './errors.js';
import { CheckpointRetention, CheckpointSpec, RetryPolicy } from '@gantry/proto';
import { parseDuration, parseInteger, parseLauncher, parseRetryClass, parseSeconds, parseTopology } from './parse.js';

export interface Submission {
  spec: JobSpecInput;
  idempotencyKey?: string;
}

/** Strings, or scalars YAML reads as numbers/booleans (`NCCL_DEBUG: 1`), as a string. */
function scalar(v: unknown, key: string): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new UsageError(`${key} must be a string`);
}

function text(v: unknown, key: string): string {
  if (typeof v !== 'string') throw new UsageError(`${key} must be a string`);
  return v;
}

/** A list of strings; a single string is a list of one. */
function list(v: unknown, key: string): string[] {
  if (typeof v === 'string') return [v];
  if (!Array.isArray(v)) throw new UsageError(`${key} must be a list of strings`);
  return v.map((item, i) => scalar(item, `${key}[${i}]`));
}

function map(v: unknown, key: string): Record<string, string> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UsageError(`${key} must be a mapping of names to strings`);
  return Object.fromEntries(Object.entries(v).map(([k, val]) => [k, scalar(val, `${key}.${k}`)]));
}

function integer(v: unknown, key: string, min = 0, max?: number): number {
  if (typeof v !== 'number' && typeof v !== 'string') throw new UsageError(`${key} must be an integer`);
  try {
    return parseInteger(String(v), max === undefined ? { min } : { min, max });
  } catch (err) {
    throw new UsageError(`${key}: ${(err as Error).message}`);
  }
}

/** A duration string ("2h") or a number of seconds. */
function seconds(v: unknown, key: string): number {
  if (typeof v !== 'number' && typeof v !== 'string') throw new UsageError(`${key} must be a duration such as 30m`);
  try {
    return parseSeconds(String(v));
  } catch (err) {
    throw new UsageError(`${key}: ${(err as Error).message}`);
  }
}

function milliseconds(v: unknown, key: string): number {
  if (typeof v !== 'number' && typeof v !== 'string') throw new UsageError(`${key} must be a duration such as 5s`);
  try {
    return parseDuration(String(v));
  } catch (err) {
    throw new UsageError(`${key}: ${(err as Error).message}`);
  }
}

/** `retry: { maxRecoveries, retryOn, backoff, backoffMax, backoffJitter }`, like the submit flags. */
function retryPolicy(v: unknown, key: string): RetryPolicy {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UsageError(`${key} must be a mapping (maxRecoveries, retryOn, backoff, backoffMax, backoffJitter)`);
  const raw = v as Record<string, unknown>;
  const known = ['maxRecoveries', 'retryOn', 'backoff', 'backoffMax', 'backoffJitter'];
  for (const k of Object.keys(raw)) if (!known.includes(k)) throw new UsageError(`${key}.${k}: unknown field (known: ${known.join(', ')})`);
  const p = RetryPolicy.create();
  if (raw.maxRecoveries !== undefined) p.maxRecoveries = integer(raw.maxRecoveries, `${key}.maxRecoveries`, 0, 100);
  if (raw.retryOn !== undefined) {
    p.retryOn = list(raw.retryOn, `${key}.retryOn`).map((c, i) => {
      try {
        return parseRetryClass(c);
      } catch (err) {
        throw new UsageError(`${key}.retryOn[${i}]: ${(err as Error).message}`);
      }
    });
  }
  if (raw.backoff !== undefined) p.backoffInitialMs = milliseconds(raw.backoff, `${key}.backoff`);
  if (raw.backoffMax !== undefined) p.backoffMaxMs = milliseconds(raw.backoffMax, `${key}.backoffMax`);
  if (raw.backoffJitter !== undefined) {
    const j = Number(raw.backoffJitter);
    if (!(j >= 0 && j <= 1)) throw new UsageError(`${key}.backoffJitter must be a number between 0 and 1`);
    p.backoffJitter = j;
  }
  return p;
}

/**
 * `checkpoint: { dir, format, storageTarget, admitFlushes, retention: { keepLast, keepEvery, gcGrace, delete } }`,
 * like the --checkpoint-* flags.
 */
function checkpointSection(v: unknown, key: string): CheckpointSpec {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UsageError(`${key} must be a mapping (dir, format, storageTarget, admitFlushes, retention)`);
  const raw = v as Record<string, unknown>;
  const known = ['dir', 'format', 'storageTarget', 'admitFlushes', 'retention'];
  for (const k of Object.keys(raw)) if (!known.includes(k)) throw new UsageError(`${key}.${k}: unknown field (known: ${known.join(', ')})`);
  const c = CheckpointSpec.create();
  if (raw.dir !== undefined) c.dir = text(raw.dir, `${key}.dir`);
  if (raw.format !== undefined) {
    try {
      c.format = parseCheckpointFormat(text(raw.format, `${key}.format`));
    } catch (err) {
      throw new UsageError(`${key}.format: ${(err as Error).message}`);
    }
  }
  if (raw.storageTarget !== undefined) c.storageTarget = text(raw.storageTarget, `${key}.storageTarget`);
  if (raw.admitFlushes !== undefined) {
    if (typeof raw.admitFlushes !== 'boolean') throw new UsageError(`${key}.admitFlushes must be true or false`);
    c.admitFlushes = raw.admitFlushes;
  }
  if (raw.retention !== undefined) c.retention = retentionSection(raw.retention, `${key}.retention`);
  return c;
}

function retentionSection(v: unknown, key: string): CheckpointRetention {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UsageError(`${key} must be a mapping (keepLast, keepEvery, gcGrace, delete)`);
  const raw = v as Record<string, unknown>;
  const known = ['keepLast', 'keepEvery', 'gcGrace', 'delete'];
  for (const k of Object.keys(raw)) if (!known.includes(k)) throw new UsageError(`${key}.${k}: unknown field (known: ${known.join(', ')})`);
  const r = CheckpointRetention.create();
  if (raw.keepLast !== undefined) r.keepLast = integer(raw.keepLast, `${key}.keepLast`);
  if (raw.keepEvery !== undefined) r.keepEvery = integer(raw.keepEvery, `${key}.keepEvery`);
  if (raw.gcGrace !== undefined) r.gcGraceSeconds = seconds(raw.gcGrace, `${key}.gcGrace`);
  if (raw.delete !== undefined) {
    if (typeof raw.delete !== 'boolean') throw new UsageError(`${key}.delete must be true or false`);
    r.delete = raw.delete;
  }
  return r;
}

/**
 * The flags' checkpoint fields over the file's: only what the flags set (a non-empty dir,
 * format, target, or a non-zero retention field) replaces the file's value.
 */
export function mergeCheckpoint(file: CheckpointSpec | undefined, flags: CheckpointSpec | undefined): CheckpointSpec | undefined {
  if (!flags) return file;
  if (!file) return flags;
  const out = CheckpointSpec.fromPartial(file);
  if (flags.dir) out.dir = flags.dir;
  if (flags.format) out.format = flags.format;
  if (flags.storageTarget) out.storageTarget = flags.storageTarget;
  if (flags.admitFlushes) out.admitFlushes = true;
  if (flags.retention) {
    const r = CheckpointRetention.fromPartial(out.retention ?? {});
    if (flags.retention.keepLast) r.keepLast = flags.retention.keepLast;
    if (flags.retention.keepEvery) r.keepEvery = flags.retention.keepEvery;
    if (flags.retention.gcGraceSeconds) r.gcGraceSeconds = flags.retention.gcGraceSeconds;
    if (flags.retention.delete) r.delete = true;
    out.retention = r;
  }
  return out;
}

/** YAML key -> how to read it into a Submission. Keys are the long flag names in camelCase. */
const FIELDS: Record<string, (v: unknown, key: string, into: Submission) => void> = {
  name: (v, k, s) => (s.spec.name = text(v, k)),
  tenant: (v, k, s) => (s.spec.tenant = text(v, k)),
  nodes: (v, k, s) => (s.spec.nodes = integer(v, k, 1)),
  gpusPerNode: (v, k, s) => (s.spec.gpusPerNode = integer(v, k)),
  gpuTypes: (v, k, s) => (s.spec.gpuTypes = list(v, k)),
  priority: (v, k, s) => (s.spec.priorityClass = text(v, k)),
  timeLimit: (v, k, s) => (s.spec.timeLimitSeconds = seconds(v, k)),
  topology: (v, k, s) => {
    try {
      s.spec.topology = parseTopology(text(v, k));
    } catch (err) {
      throw new UsageError(`${k}: ${(err as Error).message}`);
    }
  },
  launcher: (v, k, s) => {
    try {
      s.spec.launcher = parseLauncher(text(v, k));
    } catch (err) {
      throw new UsageError(`${k}: ${(err as Error).message}`);
    }
  },
  env: (v, k, s) => (s.spec.env = map(v, k)),
  workdir: (v, k, s) => (s.spec.workingDir = text(v, k)),
  runAs: (v, k, s) => (s.spec.runAsUser = scalar(v, k)),
  selector: (v, k, s) => (s.spec.nodeSelector = map(v, k)),
  excludeNodes: (v, k, s) => (s.spec.excludeNodes = list(v, k)),
  masterPort: (v, k, s) => (s.spec.masterPort = integer(v, k, 1, 65535)),
  stopGrace: (v, k, s) => (s.spec.stopGraceSeconds = seconds(v, k)),
  retry: (v, k, s) => (s.spec.retry = retryPolicy(v, k)),
  checkpoint: (v, k, s) => (s.spec.checkpoint = checkpointSection(v, k)),
  idempotencyKey: (v, k, s) => (s.idempotencyKey = text(v, k)),
  command: (v, k, s) => {
    if (!Array.isArray(v)) throw new UsageError(`${k} must be a list of strings (the argv of each rank)`);
    s.spec.command = list(v, k);
  },
};

/** Parses and validates a job file's text; `source` names it in error messages. */
export function parseJobFile(yamlText: string, source: string): Submission {
  const doc = parseDocument(yamlText);
  const [syntax] = doc.errors;
  // The yaml library's messages end in a multi-line code frame; the first line has the position.
  if (syntax) throw new UsageError(`${source}: invalid YAML: ${syntax.message.split('\n')[0]!.replace(/:$/, '')}`);
  const data: unknown = doc.toJS() ?? {};
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new UsageError(`${source}: a job file must be a YAML mapping`);
  const submission: Submission = { spec: {} };
  for (const [key, value] of Object.entries(data)) {
    const read = FIELDS[key];
    if (!read) throw new UsageError(`${source}: unknown field "${key}" (known: ${Object.keys(FIELDS).join(', ')})`);
    try {
      read(value, key, submission);
    } catch (err) {
      throw new UsageError(`${source}: ${(err as Error).message}`);
    }
  }
  return submission;
}

export function loadJobFile(path: string): Submission {
  let yamlText: string;
  try {
    yamlText = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read job file: ${(err as Error).message}`);
  }
  return parseJobFile(yamlText, path);
}

/**
 * Flags override the file: scalars and lists are replaced, the env and selector maps are
 * merged key by key (so `--env A=1` adds to the file's env instead of dropping it).
 */
export function mergeSubmissions(file: Submission, flags: Submission): Submission {
  const spec: JobSpecInput = { ...file.spec, ...flags.spec };
  if (file.spec.env || flags.spec.env) spec.env = { ...file.spec.env, ...flags.spec.env };
  if (file.spec.nodeSelector || flags.spec.nodeSelector) spec.nodeSelector = { ...file.spec.nodeSelector, ...flags.spec.nodeSelector };
  const checkpoint = mergeCheckpoint(file.spec.checkpoint, flags.spec.checkpoint);
  if (checkpoint) spec.checkpoint = checkpoint;
  const idempotencyKey = flags.idempotencyKey ?? file.idempotencyKey;
  return idempotencyKey === undefined ? { spec } : { spec, idempotencyKey };
}

/**
 * What a submission needs before it is sent; the server validates the rest. Ranks start where
 * the submitter is (`cwd`), as `srun` does, unless the flags or the file say otherwise: a
 * relative directory is taken from there too, and an empty one leaves each rank in its own
 * folder on the node.
 */
export function finalizeSubmission(s: Submission, cwd: string): Submission {
  if (!s.spec.command?.length) throw new UsageError('no command: give it after "--" (gantry job submit [flags] -- CMD ARGS...) or as "command" in the job file');
  const dir = s.spec.workingDir;
  return { ...s, spec: { nodes: 1, ...s.spec, workingDir: dir === undefined ? cwd : dir && resolve(cwd, dir) } };
}
