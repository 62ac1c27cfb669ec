// Best fit: the ordering stage of gang selection. Small jobs go where capacity is already
// fragmented (the tightest node, in the most-used NVLink domain, leaf switch and spine), and
// gangs go to the domain with the fewest eligible nodes that still holds them, so large
// contiguous blocks stay free for the big gangs that need them. Lower compares as better;
// ties fall back to the domain or node index so plans are deterministic.
//
// It is a lexicographic order over a hierarchy (domain, then children, then nodes), not a
// per-node number, so it is not one of the weighted score plugins: it decides among the
// domains and nodes that the weighted scores leave equal (all of them when none is active).
import type { ClusterState } from '../../cluster-state.js';
import type { DomainLevel } from '../../types.js';

export type GroupLevel = Exclude<DomainLevel, 'cluster'>;

/**
 * Compares two domains that can each hold the request: fewer eligible nodes first (the
 * tightest fit), then fewer free GPUs in the domain and its ancestors (the most used).
 * Free GPUs are compared level by level without building the chains (sorts call this often).
 */
export function compareDomains(state: ClusterState, level: GroupLevel, a: number, eligibleA: number, b: number, eligibleB: number): number {
  if (eligibleA !== eligibleB) return eligibleA - eligibleB;
  switch (level) {
    case 'nvlink': {
      const la = state.nvlLeaf[a]!;
      const lb = state.nvlLeaf[b]!;
      return (
        state.nvlFree[a]! - state.nvlFree[b]! ||
        state.leafFree[la]! - state.leafFree[lb]! ||
        state.spineFree[state.leafSpine[la]!]! - state.spineFree[state.leafSpine[lb]!]! ||
        a - b
      );
    }
    case 'leaf':
      return state.leafFree[a]! - state.leafFree[b]! || state.spineFree[state.leafSpine[a]!]! - state.spineFree[state.leafSpine[b]!]! || a - b;
    case 'spine':
      return state.spineFree[a]! - state.spineFree[b]! || a - b;
  }
}

/** Compares nodes for a gang's or a small job's pick: fewest free GPUs (tightest) first. */
export function compareNodes(state: ClusterState, free: ArrayLike<number>, a: number, b: number): number {
  return (
    free[a]! - free[b]! ||
    state.nvlFree[state.nvl[a]!]! - state.nvlFree[state.nvl[b]!]! ||
    state.leafFree[state.leaf[a]!]! - state.leafFree[state.leaf[b]!]! ||
    state.spineFree[state.spine[a]!]! - state.spineFree[state.spine[b]!]! ||
    a - b
  );
}

/** The best-fit score reported to users: the share of a domain's eligible nodes used (1 = perfect fit). */
export function fitScore(used: number, eligible: number): number {
  return eligible === 0 ? 0 : used / eligible;
}
