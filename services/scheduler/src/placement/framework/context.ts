// The cycle's context for plugins (kube's CycleState): the indexed snapshot, the policy, the
// time and the hot spares designated for this cycle.
import type { ClusterState } from '../cluster-state.js';
import { DEFAULT_CONFIG, type SchedulingConfig } from '../config.js';
import { designateSpares } from '../plugins/hot-spare/index.js';
import type { JobRequest, RunningJob } from '../types.js';
import type { CycleContext } from './types.js';

export interface CycleInputs {
  state: ClusterState;
  config?: SchedulingConfig;
  now?: number;
  running?: readonly RunningJob[];
  pending?: readonly JobRequest[];
}

/** A context for one cycle; without config or jobs (tools, tests), one without spares at time 0. */
export function createCycleContext({ state, config = DEFAULT_CONFIG, now = 0, running = [], pending = [] }: CycleInputs): CycleContext {
  const spares = designateSpares({ state, spares: config.spares, running, pending, now, blamePenaltySec: config.recovery.blamePenaltySec });
  return { state, config, now, spares, spareNames: new Set([...spares].map((i) => state.nodes[i]!.name)) };
}
