// A node the health detector marked as a repeat offender (NodeView.lemon: several incidents
// within the health config's lemon window) is scored down for every job: healthy nodes are
// preferred, and it stays eligible so a job that needs it still runs. The 504-GPU report
// found a few bad nodes behind most exclusions; this keeps work off them before the next one.
import { MAX_NODE_SCORE, type CycleContext, type NodeScorer, type ScorePlugin } from '../../framework/types.js';

/** Per cycle: its scorer, the same for every job (null when no node is a repeat offender). */
const scorers = new WeakMap<CycleContext, NodeScorer | null>();

function scorer(cycle: CycleContext): NodeScorer | undefined {
  let s = scorers.get(cycle);
  if (s === undefined) {
    const lowered = new Set<number>();
    cycle.state.nodes.forEach((n, i) => { if (n.lemon) lowered.add(i); });
    s = lowered.size === 0 ? null : { score: (i: number) => (lowered.has(i) ? 0 : MAX_NODE_SCORE), lowered };
    scorers.set(cycle, s);
  }
  return s ?? undefined;
}

export const repeatOffenderPlugin: ScorePlugin = {
  name: 'RepeatOffender',
  prepare: (_job, cycle) => scorer(cycle),
  describe: (i, cycle) => (scorer(cycle)?.lowered?.has(i) ? 'repeat offender' : undefined),
};
