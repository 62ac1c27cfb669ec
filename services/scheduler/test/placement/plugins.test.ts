// The plugin registry: default order and weights, validation, custom plugins at each
// extension point, and the shape/job split that keeps exclusion lists cheap.
import { describe, expect, it } from 'vitest';
import {
  ClusterState,
  computeStaticFit,
  createCycleContext,
  DEFAULT_PLUGINS,
  explainRejections,
  MAX_NODE_SCORE,
  planCycle,
  PluginRegistryError,
  Plugins,
  resolveConfig,
  type ClassFilterPlugin,
  type CapacityFilterPlugin,
  type PluginRegistry,
  type ScorePlugin,
} from '../../src/placement/index.js';
import { cluster, job } from './fixtures.js';

const names = (r: PluginRegistry) => ({ filters: r.filters.map((f) => `${f.name}:${f.stage}`), scores: r.scores.map((s) => `${s.plugin.name}x${s.weight}`) });

describe('plugin registry', () => {
  it('runs the filters in the documented order, with the documented score weights', () => {
    expect(names(DEFAULT_PLUGINS)).toEqual({
      filters: ['NodeReady:class', 'NotExcluded:job', 'GpuType:class', 'NodeSelector:class', 'GpuCount:class', 'HotSpare:node', 'FreeGpus:capacity', 'NotReserved:capacity'],
      scores: ['BlamePenaltyx2', 'RepeatOffenderx2', 'PreferSparesx1'],
    });
  });

  it('rejects a plugin registered twice and weights that are not positive', () => {
    const [ready] = DEFAULT_PLUGINS.filters;
    expect(() => Plugins.of({ filters: [ready!, ready!], scores: [] })).toThrow(new PluginRegistryError('plugin NodeReady is registered twice'));
    expect(() => Plugins.of({ filters: [], scores: [{ plugin: DEFAULT_PLUGINS.scores[0]!.plugin, weight: 0 }] })).toThrow(/weight must be a number > 0, got 0/);
  });

  it('names a node by the first failing filter in registry order', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 3, model: (i) => (i === 2 ? 'B200' : 'H100') });
    nodes[0]!.state = 'DRAINING';
    const j = job('j', { gpuTypes: ['H100'], excludeNodes: ['n0000', 'n0001', 'n0002'] });
    const state = new ClusterState(nodes);
    // n0000: NodeReady comes before NotExcluded; n0002: NotExcluded before GpuType.
    expect(computeStaticFit(state, j).rejections).toEqual({ draining: 1, 'excluded by the job': 2 });
    const reordered = { ...DEFAULT_PLUGINS, filters: [...DEFAULT_PLUGINS.filters].sort((a, b) => (a.name === 'GpuType' ? -1 : b.name === 'GpuType' ? 1 : 0)) };
    expect(computeStaticFit(state, j, reordered).rejections).toEqual({ 'gpu type B200 not in [H100]': 1, draining: 1, 'excluded by the job': 1 });
  });

  it('takes custom class filters, capacity filters and score plugins', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 4 });
    nodes[1]!.labels = { maintenance: 'soon' };
    nodes[3]!.freeGpus = [0, 1, 2, 3];
    const noMaintenance: ClassFilterPlugin = {
      name: 'NoMaintenance',
      stage: 'class',
      key: () => '',
      labels: () => true,
      filter: (node) => (node.labels.maintenance ? 'maintenance planned' : undefined),
    };
    const halfFree: CapacityFilterPlugin = {
      name: 'KeepHalfFree',
      stage: 'capacity',
      admits: (scenario, i, gpus) => scenario.free[i]! - gpus >= 4,
      filter: (_node, j, ctx) => (ctx.free - j.gpusPerNode >= 4 ? undefined : 'would leave less than half free'),
    };
    // Prefers the highest-numbered node, against best fit.
    const last: ScorePlugin = { name: 'Last', prepare: (_j, cycle) => ({ score: (i) => (i / (cycle.state.size - 1)) * MAX_NODE_SCORE }) };
    const plugins: PluginRegistry = { filters: [...DEFAULT_PLUGINS.filters, noMaintenance, halfFree], scores: [{ plugin: last, weight: 1 }] };
    const plan = planCycle(nodes, [job('a', { gpusPerNode: 4 }), job('b', { gpusPerNode: 8, submitTime: 1 })], { plugins });
    expect(plan.placements.map((p) => [p.jobId, p.ranks[0]!.node])).toEqual([['a', 'n0002']]);
    expect(plan.unschedulable[0]!.rejections).toEqual({ 'maintenance planned': 1, 'insufficient free GPUs': 2, 'would leave less than half free': 1 });
    // Without the score plugin, best fit takes the half-used node.
    const bestFit = planCycle(nodes, [job('a', { gpusPerNode: 4 })], { plugins: { ...plugins, scores: [] } });
    expect(bestFit.placements[0]!.ranks[0]!.node).toBe('n0000');
  });

  it('combines the active score plugins by weight; a plugin that scores all alike is skipped', () => {
    const state = new ClusterState(cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 3 }));
    const cycle = createCycleContext({ state });
    const flat: ScorePlugin = { name: 'Flat', prepare: () => undefined };
    const a: ScorePlugin = { name: 'A', prepare: () => ({ score: (i) => (i === 0 ? 0 : MAX_NODE_SCORE), lowered: new Set([0]) }) };
    const b: ScorePlugin = { name: 'B', prepare: () => ({ score: (i) => (i === 1 ? 50 : MAX_NODE_SCORE), lowered: new Set([1]) }) };
    const plugins = Plugins.of({ filters: [], scores: [{ plugin: flat, weight: 5 }, { plugin: a, weight: 3 }, { plugin: b, weight: 1 }] });
    const pref = plugins.preference(job('j'), cycle)!;
    expect([0, 1, 2].map((i) => pref.score(i))).toEqual([100, 350, 400]);
    expect(pref.max).toBe(400);
    expect([...pref.lowered!].sort()).toEqual([0, 1]);
    expect(Plugins.of({ filters: [], scores: [{ plugin: flat, weight: 1 }] }).preference(job('j'), cycle)).toBeUndefined();
  });
});

describe('exclusions as a post-filter', () => {
  it('leaves exclusion lists out of the shape key', () => {
    const state = new ClusterState(cluster());
    const cycle = createCycleContext({ state, config: resolveConfig({}) });
    const plugins = Plugins.of();
    expect(plugins.shapeKey(job('a', { excludeNodes: ['n0001'] }), cycle)).toBe(plugins.shapeKey(job('b', { excludeNodes: ['n0002', 'n0003'] }), cycle));
    expect(plugins.shapeKey(job('a', { gpusPerNode: 4 }), cycle)).not.toBe(plugins.shapeKey(job('b'), cycle));
  });

  it('gives each job its own candidates and reasons on top of the shared shape', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 4 });
    nodes[3]!.freeGpus = [];
    nodes[2]!.state = 'QUARANTINED';
    const state = new ClusterState(nodes);
    const j = job('j', { excludeNodes: ['n0000', 'n0002', 'n0003', 'elsewhere'] });
    const fit = computeStaticFit(state, j);
    expect(Array.from(fit.candidates)).toEqual([1]);
    expect(fit.excluded).toEqual([0, 3]);
    expect(explainRejections(state, j, fit, undefined, false)).toEqual({ quarantined: 1, 'excluded by the job': 2 });
    // In a cycle, 50 jobs with 50 lists share one shape and still get their own counts.
    const pending = Array.from({ length: 50 }, (_, k) => job(`p${k}`, { gpusPerNode: 8, excludeNodes: [`n000${k % 4}`], submitTime: k }));
    nodes[0]!.freeGpus = [];
    nodes[1]!.freeGpus = [];
    const plan = planCycle(nodes, pending);
    expect(plan.placements).toEqual([]);
    expect(plan.unschedulable[0]!.rejections).toEqual({ 'excluded by the job': 1, quarantined: 1, 'insufficient free GPUs': 2 });
    expect(plan.unschedulable[2]!.rejections).toEqual({ quarantined: 1, 'insufficient free GPUs': 3 });
  });

  it('counts a job\'s own exclusions once when it says it can never fit', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 4 });
    const plan = planCycle(nodes, [job('j', { nodes: 4, excludeNodes: ['n0001'] })]);
    expect(plan.unschedulable[0]!.message).toContain('can never fit as the cluster stands: 3 nodes pass its filters, it needs 4');
  });
});
