// A quick pass decides only the head of the ordered queue (CycleOptions.depth): the same
// decisions as a full pass for the jobs it reaches, nothing for the rest.
import { describe, expect, it } from 'vitest';
import { planCycle } from '../../src/placement/index.js';
import { cluster, job } from './fixtures.js';

describe('planCycle depth', () => {
  const nodes = () => cluster({ leavesPerSpine: 1, nodesPerLeaf: 2 }); // 2 nodes x 8 GPUs
  // Oldest first: a, b fit (8 GPUs each); c waits; d would fit only behind c (nothing left).
  const queue = () => [
    job('a', { submitTime: 1 }), job('b', { submitTime: 2 }), job('c', { submitTime: 3 }), job('d', { submitTime: 4, gpusPerNode: 1 }),
  ];

  it('decides the first `depth` jobs in queue order and lists the rest as unevaluated', () => {
    const plan = planCycle(nodes(), queue(), { now: 10, depth: 3 });
    expect(plan.placements.map((p) => p.jobId)).toEqual(['a', 'b']);
    expect(plan.unschedulable.map((u) => u.jobId)).toEqual(['c']);
    expect(plan.unevaluated).toEqual(['d']);
  });

  it('gives the head the same decisions as a full pass', () => {
    const full = planCycle(nodes(), queue(), { now: 10 });
    const quick = planCycle(nodes(), queue(), { now: 10, depth: 2 });
    expect(full.unevaluated).toEqual([]);
    expect(quick.placements).toEqual(full.placements);
    expect(quick.unevaluated).toEqual(['c', 'd']);
    expect(quick.unschedulable).toEqual([]);
  });

  it('depth 0 decides nothing', () => {
    const plan = planCycle(nodes(), queue(), { now: 10, depth: 0 });
    expect(plan.placements).toEqual([]);
    expect(plan.unevaluated).toEqual(['a', 'b', 'c', 'd']);
  });
});
