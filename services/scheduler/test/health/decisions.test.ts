import { describe, expect, it } from 'vitest';
import { Node, NodeState } from '@gantry/proto';
import { DEFAULT_HEALTH_CONFIG, type NodeDecision } from '../../src/health/index.js';
import { applyHealthDecision } from '../../src/health-monitor/decisions.js';
import { CONDITION, findCondition } from '../../src/nodes/conditions.js';
import { operateNode } from '../../src/nodes/operations.js';
import { NodeOperation } from '@gantry/proto';

const now = new Date(Date.UTC(2026, 11, 2, 12, 0, 0));
const S = NodeState;
const node = (extra: Partial<Node> = {}) => Node.create({ name: 'gpu-01', state: S.NODE_STATE_READY, ...extra });
const reason = { signal: 'gpu.ecc_sbe_rate', value: 120, baseline: 2, peerMedian: 3, zOwn: 9, weight: 1.5, contribution: 5.1, gpu: 3 };
const decision = (extra: Partial<NodeDecision> = {}): NodeDecision => ({
  node: 'gpu-01', status: 'READY', score: 0, reasons: [], transitions: [], actions: [], lemon: false, ...extra,
});

describe('health decisions on node records', () => {
  it('a quiet node changes nothing after its first Healthy condition', () => {
    const first = applyHealthDecision(node(), decision(), DEFAULT_HEALTH_CONFIG, now)!;
    expect(findCondition(first.next, CONDITION.healthy)).toMatchObject({ status: true, reason: 'ScoreBelowThreshold' });
    expect(applyHealthDecision(first.next, decision(), DEFAULT_HEALTH_CONFIG, new Date(now.getTime() + 60_000))).toBeUndefined();
  });

  it('SUSPECT then QUARANTINED with the reasons as evidence; only the quarantine evicts jobs', () => {
    const s = applyHealthDecision(node(), decision({ status: 'SUSPECT', score: 5, reasons: [reason] }), DEFAULT_HEALTH_CONFIG, now)!;
    expect(s).toMatchObject({ evictJobs: false });
    expect(s.next.state).toBe(S.NODE_STATE_SUSPECT);
    const healthy = findCondition(s.next, CONDITION.healthy)!;
    expect(healthy).toMatchObject({ status: false, reason: 'ScoreAboveSuspect' });
    expect(healthy.evidence[0]).toBe('gpu.ecc_sbe_rate=120 (own 2, peers 3) +5.1 GPU 3');
    const q = applyHealthDecision(s.next, decision({ status: 'QUARANTINED', score: 14, reasons: [reason] }), DEFAULT_HEALTH_CONFIG, now)!;
    expect(q).toMatchObject({ evictJobs: true });
    expect(q.next).toMatchObject({ state: S.NODE_STATE_QUARANTINED, healthScore: 14 });
    expect(q.reason).toMatch(/^ScoreAboveQuarantine: score 14.0 \(quarantine at 12\)/);
  });

  it('a hold shows as a Held condition; drain-after-job drains the node instead of quarantining it', () => {
    const held = decision({ status: 'QUARANTINED', score: 20, hold: { action: 'reboot', reason: 'XID 79 on GPU 3: reboot', sinceMs: now.getTime() } });
    const q = applyHealthDecision(node(), held, DEFAULT_HEALTH_CONFIG, now)!;
    expect(findCondition(q.next, CONDITION.held)).toMatchObject({ status: true, reason: 'Reboot', message: 'XID 79 on GPU 3: reboot' });
    const drain = decision({ status: 'SUSPECT', score: 3, hold: { action: 'drain-after-job', reason: 'XID 156: drain-after-job', sinceMs: now.getTime() } });
    const d = applyHealthDecision(node(), drain, DEFAULT_HEALTH_CONFIG, now)!;
    expect(d.next.state).toBe(S.NODE_STATE_DRAINING);
    expect(findCondition(d.next, CONDITION.draining)).toMatchObject({ reason: 'XidDrainAfterJob' });
  });

  it('never lifts an operator quarantine or drain, and leaves LOST nodes alone, but a hard fault quarantines a draining node', () => {
    const quarantined = operateNode(node(), NodeOperation.NODE_OPERATION_QUARANTINE, 'ops', now)!.next;
    expect(applyHealthDecision(quarantined, decision(), DEFAULT_HEALTH_CONFIG, now)?.next.state ?? quarantined.state).toBe(S.NODE_STATE_QUARANTINED);
    const draining = operateNode(node(), NodeOperation.NODE_OPERATION_DRAIN, 'ops', now)!.next;
    expect(applyHealthDecision(draining, decision(), DEFAULT_HEALTH_CONFIG, now)?.next.state ?? draining.state).toBe(S.NODE_STATE_DRAINING);
    expect(applyHealthDecision(draining, decision({ status: 'QUARANTINED', score: 30 }), DEFAULT_HEALTH_CONFIG, now)!.next.state).toBe(S.NODE_STATE_QUARANTINED);
    const lost = node({ state: S.NODE_STATE_LOST });
    expect(applyHealthDecision(lost, decision({ status: 'QUARANTINED', score: 30 }), DEFAULT_HEALTH_CONFIG, now)!.next.state).toBe(S.NODE_STATE_LOST);
  });

  it('marks a repeat offender and clears the mark with the flag', () => {
    const l = applyHealthDecision(node(), decision({ lemon: true }), DEFAULT_HEALTH_CONFIG, now)!;
    expect(l.next.lemon).toBe(true);
    expect(findCondition(l.next, CONDITION.repeatOffender)?.status).toBe(true);
    const cleared = applyHealthDecision(l.next, decision(), DEFAULT_HEALTH_CONFIG, now)!;
    expect(cleared.next.lemon).toBe(false);
    expect(findCondition(cleared.next, CONDITION.repeatOffender)).toBeUndefined();
  });
});
