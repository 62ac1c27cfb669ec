// Parsers for flag and job-file values. Each throws a UsageError whose message names the
// problem in one line; `flagParser` adapts them to commander.
import { InvalidArgumentError } from 'commander';
import {
  FailureClass, JobState, Launcher, NodeState, TopologyRequirement, failureClassName, jobStateName, nodeStateName, parseFailureClass, parseJobState, parseNodeState,
} from '@gantry/proto';
import { UsageError } from './errors.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "90s", "30m", "2h", "1h30m", "500ms", or a bare number of seconds; returns milliseconds. */
export function parseDuration(text: string): number {
  const s = text.trim();
  if (/^\d+$/.test(s)) return Number(s) * 1_000;
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;
  let ms = 0;
  let m: RegExpExecArray | null;
  while (part.lastIndex < s.length && (m = part.exec(s))) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
  if (s === '' || part.lastIndex !== s.length) throw new UsageError(`invalid duration "${text}" (use e.g. 90s, 30m, 2h, 1h30m)`);
  return ms;
}

/** A duration that must be a whole number of seconds (what the protos carry). */
export function parseSeconds(text: string): number {
  const ms = parseDuration(text);
  if (ms % 1_000 !== 0) throw new UsageError(`duration "${text}" must be a whole number of seconds`);
  return ms / 1_000;
}

export function parseInteger(text: string, { min = 0, max = 2 ** 32 - 1 } = {}): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`"${text}" is not an integer in ${min}..${max}`);
  return n;
}

/** "KEY=VALUE" (the value may be empty or contain "="). */
export function parseKeyValue(text: string): [string, string] {
  const i = text.indexOf('=');
  if (i <= 0) throw new UsageError(`expected KEY=VALUE, got "${text}"`);
  return [text.slice(0, i), text.slice(i + 1)];
}

export const TOPOLOGIES: Record<string, TopologyRequirement> = {
  any: TopologyRequirement.TOPOLOGY_REQUIREMENT_UNSPECIFIED,
  'same-nvlink-domain': TopologyRequirement.TOPOLOGY_REQUIREMENT_SAME_NVLINK_DOMAIN,
  'same-switch': TopologyRequirement.TOPOLOGY_REQUIREMENT_SAME_SWITCH,
  'same-spine': TopologyRequirement.TOPOLOGY_REQUIREMENT_SAME_SPINE,
};

export function parseTopology(text: string): TopologyRequirement {
  const t = TOPOLOGIES[text];
  if (t === undefined) throw new UsageError(`unknown topology "${text}" (one of ${Object.keys(TOPOLOGIES).join(', ')})`);
  return t;
}

/** Launcher modes by their flag and job-file names (the table in docs/cli.md). */
export const LAUNCHERS: Record<string, Launcher> = {
  'per-node': Launcher.LAUNCHER_PER_NODE,
  'per-gpu': Launcher.LAUNCHER_PER_GPU,
};

export function parseLauncher(text: string): Launcher {
  const l = LAUNCHERS[text];
  if (l === undefined) throw new UsageError(`unknown launcher "${text}" (one of ${Object.keys(LAUNCHERS).join(', ')})`);
  return l;
}

/** The name a job's launcher mode goes by; unset is per-node. */
export function launcherName(l: Launcher): string {
  return l === Launcher.LAUNCHER_PER_GPU ? 'per-gpu' : l === Launcher.LAUNCHER_UNSPECIFIED || l === Launcher.LAUNCHER_PER_NODE ? 'per-node' : String(l);
}

export function topologyName(t: TopologyRequirement): string {
  return Object.entries(TOPOLOGIES).find(([, v]) => v === t)?.[0] ?? String(t);
}

const enumNames = (values: object, name: (v: number) => string) =>
  Object.values(values).filter((v): v is number => typeof v === 'number' && v > 0).map((v) => name(v).toLowerCase());

export function parseJobStateFlag(text: string): JobState {
  const s = parseJobState(text);
  if (s === undefined) throw new UsageError(`unknown job state "${text}" (one of ${enumNames(JobState, jobStateName).join(', ')})`);
  return s;
}

export function parseNodeStateFlag(text: string): NodeState {
  const s = parseNodeState(text);
  if (s === undefined) throw new UsageError(`unknown node state "${text}" (one of ${enumNames(NodeState, nodeStateName).join(', ')})`);
  return s;
}

/** Failure classes a retry policy may name. */
export const RETRYABLE_CLASS_NAMES = [
  FailureClass.FAILURE_CLASS_NODE_FAULT, FailureClass.FAILURE_CLASS_INFRASTRUCTURE, FailureClass.FAILURE_CLASS_APPLICATION, FailureClass.FAILURE_CLASS_GPU_CONTAINED, FailureClass.FAILURE_CLASS_HANG,
].map(failureClassName);

export function parseRetryClass(text: string): FailureClass {
  const c = parseFailureClass(text);
  if (c === undefined || !RETRYABLE_CLASS_NAMES.includes(failureClassName(c))) throw new UsageError(`unknown failure class "${text}" (one of ${RETRYABLE_CLASS_NAMES.join(', ')})`);
  return c;
}

/** Commander reports an argParser's InvalidArgumentError as a usage error naming the flag. */
export function flagParser<T>(parse: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return parse(text);
    } catch (err) {
      throw new InvalidArgumentError(err instanceof Error ? err.message : String(err));
    }
  };
}

/** For repeatable flags: every occurrence is parsed and collected in order. */
export function repeatable<T>(parse: (text: string) => T): (text: string, previous?: T[]) => T[] {
  const one = flagParser(parse);
  return (text, previous = []) => [...previous, one(text)];
}
