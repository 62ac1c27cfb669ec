// A victim search tells the selection which nodes its scenario changed (eligibleNodes'
// EligibleHint) so that a selection does not re-check every candidate. The hint must change
// nothing: for random clusters, jobs, exclusions and victims' GPUs added on random nodes, the
// selection with the hint is the selection without it.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ClusterState, computeStaticFit, eligibleNodes, selectNodes, type TopologyNeed } from '../../src/placement/index.js';
import { cluster, job } from './fixtures.js';

const TOPOLOGIES: TopologyNeed[] = ['any', 'same-switch', 'same-spine', 'same-nvlink-domain'];

describe('selection with an eligibility hint', () => {
  it('equals the selection that checks every candidate', () => {
    fc.assert(
      fc.property(
        fc.record({
          leaves: fc.integer({ min: 1, max: 4 }),
          perLeaf: fc.integer({ min: 1, max: 6 }),
          nvl: fc.constantFrom(1, 2),
          used: fc.array(fc.integer({ min: 0, max: 8 }), { minLength: 24, maxLength: 24 }),
          nodes: fc.integer({ min: 1, max: 6 }),
          gpus: fc.constantFrom(1, 2, 4, 8),
          topology: fc.constantFrom(...TOPOLOGIES),
          excluded: fc.array(fc.integer({ min: 0, max: 23 }), { maxLength: 4 }),
          // Victims' GPUs: (node, GPUs given back), possibly the same node twice.
          victims: fc.array(fc.tuple(fc.integer({ min: 0, max: 23 }), fc.integer({ min: 1, max: 8 })), { maxLength: 10 }),
        }),
        (c) => {
          const nodes = cluster({ spines: 1, leavesPerSpine: c.leaves, nodesPerLeaf: c.perLeaf, nvlinkSize: c.nvl });
          nodes.forEach((n, i) => {
            n.freeGpus = n.freeGpus.slice(c.used[i % c.used.length]);
          });
          const state = new ClusterState(nodes);
          const names = c.excluded.filter((i) => i < nodes.length).map((i) => nodes[i]!.name);
          const j = job('j', { nodes: c.nodes, gpusPerNode: c.gpus, topology: c.topology, excludeNodes: names });
          const fit = computeStaticFit(state, j);
          const base = eligibleNodes(j, fit, { free: state.freeCount });
          const free = state.freeCountsCopy();
          const changed: number[] = [];
          for (const [node, gpus] of c.victims) {
            if (node >= nodes.length) continue;
            free[node] = Math.min(8, free[node]! + gpus);
            changed.push(node);
          }
          const plain = selectNodes(state, j, fit, { free });
          const hinted = selectNodes(state, j, fit, { free }, { base, changed });
          expect(hinted).toEqual(plain);
        },
      ),
      { numRuns: 500 },
    );
  });
});
