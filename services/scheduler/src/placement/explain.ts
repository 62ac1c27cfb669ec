// Explanations for `gantry job explain`: per-filter rejection counts, formatted the way the
// CLI prints them ("4,011 nodes: insufficient free GPUs; 60: gpu type H100 not in [B200];
// 3: quarantined").
import type { ClusterState } from './cluster-state.js';
import { capacityFilters, firstRejection, type FilterContext } from './filters.js';
import type { StaticFit } from './static-fit.js';
import { NOT_RESERVED, type ReservationGuard } from './topology.js';
import type { JobRequest, RejectionCounts } from './types.js';

const count = new Intl.NumberFormat('en-US');

/** Most frequent reason first; the first count says "nodes", the rest are understood. */
export function formatRejections(counts: RejectionCounts): string {
  const entries = Object.entries(counts)
    .filter(([, n]) => n > 0)
    .sort(([ra, a], [rb, b]) => b - a || (ra < rb ? -1 : ra > rb ? 1 : 0));
  return entries.map(([reason, n], k) => `${count.format(n)}${k === 0 ? (n === 1 ? ' node' : ' nodes') : ''}: ${reason}`).join('; ');
}

/**
 * Why each node cannot take the job now: the static reasons (computed once per job shape)
 * plus, for nodes that pass them, capacity and reservation reasons in the live state.
 */
export function explainRejections(state: ClusterState, job: JobRequest, fit: StaticFit, guard: ReservationGuard | undefined, endsBefore: boolean): RejectionCounts {
  const out: RejectionCounts = { ...fit.rejections };
  for (const i of fit.candidates) {
    const ctx: FilterContext = { free: state.freeCount[i]! };
    const slack = guard?.slack[i];
    if (guard && slack !== undefined && slack !== NOT_RESERVED) ctx.reservation = { jobId: guard.jobId, slack, endsBefore };
    const reason = firstRejection(capacityFilters, state.nodes[i]!, job, ctx);
    if (reason !== undefined) out[reason] = (out[reason] ?? 0) + 1;
  }
  return out;
}

/** "2026-11-25T10:00:00Z" in plain UTC, without milliseconds. */
export function formatTime(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z') : 'never';
}
