// Hot spares (config `spares`): nodes held idle so a recovery attempt finds a healthy node
// at once. Two plugins: a filter that keeps every other job off the spares (except jobs of
// the preemptible class when `spares.allowPreemptible`; recovery preempts them), and a score
// that makes recovery attempts prefer spares for the nodes they need. The spares themselves
// are chosen once per cycle (designate.ts) and reported in Placement.spares.
import { MAX_NODE_SCORE, type CycleContext, type NodeFilterPlugin, type NodeScorer, type ScorePlugin } from '../../framework/types.js';
import type { SchedulingConfig } from '../../config.js';
import type { JobRequest } from '../../types.js';
import { isPreemptibleClass } from './designate.js';

export { designateSpares, isPreemptibleClass, type SpareInputs } from './designate.js';

export const REASON_SPARE = 'held as hot spare';

/** Recovery attempts may use spares; so may preemptible work when the config allows it. */
export function mayUseSpares(job: JobRequest, config: SchedulingConfig): boolean {
  return job.recovery === true || (config.spares.allowPreemptible && isPreemptibleClass(job.priority));
}

export const hotSparePlugin: NodeFilterPlugin = {
  name: 'HotSpare',
  stage: 'node',
  key: (job, cycle) => (cycle.spares.size > 0 && mayUseSpares(job, cycle.config) ? 'spares' : ''),
  affected: (job, cycle) => (mayUseSpares(job, cycle.config) ? [] : cycle.spares),
  filter: (_node, i, job, cycle) => (cycle.spares.has(i) && !mayUseSpares(job, cycle.config) ? REASON_SPARE : undefined),
};

/** Per cycle: spares at MAX_NODE_SCORE, every other node at 0. */
const scorers = new WeakMap<CycleContext, NodeScorer>();

function spareScorer(cycle: CycleContext): NodeScorer {
  let s = scorers.get(cycle);
  if (!s) scorers.set(cycle, (s = { score: (i: number) => (cycle.spares.has(i) ? MAX_NODE_SCORE : 0) }));
  return s;
}

export const preferSparesPlugin: ScorePlugin = {
  name: 'PreferSpares',
  prepare: (job, cycle) => (job.recovery === true && cycle.spares.size > 0 ? spareScorer(cycle) : undefined),
  describe: (i, cycle) => (cycle.spares.has(i) ? 'hot spare' : undefined),
};
