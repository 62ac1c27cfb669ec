// Fault signals that end a running attempt at once: a fatal XID on a GPU the job holds, a GPU
// gone from the node's inventory, a node that stopped heartbeating. Each moves the attempt to
// RECOVERING (or, while attribution has not run yet, adds the signal to it) in one
// compare-and-set, then stops the attempt's ranks.
import { JobState, type FaultSignal, type GpuAllocation, type Job } from '@gantry/proto';
import type { SchedulerContext } from '../context.js';
import { beginRecovery, isActive, liveRanks } from '../jobs/lifecycle.js';
import { mutateJob } from '../jobs/mutate.js';
import { stopLiveRanks } from '../dispatch/dispatcher.js';

/**
 * The job with the signal applied: an active attempt begins recovering, an undecided recovery
 * gains the signal; undefined when it does not concern the job (another attempt, no rank left
 * on the node, already known, or the job is past deciding).
 */
export function withFaultSignal(j: Job, attempt: number | undefined, signal: FaultSignal): Job | undefined {
  const undecided = j.state === JobState.JOB_STATE_RECOVERING && !j.recovery?.decided;
  if ((attempt !== undefined && j.attempt !== attempt) || !(isActive(j) || undecided)) return undefined;
  if (!liveRanks(j).some((p) => p.node === signal.node)) return undefined;
  const next = beginRecovery(j, new Date(), signal);
  return undecided && next.recovery?.signals.length === j.recovery?.signals.length ? undefined : next;
}

export const recoveringReason = (reason: string) => `${reason}; stopping the attempt and attributing the failure`;

/** After a signal was committed: stop the attempt's ranks and wake the loop. */
export function afterFaultSignal(ctx: SchedulerContext, job: Job, signal: FaultSignal): void {
  ctx.log.warn({ job: job.id, node: signal.node, kind: signal.kind, xid: signal.xid || undefined }, 'fault on a job; recovering');
  // Not awaited: a stop waits for the agent's reply, and the node at fault may not answer.
  void stopLiveRanks(ctx, job, job.reason, signal.kind === 'node-lost' ? signal.node : undefined);
  ctx.kick();
}

/** Signals the attempt `attempt` of `jobId` (when it is still current and running or undecided). */
export async function signalAttempt(ctx: SchedulerContext, jobId: string, attempt: number | undefined, signal: FaultSignal, reason: string): Promise<void> {
  const epoch = ctx.epoch();
  if (epoch === 0) return;
  let recovering: Job | undefined;
  await mutateJob(ctx.jobs, jobId, (r) => {
    recovering = withFaultSignal(r.job, attempt, signal);
    return recovering && { next: recovering, reason: recoveringReason(reason), epoch };
  });
  if (recovering) afterFaultSignal(ctx, recovering, signal);
}

/** Signals every job holding one of `allocations` (once per job). */
export async function signalHolders(ctx: SchedulerContext, allocations: GpuAllocation[], signal: FaultSignal, reason: string): Promise<void> {
  for (const { jobId, attempt } of new Map(allocations.map((a) => [a.jobId, a])).values()) await signalAttempt(ctx, jobId, attempt, signal, reason);
}
