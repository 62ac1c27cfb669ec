// EASY backfill: a job behind the head may use a reserved node only if it ends before the
// reservation starts, or leaves enough GPUs there for the head (the node's slack).
import type { NodeFilter } from './types.js';

export const reasonReserved = (jobId: string): string => `reserved for ${jobId}`;

export const fitsReservation = (slack: number, gpusPerNode: number, endsBefore: boolean): boolean => endsBefore || slack >= gpusPerNode;

export const notReserved: NodeFilter = (_node, job, ctx) => {
  const r = ctx?.reservation;
  return r === undefined || fitsReservation(r.slack, job.gpusPerNode, r.endsBefore) ? undefined : reasonReserved(r.jobId);
};
