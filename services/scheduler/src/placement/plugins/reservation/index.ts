// EASY backfill: a job behind the head may use a reserved node only if it ends before the
// reservation starts, or leaves enough GPUs there for the head (the node's slack).
import type { CapacityFilterPlugin, NodeFilter } from '../../framework/types.js';

export const reasonReserved = (jobId: string): string => `reserved for ${jobId}`;

export const fitsReservation = (slack: number, gpusPerNode: number, endsBefore: boolean): boolean => endsBefore || slack >= gpusPerNode;

export const notReserved: NodeFilter = (_node, job, ctx) => {
  const r = ctx?.reservation;
  return r === undefined || fitsReservation(r.slack, job.gpusPerNode, r.endsBefore) ? undefined : reasonReserved(r.jobId);
};

export const notReservedPlugin: CapacityFilterPlugin = {
  name: 'NotReserved',
  stage: 'capacity',
  admits: (scenario, i, gpus) => scenario.guard === undefined || fitsReservation(scenario.guard.slack[i]!, gpus, scenario.endsBefore ?? false),
  filter: notReserved,
};
