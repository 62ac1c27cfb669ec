// Gang placement of one job on a snapshot: all requested nodes or none, topology-aware.
// planCycle does this for a whole queue; placeGang is the one-job entry point (tests, tools).
import { ClusterState, gpuIndices } from './cluster-state.js';
import { explainRejections } from './explain.js';
import { DEFAULT_PLUGINS, type PluginRegistry } from './framework/registry.js';
import { assignGpus } from './plugins/gpu-locality/index.js';
import { computeStaticFit } from './static-fit.js';
import { selectNodes } from './topology.js';
import type { JobRequest, NodeView, PlaceResult } from './types.js';

export function placeGang(nodes: readonly NodeView[], job: JobRequest, plugins: PluginRegistry = DEFAULT_PLUGINS): PlaceResult {
  const state = new ClusterState(nodes);
  const fit = computeStaticFit(state, job, plugins);
  const outcome = selectNodes(state, job, fit, { free: state.freeCount });
  if (!outcome.ok) return { ok: false, rejections: explainRejections(state, job, fit, undefined, false), message: outcome.message };
  return {
    ok: true,
    domain: outcome.domain,
    explanation: outcome.explanation,
    ranks: outcome.nodes.map((i, rank) => ({
      rank,
      node: nodes[i]!.name,
      gpus: assignGpus(state.freeMask[i]!, nodes[i]!.gpuCount, job.gpusPerNode, outcome.gpus?.[rank]),
    })),
  };
}

/** Free GPU indices of a node in a state (for tests and tools). */
export function freeGpusOf(state: ClusterState, name: string): number[] {
  const i = state.byName.get(name);
  return i === undefined ? [] : gpuIndices(state.freeMask[i]!);
}
