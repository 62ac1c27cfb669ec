// Capacity now (or in the scenario the context describes, e.g. after preemption).
import type { CapacityFilterPlugin, NodeFilter } from '../../framework/types.js';

export const REASON_INSUFFICIENT_FREE = 'insufficient free GPUs';

export const fitsFree = (free: number, gpusPerNode: number): boolean => free >= gpusPerNode;

export const freeGpus: NodeFilter = (node, job, ctx) =>
  fitsFree(ctx?.free ?? node.freeGpus.length, job.gpusPerNode) ? undefined : REASON_INSUFFICIENT_FREE;

export const freeGpusPlugin: CapacityFilterPlugin = {
  name: 'FreeGpus',
  stage: 'capacity',
  admits: (scenario, i, gpus) => scenario.free[i]! >= gpus,
  filter: freeGpus,
};
