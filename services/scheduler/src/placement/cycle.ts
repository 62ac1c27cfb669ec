// One scheduling pass over the pending queue: first come, first served, placing each job in
// a working copy of the snapshot so later jobs see the GPUs earlier ones took.
import { placeGang } from './gang.js';
import type { JobRequest, NodeView, Plan } from './types.js';

export function orderQueue(pending: readonly JobRequest[]): JobRequest[] {
  return [...pending].sort((a, b) => b.priority - a.priority || a.submitTime - b.submitTime || a.id.localeCompare(b.id));
}

export function planCycle(nodes: readonly NodeView[], pending: readonly JobRequest[]): Plan {
  const working = new Map(nodes.map((n) => [n.name, { ...n, freeGpus: [...n.freeGpus] }]));
  const plan: Plan = { placements: [], unschedulable: [] };
  let position = 0;
  for (const job of orderQueue(pending)) {
    position += 1;
    const result = placeGang([...working.values()], job);
    if (!result.ok) {
      plan.unschedulable.push({ jobId: job.id, queuePosition: position, rejections: result.rejections, message: result.message });
      continue;
    }
    for (const r of result.ranks) {
      const n = working.get(r.node)!;
      n.freeGpus = n.freeGpus.filter((g) => !r.gpus.includes(g));
    }
    plan.placements.push({ jobId: job.id, ranks: result.ranks, domain: result.domain });
    position -= 1;
  }
  return plan;
}
