import { describe, expect, it } from 'vitest';
import { placeGang, planCycle } from '../../src/placement/index.js';
import { cluster, job } from './fixtures.js';

const leafOf = (name: string, nodes: ReturnType<typeof cluster>) => nodes.find((n) => n.name === name)!.topology.leafSwitch;

describe('gang and topology selection', () => {
  it('places a gang in one leaf switch when one holds it', () => {
    const nodes = cluster({ spines: 2, leavesPerSpine: 2, nodesPerLeaf: 4 });
    const r = placeGang(nodes, job('g', { nodes: 4 }));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(new Set(r.ranks.map((x) => leafOf(x.node, nodes))).size).toBe(1);
    expect(r.domain).toMatch(/^leaf switch /);
  });

  it('prefers the tightest leaf (best fit), keeping empty leaves whole', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 3, nodesPerLeaf: 4 });
    // leaf-1 has 3 free nodes, leaf-0 and leaf-2 have 4: a 3-node gang takes leaf-1.
    nodes[4]!.freeGpus = [];
    const plan = planCycle(nodes, [job('g', { nodes: 3 })]);
    expect(plan.placements[0]!.domain).toBe('leaf switch leaf-1');
    expect(plan.placements[0]!.explanation).toContain('best fit 1.00');
  });

  it('puts a small job on the most used node and leaf', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 2, nodesPerLeaf: 2 });
    nodes[3]!.freeGpus = [0, 1, 2, 3, 4, 5]; // leaf-1, 6 free
    nodes[0]!.freeGpus = [2, 3, 4, 5, 6, 7]; // leaf-0, 6 free too
    nodes[1]!.freeGpus = [0, 1, 2, 3]; // leaf-0 is the more used leaf
    const plan = planCycle(nodes, [job('s', { gpusPerNode: 2 })]);
    expect(plan.placements[0]!.ranks[0]!.node).toBe(nodes[1]!.name);
    expect(plan.placements[0]!.ranks[0]!.gpus).toEqual([0, 1]);
  });

  it('spans a spine before spreading over the cluster, fewest leaves first', () => {
    const nodes = cluster({ spines: 2, leavesPerSpine: 2, nodesPerLeaf: 4 });
    const plan = planCycle(nodes, [job('g', { nodes: 6 })]);
    const p = plan.placements[0]!;
    expect(p.level).toBe('spine');
    expect(new Set(p.ranks.map((x) => leafOf(x.node, nodes))).size).toBe(2);
  });

  it('fails a same-switch gang rather than spreading it', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 2, nodesPerLeaf: 4 });
    nodes[0]!.freeGpus = [];
    nodes[4]!.freeGpus = [];
    const plan = planCycle(nodes, [job('g', { nodes: 4, topology: 'same-switch' })]);
    expect(plan.placements).toEqual([]);
    expect(plan.unschedulable[0]).toMatchObject({ reason: 'topology' });
    expect(plan.unschedulable[0]!.message).toContain('at most 3 in one leaf switch');
    // Without the requirement it spreads over both leaves.
    const loose = planCycle(nodes, [job('g', { nodes: 4 })]);
    expect(loose.placements[0]!.level).toBe('spine');
  });

  it('uses an NVLink domain when one holds the gang', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 8, nvlinkSize: 4 });
    nodes[0]!.freeGpus = [];
    const plan = planCycle(nodes, [job('g', { nodes: 3, topology: 'same-nvlink-domain' })]);
    const p = plan.placements[0]!;
    expect(p.level).toBe('nvlink');
    // Best fit: the domain with 3 eligible nodes (nvl-0), not the whole one.
    expect(p.domain).toBe('NVLink domain nvl-0');
  });

  it('respects GPU type, exclusions, selectors and node state', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 4, model: (i) => (i % 2 ? 'B200' : 'H100') });
    nodes[1]!.labels = { ib: 'ndr' };
    nodes[3]!.labels = { ib: 'ndr' };
    nodes[3]!.state = 'DRAINING';
    const plan = planCycle(nodes, [job('a', { gpuTypes: ['B200'], nodeSelector: { ib: 'ndr' }, nodes: 2 }), job('b', { gpuTypes: ['B200'], nodeSelector: { ib: 'ndr' }, excludeNodes: [nodes[1]!.name] })]);
    expect(plan.placements).toEqual([]);
    expect(plan.unschedulable.map((u) => u.rejections)).toEqual([
      { 'gpu type H100 not in [B200]': 2, draining: 1 },
      { 'gpu type H100 not in [B200]': 2, draining: 1, 'excluded by the job': 1 },
    ]);
  });

  it('shares a node among small jobs without double-booking GPUs', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 1 });
    const plan = planCycle(nodes, [job('a', { gpusPerNode: 3 }), job('b', { gpusPerNode: 4 }), job('c', { gpusPerNode: 1 }), job('d', { gpusPerNode: 1 })]);
    const used = plan.placements.flatMap((p) => p.ranks[0]!.gpus);
    expect(plan.placements.map((p) => p.jobId)).toEqual(['a', 'b', 'c']);
    expect(new Set(used).size).toBe(used.length);
    expect(plan.placements[1]!.ranks[0]!.gpus).toEqual([4, 5, 6, 7]);
  });
});
