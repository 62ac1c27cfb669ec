// Operator decisions about a node (cordon, uncordon, drain, quarantine, release) as pure
// functions from the node to its next version. The caller commits the result through the
// node's compare-and-set path, which validates the state transition and records the event.
import { Node, NodeOperation, NodeState } from '@gantry/proto';
import { nodeStateName } from '@gantry/proto';
import { CONDITION, findCondition, withCondition, withoutCondition } from './conditions.js';

export class NodeOperationError extends Error {}

export interface OperationOutcome {
  next: Node;
  /** For the node event: what was done and why. */
  reason: string;
  /** The node was taken out of service at once: its jobs are handed to recovery. */
  evictJobs: boolean;
  /** What the health detector must learn (its holds and evidence follow the operator). */
  detector?: 'quarantine' | 'release';
}

export const OPERATION_NAMES: Readonly<Record<string, NodeOperation>> = {
  cordon: NodeOperation.NODE_OPERATION_CORDON,
  uncordon: NodeOperation.NODE_OPERATION_UNCORDON,
  drain: NodeOperation.NODE_OPERATION_DRAIN,
  quarantine: NodeOperation.NODE_OPERATION_QUARANTINE,
  release: NodeOperation.NODE_OPERATION_RELEASE,
};

export function operationName(op: NodeOperation): string {
  return Object.entries(OPERATION_NAMES).find(([, v]) => v === op)?.[0] ?? 'unknown';
}

const S = NodeState;
const state = (n: Node) => nodeStateName(n.state).toLowerCase();

/**
 * The node after `op`, or undefined when it is already so (no event is recorded). Throws
 * NodeOperationError when the operation makes no sense in the node's state.
 */
export function operateNode(node: Node, op: NodeOperation, reason: string, now: Date, drainTimeoutSeconds = 0): OperationOutcome | undefined {
  const why = reason.trim() || 'no reason given';
  const lost = node.state === S.NODE_STATE_LOST;
  // A LOST node keeps the operator's decision for when its agent comes back.
  const current = lost ? node.stateBeforeLost : node.state;
  const set = (to: NodeState, extra: Partial<Node>): Node => Node.create({
    ...node, ...extra, ...(lost ? { stateBeforeLost: to } : { state: to }),
  });
  switch (op) {
    case NodeOperation.NODE_OPERATION_CORDON: {
      if (node.cordoned) return undefined;
      const conditions = withCondition(node.conditions, { type: CONDITION.cordoned, status: true, reason: 'OperatorCordon', message: why }, now);
      return { next: Node.create({ ...node, cordoned: true, conditions }), reason: `cordoned: ${why}`, evictJobs: false };
    }
    case NodeOperation.NODE_OPERATION_UNCORDON: {
      if (current === S.NODE_STATE_QUARANTINED) throw new NodeOperationError(`node ${node.name} is quarantined: release it instead`);
      const draining = current === S.NODE_STATE_DRAINING || current === S.NODE_STATE_DRAINED;
      if (!node.cordoned && !draining) return undefined;
      let conditions = withoutCondition(node.conditions, CONDITION.cordoned);
      conditions = withoutCondition(conditions, CONDITION.draining);
      const to = draining ? S.NODE_STATE_READY : current;
      return { next: set(to, { cordoned: false, conditions, drainDeadline: undefined }), reason: `uncordoned: ${why}`, evictJobs: false };
    }
    case NodeOperation.NODE_OPERATION_DRAIN: {
      if (current === S.NODE_STATE_QUARANTINED) throw new NodeOperationError(`node ${node.name} is quarantined: release it before draining it`);
      if (current === S.NODE_STATE_REGISTERING) throw new NodeOperationError(`node ${node.name} is still registering`);
      const deadline = drainTimeoutSeconds > 0 ? new Date(now.getTime() + drainTimeoutSeconds * 1000) : undefined;
      const to = current === S.NODE_STATE_DRAINED ? S.NODE_STATE_DRAINED : S.NODE_STATE_DRAINING;
      const message = deadline ? `${why} (jobs still running at ${deadline.toISOString()} are moved)` : why;
      const conditions = withCondition(node.conditions, { type: CONDITION.draining, status: true, reason: 'OperatorDrain', message }, now);
      return { next: set(to, { conditions, drainDeadline: deadline }), reason: `drain: ${message}`, evictJobs: false };
    }
    case NodeOperation.NODE_OPERATION_QUARANTINE: {
      if (current === S.NODE_STATE_QUARANTINED && findCondition(node, CONDITION.quarantined)?.status) return undefined;
      if (current === S.NODE_STATE_REGISTERING) throw new NodeOperationError(`node ${node.name} is still registering`);
      const conditions = withCondition(node.conditions, { type: CONDITION.quarantined, status: true, reason: 'OperatorQuarantine', message: why }, now);
      return { next: set(S.NODE_STATE_QUARANTINED, { conditions, drainDeadline: undefined }), reason: `quarantined by operator: ${why}`, evictJobs: !lost, detector: 'quarantine' };
    }
    case NodeOperation.NODE_OPERATION_RELEASE: {
      if (current !== S.NODE_STATE_QUARANTINED && current !== S.NODE_STATE_SUSPECT) {
        throw new NodeOperationError(`node ${node.name} is ${state(node)}, not quarantined or suspect: nothing to release`);
      }
      let conditions = withoutCondition(node.conditions, CONDITION.quarantined);
      conditions = withoutCondition(conditions, CONDITION.held);
      conditions = withCondition(conditions, { type: CONDITION.healthy, status: true, reason: 'OperatorRelease', message: why }, now);
      return { next: set(S.NODE_STATE_READY, { conditions, healthScore: 0 }), reason: `released by operator: ${why}`, evictJobs: false, detector: 'release' };
    }
    default:
      throw new NodeOperationError(`operation must be one of ${Object.keys(OPERATION_NAMES).join(', ')}`);
  }
}
