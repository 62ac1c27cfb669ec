// A node recovery blamed for a node fault (NodeView.lastBlamedAt) is scored down for every
// job for `recovery.blamePenaltySec`, so healthy nodes are preferred while the blame is
// fresh; it stays eligible, so a job that needs it still runs. The score rises linearly from
// 0 at the blame to MAX_NODE_SCORE when the penalty ends: of two blamed nodes, the one
// blamed longer ago is preferred.
import { MAX_NODE_SCORE, type CycleContext, type NodeScorer, type ScorePlugin } from '../../framework/types.js';

/** Per cycle: its scorer, the same for every job (null when no node is under penalty). */
const scorers = new WeakMap<CycleContext, NodeScorer | null>();

/** Blamed nodes and their scores; every other node at MAX_NODE_SCORE. */
function scorer(cycle: CycleContext): NodeScorer | undefined {
  let s = scorers.get(cycle);
  if (s === undefined) {
    const window = cycle.config.recovery.blamePenaltySec * 1000;
    const scores = new Map<number, number>();
    const nodes = cycle.state.nodes;
    for (let i = 0; i < nodes.length && window > 0; i++) {
      const at = nodes[i]!.lastBlamedAt;
      if (at === undefined) continue;
      const elapsed = cycle.now - at;
      if (elapsed < window) scores.set(i, (Math.max(0, elapsed) / window) * MAX_NODE_SCORE);
    }
    s = scores.size === 0 ? null : { score: (i: number) => scores.get(i) ?? MAX_NODE_SCORE, lowered: new Set(scores.keys()) };
    scorers.set(cycle, s);
  }
  return s ?? undefined;
}

export const blamePenaltyPlugin: ScorePlugin = {
  name: 'BlamePenalty',
  prepare: (_job, cycle) => scorer(cycle),
  describe: (i, cycle) => (scorer(cycle)?.lowered?.has(i) ? 'recently blamed' : undefined),
};
