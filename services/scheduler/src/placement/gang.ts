// Gang placement: all requested nodes or none.
import { defaultFilters, type NodeFilter } from './filters.js';
import type { JobRequest, NodeView, PlaceResult, RejectionCounts } from './types.js';

export function placeGang(nodes: readonly NodeView[], job: JobRequest, filters: NodeFilter[] = defaultFilters): PlaceResult {
  const rejections: RejectionCounts = {};
  const feasible: NodeView[] = [];
  for (const node of nodes) {
    let reason: string | undefined;
    for (const f of filters) {
      reason = f(node, job);
      if (reason !== undefined) break;
    }
    if (reason === undefined) feasible.push(node);
    else rejections[reason] = (rejections[reason] ?? 0) + 1;
  }
  if (feasible.length < job.nodes) {
    return { ok: false, rejections, message: `needs ${job.nodes} nodes with ${job.gpusPerNode} free GPUs, ${feasible.length} fit` };
  }
  const chosen = feasible.slice(0, job.nodes);
  return {
    ok: true,
    domain: 'cluster',
    ranks: chosen.map((n, rank) => ({ rank, node: n.name, gpus: n.freeGpus.slice(0, job.gpusPerNode) })),
  };
}
