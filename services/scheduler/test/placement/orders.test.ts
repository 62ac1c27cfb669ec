// The planner's sorts read each job's keys once into arrays; they must give exactly the
// order of the plain comparators (the simple rule), ties and odd values included.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ClusterState,
  compareVictims,
  createCycleContext,
  MAX_NODE_SCORE,
  Plugins,
  orderQueue,
  priorityClassName,
  PRIORITY_CLASSES,
  resolveConfig,
  tenantConfig,
  victimOrder,
  fairShareDeficits,
  type JobRequest,
  type RunningJob,
} from '../../src/placement/index.js';
import { cluster, job } from './fixtures.js';

const TENANTS = ['a', 'b', 'c', 'd'];

describe('queue order', () => {
  it('is the order of the plain comparator', () => {
    const jobArb = fc.record({
      id: fc.constantFrom('j1', 'j2', 'j3', 'j10', 'x', 'X'),
      tenant: fc.constantFrom(...TENANTS),
      priority: fc.constantFrom(0, 250, 500, 500, 750, 1000, 501),
      submitTime: fc.integer({ min: 0, max: 5 }),
      recovery: fc.option(fc.boolean(), { nil: undefined }),
    });
    const usageArb = fc.dictionary(fc.constantFrom(...TENANTS), fc.integer({ min: 0, max: 1000 }));
    fc.assert(
      fc.property(fc.array(jobArb, { maxLength: 40 }), usageArb, fc.boolean(), (specs, usage, withContext) => {
        const pending: JobRequest[] = specs.map((s) => job(s.id, { ...s }));
        const config = resolveConfig({ tenants: { a: { weight: 3 }, b: { weight: 1 } } });
        const ctx = withContext ? { config, usage } : undefined;
        const deficit = ctx ? fairShareDeficits([...pending.map((j) => j.tenant), ...Object.keys(usage)], usage, (t) => tenantConfig(config, t).weight) : undefined;
        const expected = [...pending].sort(
          (a, b) =>
            b.priority - a.priority ||
            Number(b.recovery === true) - Number(a.recovery === true) ||
            (deficit ? (deficit.get(b.tenant) ?? 0) - (deficit.get(a.tenant) ?? 0) : 0) ||
            a.submitTime - b.submitTime ||
            (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
        );
        const got = orderQueue(pending, ctx);
        // The same objects in the same places (equal-looking jobs included).
        expect(got.length).toBe(expected.length);
        got.forEach((j, k) => expect(j).toBe(expected[k]));
      }),
      { numRuns: 300 },
    );
  });
});

describe('victim order', () => {
  it('is the order of compareVictims', () => {
    const runningArb = fc.record({
      id: fc.constantFrom('r1', 'r2', 'r3', 'r10'),
      priority: fc.constantFrom(0, 250, 500, 750),
      startTime: fc.integer({ min: 0, max: 4 }).map((h) => h * 3600_000),
      checkpoint: fc.option(fc.integer({ min: 0, max: 6 }).map((h) => h * 3600_000), { nil: undefined }),
      gpus: fc.integer({ min: 1, max: 4 }),
      ranks: fc.integer({ min: 1, max: 2 }),
      terminating: fc.option(fc.boolean(), { nil: undefined }),
    });
    fc.assert(
      fc.property(fc.array(runningArb, { maxLength: 40 }), fc.integer({ min: 0, max: 8 }), (specs, nowHours) => {
        const now = nowHours * 3600_000;
        const running: RunningJob[] = specs.map((s, k) => ({
          id: s.id,
          tenant: 't',
          priority: s.priority,
          ranks: Array.from({ length: s.ranks }, (_, r) => ({ rank: r, node: `n${k}-${r}`, gpus: Array.from({ length: s.gpus }, (_, g) => g) })),
          startTime: s.startTime,
          timeLimitSec: 3600,
          ...(s.checkpoint !== undefined ? { lastCheckpointTime: s.checkpoint } : {}),
          ...(s.terminating !== undefined ? { terminating: s.terminating } : {}),
        }));
        const expected = [...running].sort((a, b) => compareVictims(a, b, now));
        const got = victimOrder(running, now);
        expect(got.length).toBe(expected.length);
        got.forEach((j, k) => expect(j).toBe(expected[k]));
      }),
      { numRuns: 300 },
    );
  });
});

describe('combined preferences', () => {
  it('are shared by jobs with the same active scorers, and score as a fresh combination does', () => {
    const state = new ClusterState(cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 4 }));
    const cycle = createCycleContext({ state });
    const a = { score: (i: number) => (i === 0 ? 0 : MAX_NODE_SCORE), lowered: new Set([0]) };
    const b = { score: (i: number) => (i === 2 ? 40 : MAX_NODE_SCORE), lowered: new Set([2]) };
    const only = (j: JobRequest) => j.recovery === true;
    const plugins = Plugins.of({
      filters: [],
      scores: [
        { plugin: { name: 'A', prepare: () => a }, weight: 2 },
        { plugin: { name: 'B', prepare: (j) => (only(j) ? b : undefined) }, weight: 1 },
      ],
    });
    const first = plugins.preference(job('x', { recovery: true }), cycle)!;
    const second = plugins.preference(job('y', { recovery: true }), cycle)!;
    expect(second).toBe(first);
    expect([0, 1, 2, 3].map((i) => first.score(i))).toEqual([100, 300, 240, 300]);
    expect(first.max).toBe(300);
    expect([...first.lowered!].sort()).toEqual([0, 2]);
    // Another set of active scorers gets its own.
    const alone = plugins.preference(job('z'), cycle)!;
    expect(alone).not.toBe(first);
    expect([0, 1].map((i) => alone.score(i))).toEqual([0, 200]);
  });
});

describe('priority class names', () => {
  it('are the same when asked again', () => {
    for (const p of [0, 1, 250, 499, 500, 1000, 1200, -5]) expect(priorityClassName(p)).toBe(priorityClassName(p));
    expect(priorityClassName(PRIORITY_CLASSES.high)).toBe('high');
    expect(priorityClassName(PRIORITY_CLASSES.normal + 7)).toBe('normal+7');
    expect(priorityClassName(-5)).toBe('-5');
  });
});
