// Fault signals that end a running attempt at once: a fatal XID on a GPU the job holds, a GPU
// gone from the node's inventory, a node that stopped heartbeating. Each moves the attempt to
// RECOVERING (or, while attribution has not run yet, adds the signal to it) in one
// compare-and-set, then stops the attempt's ranks.
import { JobState, type FaultSignal, type GpuAllocation, type Job } from '@gantry/proto';
import type { SchedulerContext } from '../context.js';
import { beginRecovery, isActive, liveRanks } from '../jobs/lifecycle.js';
import { mutateJob } from '../jobs/mutate.js';
import { stopLiveRanks } from '../dispatch/dispatcher.js';

/** Signals the attempt `attempt` of `jobId` (when it is still current and running or undecided). */
export async function signalAttempt(ctx: SchedulerContext, jobId: string, attempt: number | undefined, signal: FaultSignal, reason: string): Promise<boolean> {
  const epoch = ctx.epoch();
  if (epoch === 0) return false;
  let recovering: Job | undefined;
  await mutateJob(ctx.jobs, jobId, (r) => {
    const j = r.job;
    const undecided = j.state === JobState.JOB_STATE_RECOVERING && !j.recovery?.decided;
    if ((attempt !== undefined && j.attempt !== attempt) || !(isActive(j) || undecided)) return undefined;
    // Only an attempt that still has ranks on the node is affected by it.
    if (!liveRanks(j).some((p) => p.node === signal.node)) return undefined;
    const next = beginRecovery(j, new Date(), signal);
    if (undecided && next.recovery?.signals.length === j.recovery?.signals.length) return undefined;
    recovering = next;
    return { next, reason: `${reason}; stopping the attempt and attributing the failure`, epoch };
  });
  if (!recovering) return false;
  ctx.log.warn({ job: jobId, node: signal.node, kind: signal.kind, xid: signal.xid || undefined }, 'fault on a job; recovering');
  // Not awaited: a stop waits for the agent's reply, and the node at fault may not answer.
  void stopLiveRanks(ctx, recovering, recovering.reason, signal.kind === 'node-lost' ? signal.node : undefined);
  ctx.kick();
  return true;
}

/** Signals every job holding one of `allocations` (once per job). */
export async function signalHolders(ctx: SchedulerContext, allocations: GpuAllocation[], signal: FaultSignal, reason: string): Promise<void> {
  for (const { jobId, attempt } of new Map(allocations.map((a) => [a.jobId, a])).values()) await signalAttempt(ctx, jobId, attempt, signal, reason);
}
