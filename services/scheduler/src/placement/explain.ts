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

/** Jobs' moves (reason, amount) in order, ending in the counts they lead to. */
interface MoveTrie {
  counts?: RejectionCounts;
  next?: Map<number, MoveTrie>;
}

interface ShapeCounts {
  counts: RejectionCounts;
  moved: MoveTrie;
}

/** Amounts of a move are -1 or 1 (one node each); the trie codes amounts within this span (others are not shared). */
const MOVE_SPAN = 1 << 12;

/**
 * Rejection counts for jobs left pending, on the final state. The counts of a shape (static
 * reasons, then capacity reasons over its candidates) are computed once; a job's own
 * exclusions then only move its few excluded nodes. Jobs whose counts come out equal share
 * one object (plans are read, never written): a queue of 20,000 jobs with a few dozen shapes
 * would otherwise keep 20,000 copies alive to the end of the cycle.
 */
export class PendingExplainer {
  /** By shape, unguarded and guarded: the shape strings are hashed already (FitCache), so no key is built per job. */
  private readonly cache = [new Map<string, ShapeCounts>(), new Map<string, ShapeCounts>()] as const;
  /** Reasons as small numbers, for the trie (0: no reason). */
  private readonly reasonIds = new Map<string, number>();
  /**
   * A job's moves (reasons and counts, in order), reused from job to job: the arrays only
   * grow (`length = 0` would drop their storage, to be allocated again for the next job).
   */
  private readonly reasons: FilterStatus[] = [];
  private readonly amounts: number[] = [];
  private moveCount = 0;
  /** Whether an amount of the job's moves falls outside what the trie codes. */
  private wide = false;
  private readonly sink = (reason: FilterStatus, n: number): void => {
    const k = this.moveCount++;
    if (k < this.reasons.length) {
      this.reasons[k] = reason;
      this.amounts[k] = n;
    } else {
      this.reasons.push(reason);
      this.amounts.push(n);
    }
    if (!(Math.abs(n) < MOVE_SPAN / 2)) this.wide = true;
  };

  constructor(
    private readonly state: ClusterState,
    private readonly guard: ReservationGuard | undefined,
  ) {}

  explain(job: JobRequest, shape: string, fit: JobFit, guarded: boolean): RejectionCounts {
    const guard = guarded ? this.guard : undefined;
    const cache = this.cache[guarded ? 1 : 0];
    let base = cache.get(shape);
    if (!base) {
      const f = fit.shape ?? fit;
      const counts = { ...f.rejections };
      for (const [reason, n] of Object.entries(capacityRejections(this.state, job, f, guard, false, fit.capacity))) addCount(counts, reason, n);
      cache.set(shape, (base = { counts, moved: {} }));
    }
    if (!fit.moves && !fit.adjust) return base.counts;
    const { reasons, amounts } = this;
    this.moveCount = 0;
    this.wide = false;
    // A fit that only knows how to adjust counts: nothing to share.
    const start = fit.moves ? base.counts : fit.adjust!({ ...base.counts });
    fit.moves?.(this.sink);
    this.capacityMoves(job, fit, guard);
    const count = this.moveCount;
    if (!fit.moves || this.wide) {
      const out = fit.moves ? { ...start } : start;
      for (let k = 0; k < count; k++) addCount(out, reasons[k], amounts[k]!);
      return out;
    }
    // The moves decide the result (addCount is deterministic, key order included): look
    // them up in a trie of moves, without building a key.
    let node = base.moved;
    for (let k = 0; k < count; k++) {
      const reason = reasons[k];
      let id = reason === undefined ? 0 : this.reasonIds.get(reason);
      if (id === undefined) this.reasonIds.set(reason!, (id = this.reasonIds.size + 1));
      const code = id * MOVE_SPAN + amounts[k]! + MOVE_SPAN / 2;
      let next = node.next?.get(code);
      if (!next) (node.next ??= new Map()).set(code, (next = {}));
      node = next;
    }
    if (!node.counts) {
      const out = { ...base.counts };
      for (let k = 0; k < count; k++) addCount(out, reasons[k], amounts[k]!);
      node.counts = out;
    }
    return node.counts;
  }

  /** The excluded nodes leave the capacity reasons they were counted under. */
  private capacityMoves(job: JobRequest, fit: JobFit, guard: ReservationGuard | undefined): void {
    if (!fit.excluded?.length) return;
    const scenario = { free: this.state.freeCount, guard };
    const capacity = fit.capacity;
    for (const i of fit.excluded) {
      const reason = capacityReason(this.state, job, i, scenario, capacity);
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
