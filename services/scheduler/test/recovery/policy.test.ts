import { describe, expect, it } from 'vitest';
import { FailureClass, Job, JobSpec, RankPlacement, RecoveryGrade, RetryPolicy } from '@gantry/proto';
import { DEFAULT_CONFIG, parseSchedulingConfig } from '../../src/placement/index.js';
import { backoffMs, decideRecovery, resolveRetryPolicy } from '../../src/recovery/policy.js';
import type { Attribution } from '../../src/recovery/attribution.js';

const now = new Date('2026-12-01T12:00:00Z');
const placement = ['a', 'b', 'c'].map((node, rank) => RankPlacement.create({ rank, node, gpuIndices: [0] }));
const job = (retry?: RetryPolicy, recoveries = 0) => Job.create({ id: 'j', recoveries, spec: JobSpec.create({ nodes: 3, gpusPerNode: 1, retry }) });
const attribution = (failureClass: FailureClass, faultyNodes: string[] = []): Attribution => ({ failureClass, reason: 'x', node: faultyNodes[0] ?? 'a', signal: '', evidence: '', time: now, faultyNodes });
const defaults = resolveRetryPolicy(undefined, DEFAULT_CONFIG.recovery);

describe('retry policy', () => {
  it('out of the box retries node, infrastructure and contained GPU faults up to 3 times, not application errors', () => {
    expect(defaults.maxRecoveries).toBe(3);
    expect([...defaults.retryOn].sort()).toEqual([FailureClass.FAILURE_CLASS_NODE_FAULT, FailureClass.FAILURE_CLASS_INFRASTRUCTURE, FailureClass.FAILURE_CLASS_GPU_CONTAINED, FailureClass.FAILURE_CLASS_HANG].sort());
    const d = decideRecovery(job(), placement, attribution(FailureClass.FAILURE_CLASS_APPLICATION), defaults, new Set(), now, 0);
    expect(d).toEqual({ retry: false, reason: 'application failures are not retried by the job\'s retry policy' });
  });

  it('takes the job\'s own policy over the defaults', () => {
    const p = resolveRetryPolicy(RetryPolicy.create({ maxRecoveries: 5, retryOn: [FailureClass.FAILURE_CLASS_APPLICATION], backoffInitialMs: 10 }), DEFAULT_CONFIG.recovery);
    expect(p).toMatchObject({ maxRecoveries: 5, backoffInitialMs: 10, backoffMaxMs: DEFAULT_CONFIG.recovery.backoffMaxMs });
    expect([...p.retryOn]).toEqual([FailureClass.FAILURE_CLASS_APPLICATION]);
  });

  it('stops when the budget is spent', () => {
    const d = decideRecovery(job(undefined, 3), placement, attribution(FailureClass.FAILURE_CLASS_NODE_FAULT, ['b']), defaults, new Set(), now, 0);
    expect(d).toEqual({ retry: false, reason: 'recovery budget spent (3 of 3)' });
  });

  it('backs off exponentially, capped, with jitter', () => {
    const p = { ...defaults, backoffInitialMs: 1_000, backoffMaxMs: 5_000, backoffJitter: 0.5 };
    expect([0, 1, 2, 3, 10].map((n) => backoffMs(p, n, 0))).toEqual([1_000, 2_000, 4_000, 5_000, 5_000]);
    expect(backoffMs(p, 0, 0.999)).toBe(1_500);
  });

  it('grades cheapest first: in place on healthy nodes, replace only the faulty node, else the whole gang', () => {
    const app = resolveRetryPolicy(RetryPolicy.create({ retryOn: [FailureClass.FAILURE_CLASS_APPLICATION, FailureClass.FAILURE_CLASS_NODE_FAULT] }), DEFAULT_CONFIG.recovery);
    const inPlace = decideRecovery(job(), placement, attribution(FailureClass.FAILURE_CLASS_APPLICATION), app, new Set(), now, 0);
    expect(inPlace).toMatchObject({ retry: true, grade: RecoveryGrade.RECOVERY_GRADE_RESTART_IN_PLACE, keep: placement, faultyNodes: [] });
    const replace = decideRecovery(job(), placement, attribution(FailureClass.FAILURE_CLASS_NODE_FAULT, ['b']), app, new Set(), now, 0);
    expect(replace).toMatchObject({ retry: true, grade: RecoveryGrade.RECOVERY_GRADE_REPLACE_NODES, faultyNodes: ['b'] });
    expect(replace.retry && replace.keep.map((k) => k.node)).toEqual(['a', 'c']);
    // An application error while another node of the gang went unhealthy: that node is replaced too.
    const unhealthy = decideRecovery(job(), placement, attribution(FailureClass.FAILURE_CLASS_APPLICATION), app, new Set(['c']), now, 0);
    expect(unhealthy).toMatchObject({ grade: RecoveryGrade.RECOVERY_GRADE_REPLACE_NODES, faultyNodes: ['c'] });
    const gang = decideRecovery(job(), placement.slice(0, 1), attribution(FailureClass.FAILURE_CLASS_NODE_FAULT, ['a']), app, new Set(), now, 0);
    expect(gang).toMatchObject({ grade: RecoveryGrade.RECOVERY_GRADE_REPLACE_GANG, keep: [] });
    expect(gang.retry && gang.notBefore.getTime() - now.getTime()).toBe(DEFAULT_CONFIG.recovery.backoffInitialMs);
  });

  it('is configured in the scheduling config, with every problem reported', () => {
    const c = parseSchedulingConfig({ recovery: { maxRecoveries: 5, retryOn: ['node-fault', 'application'] }, spares: { pools: [{ gpuType: 'H100', count: 1 }] } });
    expect(c.recovery).toMatchObject({ maxRecoveries: 5, retryOn: ['node-fault', 'application'], settleMs: DEFAULT_CONFIG.recovery.settleMs });
    expect(c.spares.pools).toEqual([{ gpuType: 'H100', count: 1 }]);
    let message = '';
    try {
      parseSchedulingConfig({ recovery: { maxRecoveries: -1, retryOn: ['cosmic-rays'], backoffJitter: 2 } });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('recovery.maxRecoveries: expected an integer >= 0, got -1');
    expect(message).toContain('recovery.retryOn[0]: expected one of node-fault, infrastructure, application, gpu-contained, hang, got "cosmic-rays"');
    expect(message).toContain('recovery.backoffJitter: expected a number between 0 and 1, got 2');
  });
});
