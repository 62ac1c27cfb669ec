// The evaluator's state between windows: plain JSON (numbers, strings, arrays, records; times
// in ms since the epoch), so the scheduler can keep it in Redis and any replica can resume.
// serializeHealthState / parseHealthState are the only (de)serialisers; the version field lets
// a future layout refuse, rather than misread, an old document.
import type { HealthStatus, HealthTransition } from './types.js';
import type { XidAction } from './xid-actions.js';

export const HEALTH_STATE_VERSION = 1;

// Records keep every field present (null, not absent, for "unknown"): one object shape per
// record type keeps the per-window copy cheap, and null survives JSON where undefined does not.
export interface SignalRecord {
  /** Own-baseline samples (bucket means of learned windows), oldest first. */
  ring: number[];
  /** Median and MAD of `ring`, cached: recomputed only when a bucket closes; 0 while empty. */
  med: number;
  mad: number;
  /** Learned windows of the open bucket. */
  accSum: number;
  accN: number;
  bucketStartMs: number;
  /** Decayed z-score above the dead band (0 .. capZ - deadZ). */
  evidence: number;
  /** When the signal last had a value; records silent for a whole baseline span are dropped. */
  lastMs: number;
}

export interface GpuRecord {
  index: number;
  lastSeenMs: number;
  /** Consecutive batches without this GPU (or with it but unreadable). */
  missing: number;
  /** The missing-GPU action was taken; reset when the GPU is back. */
  missingReported: boolean;
  remapFailure: boolean;
  /** Cumulative NVLink error counters (all links) at the last batch, for rates. */
  nvlink: { atMs: number; crc: number; replay: number; recovery: number; active: number } | null;
  /** Hourly [atMs, remapped rows, retired pages] for growth over the last day. */
  levels: Array<[number, number, number]>;
  /** Recent XIDs on this GPU, [atMs, xid], for repeat rules. */
  xids: Array<[number, number]>;
}

export interface NodeRecord {
  status: HealthStatus;
  sinceMs: number;
  score: number;
  hold?: { action: XidAction; reason: string; sinceMs: number };
  /** Whether the current quarantine came from the score (only those end on their own). */
  quarantineByScore?: boolean;
  streak: { suspectAbove: number; suspectBelow: number; quarantineAbove: number; quarantineBelow: number };
  signals: Record<string, SignalRecord>;
  /** Decayed points of `warn` XIDs, by cause class. */
  xidPoints: Record<string, number>;
  /** By GPU UUID. */
  gpus: Record<string, GpuRecord>;
  /** Learned inventory (UUIDs), when the scheduler does not pass the registered one. */
  inventory: string[];
  incidents: Array<{ atMs: number; kind: string; detail: string }>;
  history: HealthTransition[];
  lemonSinceMs?: number;
  /** Recently seen XID event ids: a redelivered event is not acted on twice. */
  seenXids: string[];
  lastBatchMs?: number;
}

export interface SharedRecord {
  kind: 'storage' | 'fabric' | 'management';
  target: string;
  active: boolean;
  sinceMs: number;
  above: number;
  below: number;
}

export interface JobRecord {
  idleSinceMs?: number;
  /** Nodes that printed NCCL timeout lines since the job last made progress. */
  ncclNodes: string[];
  hangSinceMs?: number;
  hangReported: boolean;
  /** Consecutive straggling windows by node, and the nodes already reported. */
  straggle: Record<string, number>;
  reported: string[];
  lastSeenMs: number;
}

export interface HealthState {
  version: typeof HEALTH_STATE_VERSION;
  lastEvalMs?: number;
  nodes: Record<string, NodeRecord>;
  shared: Record<string, SharedRecord>;
  jobs: Record<string, JobRecord>;
}

export function newSignal(nowMs: number): SignalRecord {
  return { ring: [], med: 0, mad: 0, accSum: 0, accN: 0, bucketStartMs: nowMs, evidence: 0, lastMs: nowMs };
}

export function emptyHealthState(): HealthState {
  return { version: HEALTH_STATE_VERSION, nodes: {}, shared: {}, jobs: {} };
}

export function newNodeRecord(nowMs: number): NodeRecord {
  return {
    status: 'READY', sinceMs: nowMs, score: 0,
    streak: { suspectAbove: 0, suspectBelow: 0, quarantineAbove: 0, quarantineBelow: 0 },
    signals: {}, xidPoints: {}, gpus: {}, inventory: [], incidents: [], history: [], seenXids: [],
  };
}

/** A deep copy (the state is plain JSON data). */
export function cloneHealthState(state: HealthState): HealthState {
  return structuredClone(state);
}

export function serializeHealthState(state: HealthState): string {
  return JSON.stringify(state);
}

export class HealthStateError extends Error {
  override readonly name = 'HealthStateError';
}

/**
 * Parses what serializeHealthState wrote. Checks the envelope and each node's status, not
 * every number: the document is written only by this module.
 */
export function parseHealthState(text: string): HealthState {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new HealthStateError(`health state is not JSON: ${(err as Error).message}`);
  }
  if (doc === null || typeof doc !== 'object') throw new HealthStateError('health state must be an object');
  const d = doc as Partial<HealthState>;
  if (d.version !== HEALTH_STATE_VERSION) throw new HealthStateError(`health state version ${String(d.version)} is not ${HEALTH_STATE_VERSION}`);
  for (const k of ['nodes', 'shared', 'jobs'] as const) {
    if (d[k] === null || typeof d[k] !== 'object') throw new HealthStateError(`health state: ${k} must be an object`);
  }
  for (const [name, n] of Object.entries(d.nodes!)) {
    if (!['READY', 'SUSPECT', 'QUARANTINED'].includes(n?.status)) throw new HealthStateError(`health state: node ${name} has status ${String(n?.status)}`);
  }
  return d as HealthState;
}
