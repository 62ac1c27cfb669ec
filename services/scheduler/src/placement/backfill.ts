// EASY backfill. The first job in queue order that cannot start gets a reservation: the
// earliest time enough GPUs free up for it (from running jobs' start + time limit), on the
// nodes it would then use, honouring its topology need. Later jobs may start now only if
// they cannot delay it: they end before that time, or they leave the reserved nodes enough
// GPUs (the per-node slack in the ReservationGuard).
import type { ClusterState } from './cluster-state.js';
import { NOT_RESERVED, type ReservationGuard } from './framework/types.js';
import type { JobFit } from './static-fit.js';
import { selectNodes } from './topology.js';
import type { JobRequest } from './types.js';

/** GPUs on a node that come free at `end` (ms); Infinity = not before the job is stopped. */
export interface Release {
  node: number;
  gpus: number;
  end: number;
}

/** Expected end of a job (ms), never before `now`: an overrunning job is about to be killed. */
export function expectedEnd(startTime: number, timeLimitSec: number, now: number): number {
  return timeLimitSec > 0 ? Math.max(now, startTime + timeLimitSec * 1000) : Infinity;
}

export type ReservationResult =
  | { ok: true; guard: ReservationGuard; nodes: number[] }
  | { ok: false; /** Would not fit even with every GPU free: waiting cannot help. */ never: boolean };

function freeAt(state: ClusterState, releases: readonly Release[], t: number): Uint8Array {
  const free = state.freeCountsCopy();
  for (const r of releases) if (r.end <= t) free[r.node] = free[r.node]! + r.gpus;
  return free;
}

/**
 * Earliest start for `job` given the live state and the releases still to come; not ok if
 * it cannot start before some job without a time limit ends (or ever).
 */
export function computeReservation(state: ClusterState, job: JobRequest, fit: JobFit, releases: readonly Release[], now: number): ReservationResult {
  const times = [...new Set(releases.filter((r) => r.end !== Infinity).map((r) => Math.max(r.end, now)))].sort((a, b) => a - b);
  const fitsAt = (t: number) => selectNodes(state, job, fit, { free: freeAt(state, releases, t) });
  if (times.length === 0 || !fitsAt(times[times.length - 1]!).ok) return { ok: false, never: !fitsAt(Infinity).ok };
  // Fitting is monotone in time (GPUs only come free), so binary search the first time.
  let lo = 0;
  let hi = times.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (fitsAt(times[mid]!).ok) hi = mid;
    else lo = mid + 1;
  }
  const startTime = times[lo]!;
  const free = freeAt(state, releases, startTime);
  const outcome = selectNodes(state, job, fit, { free });
  if (!outcome.ok) return { ok: false, never: false };
  const slack = new Int32Array(state.size).fill(NOT_RESERVED);
  for (const i of outcome.nodes) slack[i] = free[i]! - job.gpusPerNode;
  return { ok: true, guard: { jobId: job.id, startTime, slack }, nodes: outcome.nodes };
}

/** Whether a job started now ends before the reservation (so it cannot delay it). */
export function endsBefore(job: JobRequest, now: number, guard: ReservationGuard | undefined): boolean {
  return guard !== undefined && job.timeLimitSec > 0 && now + job.timeLimitSec * 1000 <= guard.startTime;
}

/** Records that a job now uses `gpus` GPUs on node `i` beyond the reservation start. */
export function consumeSlack(guard: ReservationGuard, i: number, gpus: number): void {
  if (guard.slack[i] !== NOT_RESERVED) guard.slack[i] = guard.slack[i]! - gpus;
}
