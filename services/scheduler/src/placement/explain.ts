// Explanations for `gantry job explain`: per-filter rejection counts, formatted the way the
// CLI prints them ("4,011 nodes: insufficient free GPUs; 60: gpu type H100 not in [B200];
// 3: quarantined").
import type { ClusterState } from './cluster-state.js';
import { capacityReason, DEFAULT_CAPACITY } from './domains.js';
import type { FilterStatus, ReservationGuard } from './framework/types.js';
import type { JobFit, StaticFit } from './static-fit.js';
import type { JobRequest, RejectionCounts } from './types.js';

const count = new Intl.NumberFormat('en-US');

/** Most frequent reason first; the first count says "nodes", the rest are understood. */
export function formatRejections(counts: RejectionCounts): string {
  const entries = Object.entries(counts)
    .filter(([, n]) => n > 0)
    .sort(([ra, a], [rb, b]) => b - a || (ra < rb ? -1 : ra > rb ? 1 : 0));
  return entries.map(([reason, n], k) => `${count.format(n)}${k === 0 ? (n === 1 ? ' node' : ' nodes') : ''}: ${reason}`).join('; ');
}

/** Adds n nodes (n may be negative) to a reason's count; a count that reaches 0 is dropped. */
export function addCount(counts: RejectionCounts, reason: FilterStatus, n: number): void {
  if (reason === undefined) return;
  const v = (counts[reason] ?? 0) + n;
  if (v === 0) delete counts[reason];
  else counts[reason] = v;
}

/** Capacity and reservation reasons for the candidates of a fit in the live state. */
export function capacityRejections(state: ClusterState, job: JobRequest, fit: StaticFit, guard: ReservationGuard | undefined, endsBefore: boolean, capacity = DEFAULT_CAPACITY): RejectionCounts {
  const out: RejectionCounts = {};
  const scenario = { free: state.freeCount, guard, endsBefore };
  for (const i of fit.candidates) {
    const reason = capacityReason(state, job, i, scenario, capacity);
    if (reason !== undefined) addCount(out, reason, 1);
  }
  return out;
}

/**
 * Why each node cannot take the job now: the static reasons (computed once per job shape)
 * plus, for nodes that pass them, capacity and reservation reasons in the live state.
 */
export function explainRejections(state: ClusterState, job: JobRequest, fit: JobFit, guard: ReservationGuard | undefined, endsBefore: boolean): RejectionCounts {
  const out: RejectionCounts = { ...fit.rejections };
  for (const [reason, n] of Object.entries(capacityRejections(state, job, fit, guard, endsBefore, fit.capacity))) addCount(out, reason, n);
  return out;
}

/**
 * Rejection counts for jobs left pending, on the final state. The counts of a shape (static
 * reasons, then capacity reasons over its candidates) are computed once; a job's own
 * exclusions then only move its few excluded nodes. Jobs whose counts come out equal share
 * one object (plans are read, never written): a queue of 20,000 jobs with a few dozen shapes
 * would otherwise keep 20,000 copies alive to the end of the cycle.
 */
export class PendingExplainer {
  private readonly cache = new Map<string, { counts: RejectionCounts; moved: Map<string, RejectionCounts> }>();
  /** A job's moves (reasons and counts, in order), reused from job to job. */
  private readonly reasons: FilterStatus[] = [];
  private readonly amounts: number[] = [];
  private readonly sink = (reason: FilterStatus, n: number): void => {
    this.reasons.push(reason);
    this.amounts.push(n);
  };

  constructor(
    private readonly state: ClusterState,
    private readonly guard: ReservationGuard | undefined,
  ) {}

  explain(job: JobRequest, shape: string, fit: JobFit, guarded: boolean): RejectionCounts {
    const guard = guarded ? this.guard : undefined;
    const key = `${guarded ? 'g' : '-'}${shape}`;
    let base = this.cache.get(key);
    if (!base) {
      const f = fit.shape ?? fit;
      const counts = { ...f.rejections };
      for (const [reason, n] of Object.entries(capacityRejections(this.state, job, f, guard, false, fit.capacity))) addCount(counts, reason, n);
      this.cache.set(key, (base = { counts, moved: new Map() }));
    }
    if (!fit.moves && !fit.adjust) return base.counts;
    const { reasons, amounts } = this;
    reasons.length = 0;
    amounts.length = 0;
    if (fit.moves) fit.moves(this.sink);
    else {
      // A fit that only knows how to adjust counts: nothing to share.
      const out = fit.adjust!({ ...base.counts });
      this.capacityMoves(job, fit, guard);
      for (let k = 0; k < reasons.length; k++) addCount(out, reasons[k], amounts[k]!);
      return out;
    }
    this.capacityMoves(job, fit, guard);
    // The moves decide the result (addCount is deterministic, key order included).
    let id = '';
    for (let k = 0; k < reasons.length; k++) id += `${reasons[k] ?? '\u0003'}\u0001${amounts[k]}\u0002`;
    let out = base.moved.get(id);
    if (!out) {
      out = { ...base.counts };
      for (let k = 0; k < reasons.length; k++) addCount(out, reasons[k], amounts[k]!);
      base.moved.set(id, out);
    }
    return out;
  }

  /** The excluded nodes leave the capacity reasons they were counted under. */
  private capacityMoves(job: JobRequest, fit: JobFit, guard: ReservationGuard | undefined): void {
    const scenario = { free: this.state.freeCount, guard };
    for (const i of fit.excluded ?? []) {
      const reason = capacityReason(this.state, job, i, scenario, fit.capacity);
      if (reason !== undefined) this.sink(reason, -1);
    }
  }
}

/** The last time formatted: every job behind a reservation names the same start time. */
let formatted: { ms: number; text: string } | undefined;

/** "2026-11-25T10:00:00Z" in plain UTC, without milliseconds. */
export function formatTime(ms: number): string {
  if (formatted?.ms !== ms) formatted = { ms, text: Number.isFinite(ms) ? new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z') : 'never' };
  return formatted.text;
}
