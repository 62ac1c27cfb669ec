import { describe, expect, it } from 'vitest';
import { Node, NodeOperation, NodeState, canTransitionNode } from '@gantry/proto';
import { NodeOperationError, operateNode } from '../../src/nodes/operations.js';
import { CONDITION, findCondition } from '../../src/nodes/conditions.js';

const now = new Date(Date.UTC(2026, 11, 2, 12, 0, 0));
const node = (extra: Partial<Node> = {}) => Node.create({ name: 'gpu-01', state: NodeState.NODE_STATE_READY, ...extra });
const O = NodeOperation;
const S = NodeState;

describe('operator node operations', () => {
  it('cordon keeps the state, sets the flag and a Cordoned condition; uncordon undoes it; both idempotent', () => {
    const c = operateNode(node(), O.NODE_OPERATION_CORDON, 'bad fan', now)!;
    expect(c.next).toMatchObject({ state: S.NODE_STATE_READY, cordoned: true });
    expect(findCondition(c.next, CONDITION.cordoned)).toMatchObject({ status: true, reason: 'OperatorCordon', message: 'bad fan', since: now });
    expect(c.reason).toBe('cordoned: bad fan');
    expect(operateNode(c.next, O.NODE_OPERATION_CORDON, 'again', now)).toBeUndefined();
    const u = operateNode(c.next, O.NODE_OPERATION_UNCORDON, 'fan replaced', now)!;
    expect(u.next.cordoned).toBe(false);
    expect(findCondition(u.next, CONDITION.cordoned)).toBeUndefined();
    expect(operateNode(u.next, O.NODE_OPERATION_UNCORDON, 'again', now)).toBeUndefined();
  });

  it('drain moves to DRAINING with an optional deadline; uncordon brings a drained node back', () => {
    const d = operateNode(node(), O.NODE_OPERATION_DRAIN, 'kernel update', now, 600)!;
    expect(d.next.state).toBe(S.NODE_STATE_DRAINING);
    expect(d.next.drainDeadline).toEqual(new Date(now.getTime() + 600_000));
    expect(findCondition(d.next, CONDITION.draining)).toMatchObject({ status: true, reason: 'OperatorDrain' });
    const back = operateNode({ ...d.next, state: S.NODE_STATE_DRAINED }, O.NODE_OPERATION_UNCORDON, 'updated', now)!;
    expect(back.next).toMatchObject({ state: S.NODE_STATE_READY, drainDeadline: undefined });
    expect(findCondition(back.next, CONDITION.draining)).toBeUndefined();
  });

  it('quarantine takes the node out at once and evicts its jobs; release brings it back READY and tells the detector', () => {
    const q = operateNode(node({ state: S.NODE_STATE_SUSPECT }), O.NODE_OPERATION_QUARANTINE, 'ECC storm', now)!;
    expect(q).toMatchObject({ evictJobs: true, detector: 'quarantine' });
    expect(q.next.state).toBe(S.NODE_STATE_QUARANTINED);
    expect(operateNode(q.next, O.NODE_OPERATION_QUARANTINE, 'again', now)).toBeUndefined();
    expect(() => operateNode(q.next, O.NODE_OPERATION_DRAIN, 'x', now)).toThrow(NodeOperationError);
    expect(() => operateNode(q.next, O.NODE_OPERATION_UNCORDON, 'x', now)).toThrow('release it instead');
    const r = operateNode(q.next, O.NODE_OPERATION_RELEASE, 'GPU swapped', now)!;
    expect(r).toMatchObject({ evictJobs: false, detector: 'release' });
    expect(r.next.state).toBe(S.NODE_STATE_READY);
    expect(findCondition(r.next, CONDITION.quarantined)).toBeUndefined();
    expect(() => operateNode(r.next, O.NODE_OPERATION_RELEASE, 'x', now)).toThrow('not quarantined or suspect');
  });

  it('a LOST node keeps the decision for when it returns, without evicting anything now', () => {
    const q = operateNode(node({ state: S.NODE_STATE_LOST, stateBeforeLost: S.NODE_STATE_READY }), O.NODE_OPERATION_QUARANTINE, 'dead PSU', now)!;
    expect(q.next).toMatchObject({ state: S.NODE_STATE_LOST, stateBeforeLost: S.NODE_STATE_QUARANTINED });
    expect(q.evictJobs).toBe(false);
  });

  it('every state an operation produces is a valid transition from where it started', () => {
    for (const from of [S.NODE_STATE_READY, S.NODE_STATE_SUSPECT, S.NODE_STATE_QUARANTINED, S.NODE_STATE_DRAINING, S.NODE_STATE_DRAINED]) {
      for (const op of [O.NODE_OPERATION_CORDON, O.NODE_OPERATION_UNCORDON, O.NODE_OPERATION_DRAIN, O.NODE_OPERATION_QUARANTINE, O.NODE_OPERATION_RELEASE]) {
        let out;
        try {
          out = operateNode(node({ state: from, cordoned: true }), op, 'r', now);
        } catch (err) {
          expect(err).toBeInstanceOf(NodeOperationError);
          continue;
        }
        if (out && out.next.state !== from) expect(canTransitionNode(from, out.next.state), `${S[from]} -> ${S[out.next.state]}`).toBe(true);
      }
    }
  });
});
