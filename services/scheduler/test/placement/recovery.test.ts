// Recovery in the planner: hot spares, kept ranks and the blamed-node penalty.
import { describe, expect, it } from 'vitest';
import { ClusterState, designateSpares, planCycle, PRIORITY_CLASSES, resolveConfig, type NodeView, type SchedulingConfigInput } from '../../src/placement/index.js';
import { cluster, job, occupy } from './fixtures.js';

const HOUR = 3600_000;
const { normal, preemptible } = PRIORITY_CLASSES;

const spareConfig = (over: Partial<NonNullable<SchedulingConfigInput['spares']>> = {}): SchedulingConfigInput => ({
  spares: { pools: [{ count: 1, perLeafSwitch: true }], allowPreemptible: false, ...over },
});

const spares = (nodes: NodeView[], config: SchedulingConfigInput, pending = [job('p')], running = [] as Parameters<typeof designateSpares>[0]['running'], now = 10 * HOUR) => {
  const state = new ClusterState(nodes);
  const resolved = resolveConfig(config);
  return [...designateSpares({ state, spares: resolved.spares, running, pending, now, blamePenaltySec: resolved.recovery.blamePenaltySec })].map((i) => nodes[i]!.name).sort();
};

describe('hot spares', () => {
  it('holds count idle READY nodes per leaf switch, least recently blamed first, then by name', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 2, nodesPerLeaf: 4 });
    nodes[0]!.lastBlamedAt = 5 * HOUR; // leaf-0: n0000 was blamed, so n0001 is preferred
    nodes[4]!.freeGpus = [0, 1]; // leaf-1: n0004 is busy
    nodes[5]!.state = 'QUARANTINED';
    expect(spares(nodes, spareConfig())).toEqual(['n0001', 'n0006']);
    // Once its penalty is over, a node blamed long ago is better than none ...
    nodes[1]!.lastBlamedAt = 6 * HOUR;
    nodes[2]!.freeGpus = [];
    nodes[3]!.freeGpus = [];
    expect(spares(nodes, spareConfig())).toEqual(['n0000', 'n0006']);
    // ... but while it lasts (recovery.blamePenaltySec, an hour by default) a blamed node is no spare.
    expect(spares(nodes, spareConfig(), undefined, undefined, 5.5 * HOUR)).toEqual(['n0006']);
  });

  it('takes count across the cluster without perLeafSwitch, and only models containing gpuType', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 2, nodesPerLeaf: 4, model: (i) => (i < 4 ? 'NVIDIA H100 80GB HBM3' : 'NVIDIA B200') });
    expect(spares(nodes, { spares: { pools: [{ count: 2 }] } })).toEqual(['n0000', 'n0001']);
    expect(spares(nodes, { spares: { pools: [{ count: 2, gpuType: 'B200' }] } })).toEqual(['n0004', 'n0005']);
    // Pools do not share nodes.
    expect(spares(nodes, { spares: { pools: [{ count: 1, gpuType: 'H100' }, { count: 2 }] } })).toEqual(['n0000', 'n0001', 'n0002']);
  });

  it('counts nodes that report no leaf switch as one group, not one switch each', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 3 }).map((n) => ({ ...n, topology: { ...n.topology, leafSwitch: '' } }));
    expect(spares(nodes, spareConfig())).toEqual(['n0000']);
  });

  it('leaves alone nodes that a pending job keeps ranks on', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 3 });
    const back = job('back', { keep: [{ rank: 0, node: 'n0000', gpus: [0, 1, 2, 3, 4, 5, 6, 7] }] });
    expect(spares(nodes, spareConfig(), [back])).toEqual(['n0001']);
  });

  it('keeps ordinary jobs off spares and says why', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 2 });
    nodes[0]!.freeGpus = [];
    const plan = planCycle(nodes, [job('j')], { config: spareConfig() });
    expect(plan.placements).toEqual([]);
    expect(plan.unschedulable[0]!.rejections).toEqual({ 'held as hot spare': 1, 'insufficient free GPUs': 1 });
  });

  it('gives a recovery attempt a spare first and reports it', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 4 });
    nodes[1]!.freeGpus = [0, 1, 2, 3]; // half used: best fit alone would not pick an idle node
    nodes[2]!.freeGpus = [];
    const plan = planCycle(nodes, [job('r', { gpusPerNode: 4, recovery: true })], { config: spareConfig() });
    const p = plan.placements[0]!;
    expect(p.ranks.map((r) => r.node)).toEqual(['n0000']);
    expect(p.spares).toEqual(['n0000']);
    expect(p.explanation).toContain('n0000 (hot spare)');
    // The same job without recovery takes the tightest node, and no spare.
    const plain = planCycle(nodes, [job('r', { gpusPerNode: 4 })], { config: spareConfig() }).placements[0]!;
    expect(plain.ranks.map((r) => r.node)).toEqual(['n0001']);
    expect(plain.spares).toBeUndefined();
  });

  it('lets preemptible work use spares only when allowed, and a recovery attempt preempts it there', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 2 });
    nodes[1]!.freeGpus = [];
    const filler = job('filler', { priority: preemptible });
    expect(planCycle(nodes, [filler], { config: spareConfig() }).placements).toEqual([]);
    const allowed = planCycle(nodes, [filler], { config: spareConfig({ allowPreemptible: true }) });
    expect(allowed.placements[0]!.spares).toEqual(['n0000']);

    // Next cycle the preemptible job runs on the spare (another tenant's, within its quota).
    const running = [
      occupy(nodes, 'filler', { n0000: [0, 1, 2, 3, 4, 5, 6, 7] }, { priority: preemptible, tenant: 'other' }),
      { id: 'busy', tenant: 'other', priority: normal, ranks: [{ rank: 0, node: 'n0001', gpus: [0, 1, 2, 3, 4, 5, 6, 7] }], startTime: 0, timeLimitSec: 0 },
    ];
    const config: SchedulingConfigInput = { ...spareConfig({ allowPreemptible: true }), tenants: { other: { weight: 1, nominalGpus: 64 }, t: { weight: 1, nominalGpus: 64 } } };
    const plan = planCycle(nodes, [job('r', { recovery: true })], { running, now: HOUR, config });
    expect(plan.preemptions).toEqual([{ jobId: 'filler', preemptorId: 'r', reason: 'preemptible work on hot spare n0000, needed for recovery' }]);
    expect(plan.nominations[0]!.nodes).toEqual(['n0000']);
    // An ordinary job of the same priority may not cut through the other tenant's quota.
    expect(planCycle(nodes, [job('o')], { running, now: HOUR, config }).preemptions).toEqual([]);
  });
});

describe('kept ranks', () => {
  const full = [0, 1, 2, 3, 4, 5, 6, 7];

  it('restarts in place on the same nodes, ranks and GPUs', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 2, nodesPerLeaf: 4 });
    const keep = [
      { rank: 0, node: 'n0005', gpus: [4, 5, 6, 7] },
      { rank: 1, node: 'n0002', gpus: [0, 1, 2, 3] },
    ];
    const plan = planCycle(nodes, [job('j', { nodes: 2, gpusPerNode: 4, keep, recovery: true })]);
    const p = plan.placements[0]!;
    expect(p.kept).toBe(true);
    expect(p.ranks).toEqual([
      { rank: 0, node: 'n0005', gpus: [4, 5, 6, 7] },
      { rank: 1, node: 'n0002', gpus: [0, 1, 2, 3] },
    ]);
    expect(p.explanation).toMatch(/^restarted in place: all 2 ranks kept on their nodes/);
  });

  it('replaces one node next to the kept ones, a spare first, keeping rank numbers', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 2, nodesPerLeaf: 4 });
    nodes[7]!.freeGpus = [0, 1, 2, 3]; // leaf-1: n0007 is the tightest; n0006 is its hot spare
    const keep = [
      { rank: 0, node: 'n0004', gpus: [0, 1, 2, 3] },
      { rank: 2, node: 'n0005', gpus: [0, 1, 2, 3] },
    ];
    const j = job('j', { nodes: 3, gpusPerNode: 4, topology: 'same-switch', keep, recovery: true, excludeNodes: ['n0003'] });
    const p = planCycle(nodes, [j], { config: spareConfig() }).placements[0]!;
    expect(p.kept).toBe(true);
    expect(p.ranks.map((r) => [r.rank, r.node])).toEqual([
      [0, 'n0004'],
      [1, 'n0006'],
      [2, 'n0005'],
    ]);
    expect(p.spares).toEqual(['n0006']);
    expect(p.domain).toBe('leaf switch leaf-1');
    expect(p.explanation).toContain('kept rank(s) 0, 2 on their nodes; rank(s) 1 on n0006 (leaf switch leaf-1); n0006 (hot spare)');
    // Without `recovery` the spare is off limits and best fit takes the tightest node.
    const plain = planCycle(nodes, [{ ...j, recovery: false }], { config: spareConfig() }).placements[0]!;
    expect(plain.ranks.map((r) => r.node)).toEqual(['n0004', 'n0007', 'n0005']);
  });

  it('fills the missing ranks beyond the kept nodes\' switch when the job\'s topology allows it', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 2, nodesPerLeaf: 2 });
    nodes[1]!.freeGpus = [];
    const keep = [{ rank: 1, node: 'n0000', gpus: [0, 1, 2, 3, 4, 5, 6, 7] }];
    const any = planCycle(nodes, [job('j', { nodes: 2, keep })]).placements[0]!;
    expect(any.ranks.map((r) => r.node)).toEqual(['n0002', 'n0000']);
    expect(any.level).toBe('spine');
    expect(any.kept).toBe(true);
  });

  it('falls back to a whole new gang when a kept node cannot take its rank', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 2, nodesPerLeaf: 4 });
    nodes[4]!.freeGpus = [0, 1, 2, 3]; // n0004 lost half its GPUs to someone else
    const keep = [
      { rank: 0, node: 'n0004', gpus: full },
      { rank: 1, node: 'n0005', gpus: full },
    ];
    const plan = planCycle(nodes, [job('j', { nodes: 2, topology: 'same-switch', keep })]);
    const p = plan.placements[0]!;
    expect(p.kept).toBe(false);
    expect(p.ranks).toHaveLength(2);
    expect(p.explanation).toMatch(/^could not keep ranks on their nodes: rank 0 cannot stay on n0004 \(insufficient free GPUs\); placed anew: leaf switch /);
  });

  it('falls back when the kept nodes are excluded or gone, or no replacement fits the topology', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 2, nodesPerLeaf: 2 });
    const excluded = planCycle(nodes, [job('j', { nodes: 2, keep: [{ rank: 0, node: 'n0000', gpus: full }], excludeNodes: ['n0000'] })]).placements[0]!;
    expect(excluded.kept).toBe(false);
    expect(excluded.explanation).toContain('rank 0 cannot stay on n0000 (excluded by the job)');
    expect(excluded.ranks.map((r) => r.node)).not.toContain('n0000');
    const gone = planCycle(nodes, [job('j', { nodes: 2, keep: [{ rank: 1, node: 'old-7', gpus: full }] })]).placements[0]!;
    expect(gone.kept).toBe(false);
    expect(gone.explanation).toContain('rank 1 cannot stay on old-7 (not in the cluster)');
    // leaf-0 has no room for a second node: the same-switch gang moves to leaf-1 as a whole.
    nodes[1]!.freeGpus = [];
    const moved = planCycle(nodes, [job('j', { nodes: 2, topology: 'same-switch', keep: [{ rank: 0, node: 'n0000', gpus: full }] })]).placements[0]!;
    expect(moved.kept).toBe(false);
    expect(moved.explanation).toContain('needs 1 more node(s) with 8 free GPUs in leaf switch leaf-0, 0 eligible');
    expect(moved.ranks.map((r) => r.node).sort()).toEqual(['n0002', 'n0003']);
  });

  it('prefers the old GPU indices, else the buddy allocator', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 1 });
    nodes[0]!.freeGpus = [0, 1, 2, 3, 6, 7];
    const back = (gpus: number[]) => planCycle(nodes, [job('j', { gpusPerNode: 2, keep: [{ rank: 0, node: 'n0000', gpus }] })]).placements[0]!.ranks[0]!.gpus;
    expect(back([6, 7])).toEqual([6, 7]);
    expect(back([4, 5])).toEqual([6, 7]); // 4-5 are taken: the pair in the fuller half
  });
});

describe('blamed nodes', () => {
  it('are scored down for every job while the penalty lasts, never made ineligible', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 3 });
    nodes[0]!.freeGpus = [0, 1, 2, 3]; // the tightest node...
    nodes[0]!.lastBlamedAt = 9 * HOUR; // ...was blamed an hour ago (penalty 2 h)
    const config = { recovery: { blamePenaltySec: 2 * 3600 } };
    const pick = (now: number) => planCycle(nodes, [job('j', { gpusPerNode: 4 })], { now, config }).placements[0]!;
    expect(pick(10 * HOUR).ranks[0]!.node).toBe('n0001');
    expect(pick(11 * HOUR).ranks[0]!.node).toBe('n0000'); // penalty over: best fit again
    // Still eligible when nothing else fits.
    nodes[1]!.freeGpus = [];
    nodes[2]!.freeGpus = [];
    const forced = pick(10 * HOUR);
    expect(forced.ranks[0]!.node).toBe('n0000');
    expect(forced.explanation).toContain('n0000 (recently blamed)');
  });

  it('order blamed nodes by how long ago, and steer gangs to healthier domains', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 2, nodesPerLeaf: 2 });
    nodes[0]!.freeGpus = [0, 1, 2, 3, 4, 5]; // leaf-0 is the tighter one
    nodes[1]!.lastBlamedAt = 9.5 * HOUR;
    const config = { recovery: { blamePenaltySec: 3600 } };
    const gang = planCycle(nodes, [job('g', { nodes: 2, gpusPerNode: 4 })], { now: 10 * HOUR, config }).placements[0]!;
    expect(gang.domain).toBe('leaf switch leaf-1');
    expect(gang.explanation).toContain('node scores preferred it to the tighter leaf switch leaf-0');
    nodes[2]!.lastBlamedAt = 9.9 * HOUR;
    nodes[3]!.lastBlamedAt = 9.9 * HOUR;
    // Every leaf has a blamed node now: leaf-0's was blamed longest ago.
    expect(planCycle(nodes, [job('g', { nodes: 2, gpusPerNode: 4 })], { now: 10 * HOUR, config }).placements[0]!.domain).toBe('leaf switch leaf-0');
  });
});

describe('repeat offenders', () => {
  it('are scored down for every job, never made ineligible', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 3 });
    nodes[0]!.freeGpus = [0, 1, 2, 3]; // the tightest node...
    nodes[0]!.lemon = true; // ...is a repeat offender
    const pick = () => planCycle(nodes, [job('j', { gpusPerNode: 4 })]).placements[0]!;
    expect(pick().ranks[0]!.node).toBe('n0001');
    nodes[1]!.freeGpus = [];
    nodes[2]!.freeGpus = [];
    const forced = pick();
    expect(forced.ranks[0]!.node).toBe('n0000');
    expect(forced.explanation).toContain('n0000 (repeat offender)');
    nodes[0]!.lemon = false;
  });
});
