// The shortcuts that keep exclusion lists cheap give the same answers as the simple rule
// (a node is out when the job's list names it): selection skips a job's exclusions by
// walking them beside the shape's candidates, the planner takes a named node's verdict from
// the filter's declared reason instead of calling it, and failures remembered for one list
// are found by a hash of its indices.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ClusterState,
  computeStaticFit,
  createCycleContext,
  DEFAULT_PLUGINS,
  notExcludedPlugin,
  planCycle,
  Plugins,
  resolveConfig,
  selectNodes,
  type JobFilterPlugin,
  type JobFit,
  type JobRequest,
  type NodeView,
  type PluginRegistry,
  type RunningJob,
  type TopologyNeed,
} from '../../src/placement/index.js';
import { FailureMemo, listHash } from '../../src/placement/memo.js';
import { job } from './fixtures.js';

const NOW = 10 * 3600_000;

/** Up to 3 spines x 3 leaves x 6 nodes (or more leaves of fewer nodes), two models, some not READY, random free GPUs. */
const clusterOf = (maxLeaves: number, maxPerLeaf: number) => fc
  .record({
    spines: fc.integer({ min: 1, max: 3 }),
    leaves: fc.integer({ min: 1, max: maxLeaves }),
    perLeaf: fc.integer({ min: 1, max: maxPerLeaf }),
    nvl: fc.integer({ min: 1, max: 2 }),
  })
  .chain((s) => {
    const count = s.spines * s.leaves * s.perLeaf;
    const node = fc.record({ ready: fc.double({ min: 0, max: 1, noNaN: true }), model: fc.constantFrom('A', 'B'), free: fc.integer({ min: 0, max: 8 }) });
    return fc.array(node, { minLength: count, maxLength: count }).map((attrs) =>
      attrs.map(
        (a, i): NodeView => ({
          name: `n${i}`,
          state: a.ready < 0.85 ? 'READY' : a.ready < 0.93 ? 'QUARANTINED' : 'DRAINING',
          gpuModel: a.model,
          gpuCount: 8,
          freeGpus: Array.from({ length: a.free }, (_, g) => g),
          labels: {},
          topology: { nvlinkDomain: `nvl${Math.floor(i / s.nvl)}`, leafSwitch: `leaf${Math.floor(i / s.perLeaf)}`, spine: `spine${Math.floor(i / (s.perLeaf * s.leaves))}`, rack: `rack${i}` },
        }),
      ),
    );
  });

const clusterArb = clusterOf(3, 6);

const jobArb = (nodes: readonly NodeView[]) =>
  fc.record({
    id: fc.uuid(),
    nodes: fc.integer({ min: 1, max: 6 }),
    gpusPerNode: fc.integer({ min: 1, max: 8 }),
    gpuTypes: fc.subarray(['A', 'B']),
    topology: fc.constantFrom<TopologyNeed>('any', 'any', 'same-nvlink-domain', 'same-switch', 'same-spine'),
    // Names in any order, repeats and names not in the snapshot included.
    excludeNodes: fc.array(fc.oneof(fc.constantFrom(...nodes.map((n) => n.name)), fc.constant('gone')), { maxLength: 6 }),
    timeLimitSec: fc.constantFrom(0, 3600),
    submitTime: fc.integer({ min: 0, max: 1000 }),
  }).map((j) => job(j.id, j));

/** The simple rule: the shape's fit with every node the job names struck out, as one plain fit. */
function simpleFit(state: ClusterState, j: JobRequest, fit: JobFit): JobFit {
  const base = fit.shape ?? fit;
  const mask = base.mask.slice();
  state.nodes.forEach((n, i) => {
    if (j.excludeNodes.includes(n.name)) mask[i] = 0;
  });
  const candidates = Int32Array.from(Array.from(base.candidates).filter((i) => mask[i] === 1));
  return { mask, candidates, models: base.models, rejections: {}, ...(fit.capacity ? { capacity: fit.capacity } : {}), ...(fit.prefer ? { prefer: fit.prefer } : {}) };
}

/** NotExcluded without its declared reason: the planner then calls the filter for every named node. */
const withoutDeclaredReason: PluginRegistry = {
  ...DEFAULT_PLUGINS,
  filters: DEFAULT_PLUGINS.filters.map((f) => {
    if (f !== notExcludedPlugin) return f;
    const { rejects: _, ...rest } = notExcludedPlugin;
    return rest as JobFilterPlugin;
  }),
};

describe('exclusion lists: shortcuts against the simple rule', () => {
  it('selects the same nodes, or fails the same way, as a fit with the excluded nodes struck out', () => {
    fc.assert(
      fc.property(clusterArb.chain((nodes) => fc.tuple(fc.constant(nodes), fc.array(jobArb(nodes), { minLength: 1, maxLength: 6 }))), ([nodes, jobs]) => {
        const state = new ClusterState(nodes);
        for (const j of jobs) {
          const fit = computeStaticFit(state, j);
          const plain = simpleFit(state, j, fit);
          expect(Array.from(fit.candidates)).toEqual(Array.from(plain.candidates));
          // On the live state (single-node fast path) and on a copy (the general path).
          expect(selectNodes(state, j, fit, { free: state.freeCount })).toEqual(selectNodes(state, j, plain, { free: state.freeCount }));
          expect(selectNodes(state, j, fit, { free: state.freeCountsCopy() })).toEqual(selectNodes(state, j, plain, { free: state.freeCountsCopy() }));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('takes for a single node the node the general path takes (leaves picked one by one, then sorted)', () => {
    fc.assert(
      fc.property(clusterOf(8, 2).chain((nodes) => fc.tuple(fc.constant(nodes), fc.array(jobArb(nodes), { minLength: 1, maxLength: 6 }))), ([nodes, jobs]) => {
        const state = new ClusterState(nodes);
        fc.pre(state.maxNvlSize <= 1);
        for (const j of jobs.map((x) => ({ ...x, nodes: 1 }))) {
          const fit = computeStaticFit(state, j);
          const fast = selectNodes(state, j, fit, { free: state.freeCount });
          const general = selectNodes(state, j, fit, { free: state.freeCountsCopy() });
          expect(fast.ok).toBe(general.ok);
          if (fast.ok && general.ok) expect(fast.nodes).toEqual(general.nodes);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('goes on in best-fit order past the leaves it picks one by one', () => {
    // One node per leaf, the most used leaves first; the job excludes the five best.
    const nodes: NodeView[] = Array.from({ length: 8 }, (_, i) => ({
      name: `n${i}`,
      state: 'READY',
      gpuModel: 'A',
      gpuCount: 8,
      freeGpus: Array.from({ length: 8 }, (_, g) => g),
      labels: {},
      topology: { nvlinkDomain: `v${i}`, leafSwitch: `l${i}`, spine: `s${i >> 2}`, rack: `r${i}` },
    }));
    const state = new ClusterState(nodes);
    const j = job('j', { excludeNodes: ['n0', 'n1', 'n2', 'n3', 'n4'] });
    const fit = computeStaticFit(state, j);
    const fast = selectNodes(state, j, fit, { free: state.freeCount });
    expect(fast.ok && fast.nodes).toEqual([5]);
    expect(selectNodes(state, j, fit, { free: state.freeCountsCopy() })).toMatchObject({ ok: true, nodes: [5] });
  });

  it('gives a named node the verdict its filter would give', () => {
    fc.assert(
      fc.property(clusterArb.chain((nodes) => fc.tuple(fc.constant(nodes), jobArb(nodes))), ([nodes, j]) => {
        const state = new ClusterState(nodes);
        const cycle = createCycleContext({ state });
        const plugins = Plugins.of();
        const named: number[] = [];
        notExcludedPlugin.affected(j, cycle, named);
        for (const i of named) expect(plugins.namedVerdict(i, j, cycle)).toEqual(plugins.jobVerdict(i, j, cycle));
        const slow = Plugins.of(withoutDeclaredReason);
        for (const i of named) expect(slow.namedVerdict(i, j, cycle)).toEqual(plugins.jobVerdict(i, j, cycle));
      }),
      { numRuns: 200 },
    );
  });

  it('plans a queue exactly as when the filter is asked about every named node', () => {
    const world = clusterArb.chain((nodes) =>
      fc.tuple(
        fc.constant(nodes),
        fc.uniqueArray(jobArb(nodes), { maxLength: 12, selector: (j) => j.id }),
        fc.array(fc.record({ node: fc.nat(nodes.length - 1), priority: fc.constantFrom(100, 500, 1000) }), { maxLength: 8 }),
      ),
    );
    fc.assert(
      fc.property(world, ([nodes, pending, holds]) => {
        // Running jobs on the GPUs the snapshot shows as used, so preemption has victims.
        const running: RunningJob[] = [];
        nodes.forEach((n, i) => {
          const used = Array.from({ length: 8 }, (_, g) => g).filter((g) => !n.freeGpus.includes(g));
          const hold = holds.find((h) => h.node === i);
          if (used.length > 0) running.push({ id: `r${i}`, tenant: 't', priority: hold?.priority ?? 500, ranks: [{ rank: 0, node: n.name, gpus: used }], startTime: 0, timeLimitSec: 3600 });
        });
        const options = { running, now: NOW, config: { preemption: { windowSec: 0 } } };
        const fast = planCycle(nodes, pending, options);
        const slow = planCycle(nodes, pending, { ...options, plugins: withoutDeclaredReason });
        expect(fast).toEqual(slow);
      }),
      { numRuns: 200 },
    );
  });
});

describe('failures remembered for one exclusion list', () => {
  const fitWith = (excluded: number[]) => ({ excluded }) as unknown as JobFit;

  it('answer the same list, not another one', () => {
    const memo = new FailureMemo<string>();
    const j = job('j', { nodes: 4 });
    memo.remember('shape', 'any', j, fitWith([1, 5]), 'own', () => undefined);
    expect(memo.get('shape', 'any', j, fitWith([1, 5]))).toBe('own');
    expect(memo.get('shape', 'any', job('bigger', { nodes: 5 }), fitWith([1, 5]))).toBe('own');
    expect(memo.get('shape', 'any', job('smaller', { nodes: 3 }), fitWith([1, 5]))).toBeUndefined();
    expect(memo.get('shape', 'any', j, fitWith([1, 6]))).toBeUndefined();
    expect(memo.get('shape', 'any', j, fitWith([1]))).toBeUndefined();
    expect(memo.get('shape', 'same-switch', j, fitWith([1, 5]))).toBeUndefined();
    expect(memo.get('other', 'any', j, fitWith([1, 5]))).toBeUndefined();
    // A failure of the shape answers every list.
    memo.remember('shape', 'any', j, fitWith([2]), 'shape', () => 'shape');
    expect(memo.get('shape', 'any', j, fitWith([7, 9]))).toBe('shape');
  });

  it('finds exactly the lists it was told about, however many', () => {
    const list = fc.uniqueArray(fc.nat(64), { maxLength: 4 }).map((xs) => xs.sort((x, y) => x - y));
    fc.assert(
      fc.property(fc.uniqueArray(list, { minLength: 1, maxLength: 40, comparator: 'IsStrictlyEqual', selector: (xs) => xs.join() }), fc.array(list, { maxLength: 40 }), (kept, asked) => {
        const memo = new FailureMemo<string>();
        const j = job('j', { nodes: 2 });
        for (const xs of kept) if (xs.length > 0) memo.remember('shape', 'any', j, fitWith(xs), xs.join(), () => undefined);
        for (const xs of [...kept, ...asked]) {
          const known = xs.length > 0 && kept.some((k) => k.join() === xs.join());
          expect(memo.get('shape', 'any', j, fitWith(xs))).toBe(known ? xs.join() : undefined);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('hashes a list by its indices in order', () => {
    expect(listHash([1, 2])).toBe(listHash([1, 2]));
    expect(listHash([1, 2])).not.toBe(listHash([2, 1]));
    expect(listHash([1])).not.toBe(listHash([1, 0]));
  });
});

describe('a cycle with many lists', () => {
  it('explains each job by its own list, as computeStaticFit does alone', () => {
    const nodes: NodeView[] = Array.from({ length: 12 }, (_, i) => ({
      name: `n${i}`,
      state: i === 11 ? 'DRAINING' : 'READY',
      gpuModel: i < 8 ? 'A' : 'B',
      gpuCount: 8,
      freeGpus: i % 3 === 0 ? [0, 1, 2, 3, 4, 5, 6, 7] : [0],
      labels: {},
      topology: { nvlinkDomain: `v${i}`, leafSwitch: `l${i >> 2}`, spine: 's0', rack: `r${i}` },
    }));
    const pending = Array.from({ length: 40 }, (_, k) => job(`p${k}`, { nodes: 1 + (k % 5), gpuTypes: k % 2 ? ['A'] : [], excludeNodes: [`n${k % 12}`, `n${(k * 7) % 12}`, 'gone'], submitTime: k }));
    const plan = planCycle(nodes, pending, { now: NOW, config: resolveConfig({}) });
    const state = new ClusterState(nodes);
    for (const u of plan.unschedulable) {
      const j = pending.find((p) => p.id === u.jobId)!;
      const fit = computeStaticFit(state, j);
      // Static part of the counts: every node the fit rejects, by the reason it gives.
      for (const [reason, n] of Object.entries(fit.rejections)) expect(u.rejections[reason]).toBeGreaterThanOrEqual(n);
    }
  });
});
