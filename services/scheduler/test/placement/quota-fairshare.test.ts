import { describe, expect, it } from 'vitest';
import {
  accrue,
  accrueUsage,
  decayUsage,
  fairShareDeficits,
  orderQueue,
  planCycle,
  PRIORITY_CLASSES,
  priorityOf,
  QuotaLedger,
  resolveConfig,
  usageAt,
} from '../../src/placement/index.js';
import { cluster, job, occupy } from './fixtures.js';

const HOUR = 3600;

describe('priority classes', () => {
  it('maps names to numbers and rejects unknown ones', () => {
    expect(priorityOf('critical')).toBeGreaterThan(priorityOf('high'));
    expect(priorityOf('low')).toBeGreaterThan(priorityOf('preemptible'));
    expect(priorityOf('')).toBe(PRIORITY_CLASSES.normal);
    expect(() => priorityOf('urgent')).toThrow(/unknown priority class "urgent"/);
  });
});

describe('usage accounting', () => {
  it('halves usage every half-life', () => {
    expect(decayUsage(100, 0, 3600_000, HOUR)).toBeCloseTo(50);
    expect(decayUsage(100, 0, 7200_000, HOUR)).toBeCloseTo(25);
  });

  it('integrates a constant allocation exactly, however often it is called', () => {
    const once = accrue({ gpuSeconds: 0, at: 0 }, 8, 4 * 3600_000, HOUR);
    let stepwise = { gpuSeconds: 0, at: 0 };
    for (let t = 1; t <= 240; t++) stepwise = accrue(stepwise, 8, t * 60_000, HOUR);
    expect(stepwise.gpuSeconds).toBeCloseTo(once.gpuSeconds, 6);
    // Approaches gpus * h / ln 2 for a long steady allocation.
    const steady = accrue({ gpuSeconds: 0, at: 0 }, 8, 100 * 3600_000, HOUR);
    expect(steady.gpuSeconds).toBeCloseTo((8 * HOUR) / Math.LN2, 3);
  });

  it('accrues per tenant and reads decayed values at a later time', () => {
    const records = accrueUsage({}, { a: 8, b: 16 }, 0, HOUR);
    // A tenant seen for the first time has no history yet.
    expect(records).toEqual({ a: { gpuSeconds: 0, at: 0 }, b: { gpuSeconds: 0, at: 0 } });
    const later = accrueUsage(records, { a: 8, b: 16 }, 3600_000, HOUR);
    expect(later.a!.gpuSeconds).toBeGreaterThan(0);
    expect(later.b!.gpuSeconds).toBeCloseTo(later.a!.gpuSeconds * 2, 6);
    expect(usageAt(later, 7200_000, HOUR).a).toBeCloseTo(later.a!.gpuSeconds / 2);
  });

  it('ranks the under-served tenant first by deficit against its weight', () => {
    const d = fairShareDeficits(['a', 'b'], { a: 300, b: 100 }, (t) => (t === 'a' ? 3 : 1));
    expect(d.get('a')).toBeCloseTo(0);
    expect(d.get('b')).toBeCloseTo(0);
    const e = fairShareDeficits(['a', 'b'], { a: 300, b: 100 }, () => 1);
    expect(e.get('b')! > e.get('a')!).toBe(true);
  });

  it('orders by priority, then fair-share deficit, then submit time', () => {
    const config = resolveConfig({ tenants: { heavy: { weight: 1 }, light: { weight: 1 } } });
    const q = orderQueue(
      [
        job('heavy-early', { tenant: 'heavy', submitTime: 1 }),
        job('light-late', { tenant: 'light', submitTime: 5 }),
        job('heavy-high', { tenant: 'heavy', submitTime: 9, priority: PRIORITY_CLASSES.high }),
        job('light-early', { tenant: 'light', submitTime: 2 }),
      ],
      { config, usage: { heavy: 1000, light: 10 } },
    );
    expect(q.map((j) => j.id)).toEqual(['heavy-high', 'light-early', 'light-late', 'heavy-early']);
  });

  it('puts a recovery attempt first within its priority: it comes back to GPUs it just left', () => {
    const config = resolveConfig({ tenants: { heavy: { weight: 1 }, light: { weight: 1 } } });
    const q = orderQueue(
      [job('light-early', { tenant: 'light', submitTime: 1 }), job('heavy-recovering', { tenant: 'heavy', submitTime: 9, recovery: true }), job('top', { submitTime: 10, priority: PRIORITY_CLASSES.high })],
      { config, usage: { heavy: 1000, light: 10 } },
    );
    expect(q.map((j) => j.id)).toEqual(['top', 'heavy-recovering', 'light-early']);
  });
});

describe('quotas and borrowing', () => {
  const config = resolveConfig({
    tenants: {
      ml: { weight: 1, nominalGpus: 16, cohort: 'shared' },
      infer: { weight: 1, nominalGpus: 16, cohort: 'shared', borrowingLimitGpus: 8 },
      solo: { weight: 1, nominalGpus: 8 },
    },
  });

  it('admits within nominal, borrows idle cohort quota up to the limit, explains refusals', () => {
    const l = new QuotaLedger(config);
    expect(l.admit('ml', 16)).toEqual({ ok: true, borrowed: 0 });
    expect(l.admit('ml', 24)).toEqual({ ok: true, borrowed: 8 });
    expect(l.admit('infer', 24)).toEqual({ ok: true, borrowed: 8 });
    expect(l.admit('infer', 32)).toMatchObject({ ok: false, message: expect.stringContaining('would borrow 16 > limit 8') });
    l.charge('solo', 8);
    expect(l.admit('solo', 1)).toEqual({ ok: false, message: 'tenant solo at 8/8 GPUs nominal, borrowing disabled (no cohort)' });
    l.charge('infer', 16);
    l.charge('ml', 16);
    expect(l.admit('ml', 8)).toMatchObject({ ok: false, message: expect.stringContaining('cohort shared at 32/32 GPUs') });
  });

  it('places jobs up to quota and reports the quota state for the rest', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 2, nodesPerLeaf: 4 });
    const plan = planCycle(nodes, [job('a', { tenant: 'solo' }), job('b', { tenant: 'solo', submitTime: 1 })], { config });
    expect(plan.placements.map((p) => p.jobId)).toEqual(['a']);
    expect(plan.unschedulable[0]).toMatchObject({ jobId: 'b', reason: 'quota', quota: 'tenant solo at 8/8 GPUs nominal, borrowing disabled (no cohort)' });
  });

  it('marks borrowed GPUs on the placement', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 2, nodesPerLeaf: 4 });
    const plan = planCycle(nodes, [job('a', { tenant: 'ml', nodes: 3 })], { config });
    expect(plan.placements[0]).toMatchObject({ borrowedGpus: 8 });
    expect(plan.placements[0]!.explanation).toContain('borrows 8 GPUs from cohort shared');
  });

  it('reclaims borrowed GPUs by preemption when the lender needs its nominal quota', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 4 });
    // ml borrows: 4 nodes = 32 GPUs against a nominal 16; infer (nominal 16) now wants 8.
    const running = [0, 1, 2, 3].map((i) => occupy(nodes, `ml-${i}`, { [nodes[i]!.name]: [0, 1, 2, 3, 4, 5, 6, 7] }, { tenant: 'ml', startTime: i * 1000 }));
    const plan = planCycle(nodes, [job('inf', { tenant: 'infer', priority: PRIORITY_CLASSES.normal })], { config, running, now: 10_000 });
    expect(plan.preemptions).toHaveLength(1);
    expect(plan.preemptions[0]!.reason).toBe('reclaiming quota lent to tenant ml in cohort shared');
    // The most recently started job loses the least work.
    expect(plan.preemptions[0]!.jobId).toBe('ml-3');
    expect(plan.unschedulable[0]).toMatchObject({ reason: 'waiting-for-preemption' });
  });

  it('does not reclaim for a tenant that would itself be borrowing', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 4 });
    const running = [0, 1, 2, 3].map((i) => occupy(nodes, `ml-${i}`, { [nodes[i]!.name]: [0, 1, 2, 3, 4, 5, 6, 7] }, { tenant: 'ml' }));
    const plan = planCycle(nodes, [job('inf', { tenant: 'infer', nodes: 3 })], { config, running, now: 10_000 });
    expect(plan.preemptions).toEqual([]);
  });
});
