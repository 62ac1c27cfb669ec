// What a node's state asks of the jobs on it, level-triggered every scheduling pass (so a
// decision taken on a standby replica, or lost with a leader, still takes effect):
//   - QUARANTINED: the jobs still on it are handed to recovery as a node fault;
//   - DRAINING with no job left: DRAINED;
//   - DRAINING past an operator's deadline: the jobs still on it are moved the way a
//     preemption moves them (stopped, then requeued without using their recovery budget).
import { FailureClass, FaultSignal, NodeState, type Job } from '@gantry/proto';
import type { NodeRecord } from '@gantry/store';
import type { SchedulerContext } from '../context.js';
import { isActive, preemptJob } from '../jobs/lifecycle.js';
import { mutateJob, mutateNode } from '../jobs/mutate.js';
import { stopLiveRanks } from '../dispatch/dispatcher.js';
import { signalHolders } from '../recovery/triggers.js';

export async function enforceNodeStates(ctx: SchedulerContext, nodes: NodeRecord[], epoch: number, now: Date): Promise<void> {
  for (const rec of nodes) {
    if (rec.node.state === NodeState.NODE_STATE_QUARANTINED && rec.allocations.length > 0) {
      // Already-recovering jobs ignore a signal they have; a job's ranks stop once.
      const why = rec.node.reason || 'quarantined';
      const signal = FaultSignal.create({ kind: 'quarantine', node: rec.node.name, detail: `node ${rec.node.name} quarantined: ${why}`, time: now, failureClass: FailureClass.FAILURE_CLASS_NODE_FAULT });
      await signalHolders(ctx, rec.allocations, signal, `node ${rec.node.name} quarantined: ${why}`);
      continue;
    }
    if (rec.node.state !== NodeState.NODE_STATE_DRAINING) continue;
    if (rec.allocations.length === 0) {
      await mutateNode(ctx.nodes, rec.node.name, (r) => (r.node.state === NodeState.NODE_STATE_DRAINING && r.allocations.length === 0
        ? { next: { ...r.node, state: NodeState.NODE_STATE_DRAINED }, reason: 'drained: no job left on the node', epoch }
        : undefined));
      ctx.log.info({ node: rec.node.name }, 'node drained');
      continue;
    }
    const deadline = rec.node.drainDeadline;
    if (!deadline || deadline > now) continue;
    const reason = `node ${rec.node.name} is being drained (deadline ${deadline.toISOString()} passed): moved elsewhere`;
    for (const jobId of new Set(rec.allocations.map((a) => a.jobId))) {
      let moved: Job | undefined;
      await mutateJob(ctx.jobs, jobId, (r) => {
        if (!isActive(r.job)) return undefined;
        moved = preemptJob(r.job, reason, now);
        return { next: moved, reason, epoch };
      });
      if (!moved) continue;
      ctx.log.info({ job: jobId, node: rec.node.name }, 'moving a job off a drained node');
      void stopLiveRanks(ctx, moved, reason);
    }
  }
}
