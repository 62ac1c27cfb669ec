// The naive baseline the benchmark compares against: strict FIFO by submit time, first fit
// (the first nodes in index order with enough free GPUs, the lowest GPU indices), no
// topology, no backfill (the queue stops at the first job that does not fit), no
// preemption, no quotas. It returns the same Plan shape as planCycle.
import type { DecisionTiming, JobRequest, NodeView, Plan } from '../src/placement/index.js';

export function baselineCycle(nodes: readonly NodeView[], pending: readonly JobRequest[], clock?: () => number): Plan {
  const free = nodes.map((n) => (n.state === 'READY' ? [...n.freeGpus] : []));
  const plan: Plan = { placements: [], unschedulable: [], timings: [] };
  const queue = [...pending].sort((a, b) => a.submitTime - b.submitTime || (a.id < b.id ? -1 : 1));
  let blocked = false;
  for (const job of queue) {
    const t0 = clock?.() ?? 0;
    let placed = false;
    if (!blocked) {
      const chosen: number[] = [];
      for (let i = 0; i < nodes.length && chosen.length < job.nodes; i++) {
        const n = nodes[i]!;
        if (free[i]!.length >= job.gpusPerNode && (job.gpuTypes.length === 0 || job.gpuTypes.includes(n.gpuModel))) chosen.push(i);
      }
      if (chosen.length === job.nodes) {
        const ranks = chosen.map((i, rank) => ({ rank, node: nodes[i]!.name, gpus: free[i]!.splice(0, job.gpusPerNode) }));
        plan.placements.push({ jobId: job.id, ranks, domain: 'cluster' });
        placed = true;
      } else {
        blocked = true;
      }
    }
    if (!placed) plan.unschedulable.push({ jobId: job.id, queuePosition: plan.unschedulable.length + 1, rejections: {}, message: 'FIFO' });
    const timing: DecisionTiming = { jobId: job.id, nodes: job.nodes, gpusPerNode: job.gpusPerNode, placed, ms: (clock?.() ?? 0) - t0 };
    plan.timings!.push(timing);
  }
  return plan;
}
