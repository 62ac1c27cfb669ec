// Node feasibility filters, one module each under filters/. Each returns undefined when the
// node fits, or the reason it does not; reasons are counted per job so `gantry job explain`
// can say why a job waits ("4,011 nodes: insufficient free GPUs; 60: gpu type H100 not in
// [B200]; 3: quarantined").
//
// Static filters depend only on the node and the job, not on what runs there, so the cycle
// evaluates them once per job shape; capacity filters depend on the scenario (FilterContext).
import { freeGpus } from './filters/free-gpus.js';
import { gpuCount } from './filters/gpu-count.js';
import { gpuType } from './filters/gpu-type.js';
import { nodeReady } from './filters/node-ready.js';
import { nodeSelector } from './filters/node-selector.js';
import { notExcluded } from './filters/not-excluded.js';
import { notReserved } from './filters/reservation.js';
import type { FilterContext, NodeFilter } from './filters/types.js';
import type { JobRequest, NodeView } from './types.js';

export type { FilterContext, NodeFilter } from './filters/types.js';
export { nodeReady, READY } from './filters/node-ready.js';
export { notExcluded, REASON_EXCLUDED } from './filters/not-excluded.js';
export { gpuType, reasonGpuType } from './filters/gpu-type.js';
export { nodeSelector, reasonLabel } from './filters/node-selector.js';
export { gpuCount, reasonGpuCount } from './filters/gpu-count.js';
export { freeGpus, fitsFree, REASON_INSUFFICIENT_FREE } from './filters/free-gpus.js';
export { notReserved, fitsReservation, reasonReserved } from './filters/reservation.js';

/** The node has enough GPUs at all, and enough free ones (kept for callers of the FCFS API). */
export const enoughGpus: NodeFilter = (node, job, ctx) => gpuCount(node, job, ctx) ?? freeGpus(node, job, ctx);

/** Order matters: the first failing filter names the reason, so cheap and decisive ones go first. */
export const staticFilters: readonly NodeFilter[] = [nodeReady, notExcluded, gpuType, nodeSelector, gpuCount];
export const capacityFilters: readonly NodeFilter[] = [freeGpus, notReserved];
export const defaultFilters: NodeFilter[] = [...staticFilters, ...capacityFilters];

/** The first reason a node is rejected, or undefined if every filter passes. */
export function firstRejection(filters: readonly NodeFilter[], node: NodeView, job: JobRequest, ctx?: FilterContext): string | undefined {
  for (const f of filters) {
    const reason = f(node, job, ctx);
    if (reason !== undefined) return reason;
  }
  return undefined;
}
