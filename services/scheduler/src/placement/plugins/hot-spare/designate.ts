// Which nodes are held as hot spares this cycle. Each pool holds `count` READY nodes whose
// GPU model contains its `gpuType` (any model when absent), in every leaf switch when
// `perLeafSwitch`, else across the cluster. Candidates are fully idle nodes and, when
// preemptible work may use spares, nodes running only such work (a recovery job preempts
// it); never a node blamed for a node fault within `recovery.blamePenaltySec`; idle ones
// first, then the least recently blamed, then by name. The choice depends
// only on the snapshot, so it is the same cycle after cycle while nothing changes, and a
// spare that a recovery job took is replaced from the healthy idle nodes in the next cycle.
import type { ClusterState } from '../../cluster-state.js';
import type { SchedulingConfig } from '../../config.js';
import { PRIORITY_CLASSES } from '../../priority.js';
import type { JobRequest, RunningJob } from '../../types.js';

/** Priorities below `low` are the preemptible class (priorityClassName calls them preemptible+n). */
export const isPreemptibleClass = (priority: number): boolean => priority < PRIORITY_CLASSES.low;

export interface SpareInputs {
  state: ClusterState;
  spares: SchedulingConfig['spares'];
  running: readonly RunningJob[];
  /** Nodes a pending job keeps ranks on are never taken as spares (the job is coming back). */
  pending: readonly JobRequest[];
  /** Milliseconds since epoch, and how long a blamed node stays under suspicion. */
  now: number;
  blamePenaltySec: number;
}

export function designateSpares({ state, spares, running, pending, now, blamePenaltySec }: SpareInputs): Set<number> {
  const out = new Set<number>();
  if (spares.pools.every((p) => p.count === 0)) return out;
  const claimed = new Set<number>();
  for (const job of pending) for (const r of job.keep ?? []) claimed.add(state.byName.get(r.node) ?? -1);
  // GPUs held by preemptible work per node: such a node may be a spare when that work may use spares.
  const preemptible = new Int32Array(state.size);
  if (spares.allowPreemptible) {
    for (const job of running) {
      if (!isPreemptibleClass(job.priority)) continue;
      for (const r of job.ranks) {
        const i = state.byName.get(r.node);
        if (i !== undefined) preemptible[i] = preemptible[i]! + r.gpus.length;
      }
    }
  }
  const idle: number[] = [];
  const busy: number[] = [];
  for (let i = 0; i < state.size; i++) {
    const capacity = Math.min(state.nodes[i]!.gpuCount, 32);
    // A spare stands in for a faulty node: one blamed for a node fault recently is not healthy.
    const blamedAt = state.nodes[i]!.lastBlamedAt;
    const suspect = blamedAt !== undefined && now - blamedAt < blamePenaltySec * 1000;
    if (!state.ready[i] || capacity === 0 || claimed.has(i) || suspect) continue;
    if (state.freeCount[i] === capacity) idle.push(i);
    else if (state.freeCount[i]! + preemptible[i]! >= capacity) busy.push(i);
  }
  const byHealth = (a: number, b: number) => {
    const ba = state.nodes[a]!.lastBlamedAt ?? -Infinity;
    const bb = state.nodes[b]!.lastBlamedAt ?? -Infinity;
    const na = state.nodes[a]!.name;
    const nb = state.nodes[b]!.name;
    return ba - bb || (na < nb ? -1 : na > nb ? 1 : 0);
  };
  const order = [...idle.sort(byHealth), ...busy.sort(byHealth)];
  for (const pool of spares.pools) {
    if (pool.count === 0) continue;
    const models = state.models.map((m) => pool.gpuType === undefined || m.includes(pool.gpuType));
    // Spares taken so far per group: the leaf switch the node reports (nodes that report none
    // form one group, rather than each being its own switch), or the whole cluster.
    const taken = new Map<string, number>();
    for (const i of order) {
      if (out.has(i) || !models[state.model[i]!]) continue;
      const group = pool.perLeafSwitch ? state.nodes[i]!.topology.leafSwitch : '';
      const n = taken.get(group) ?? 0;
      if (n >= pool.count) continue;
      taken.set(group, n + 1);
      out.add(i);
    }
  }
  return out;
}
