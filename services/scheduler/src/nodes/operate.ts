// An operator's cordon, uncordon, drain, quarantine or release, committed through the node's
// compare-and-set path (validated, recorded and published as a node event with the reason).
// The detector learns of quarantines and releases at its next window; the scheduling pass
// hands a quarantined node's jobs to recovery and completes drains.
import type { Node, OperateNodeRequest } from '@gantry/proto';
import type { HealthStore } from '@gantry/store';
import type { SchedulerContext } from '../context.js';
import { mutateNode } from '../jobs/mutate.js';
import { operateNode, operationName, type OperationOutcome } from './operations.js';

export class NodeNotFoundError extends Error {}

export async function applyNodeOperation(ctx: SchedulerContext, health: HealthStore, req: OperateNodeRequest, now = new Date()): Promise<Node> {
  let outcome: OperationOutcome | undefined;
  const committed = await mutateNode(ctx.nodes, req.name, (r) => {
    outcome = operateNode(r.node, req.operation, req.reason, now, req.drainTimeoutSeconds);
    return outcome && { next: outcome.next, reason: outcome.reason, event: true };
  });
  if (!committed) throw new NodeNotFoundError(`node ${req.name} not found`);
  if (outcome?.detector) await health.queueOperator({ node: req.name, action: outcome.detector, reason: req.reason });
  if (outcome) {
    ctx.log.info({ node: req.name, operation: operationName(req.operation), reason: req.reason, state: committed.node.state }, 'node operation');
    ctx.kick();
  }
  return committed.node;
}
