// Gang placement of one job on a snapshot: all requested nodes or none, topology-aware.
// planCycle does this for a whole queue; placeGang is the one-job entry point (tests, tools).
import { ClusterState, gpuIndices } from './cluster-state.js';
import { defaultFilters, type NodeFilter } from './filters.js';
import { pickGpus } from './scores/gpu-locality.js';
import { computeStaticFit } from './static-fit.js';
import { selectNodes } from './topology.js';
import type { JobRequest, NodeView, PlaceResult } from './types.js';

export function placeGang(nodes: readonly NodeView[], job: JobRequest, filters: readonly NodeFilter[] = defaultFilters): PlaceResult {
  const state = new ClusterState(nodes);
  // The filters see each node's current freeGpus, so the capacity filters apply too.
  const fit = computeStaticFit(state, job, filters);
  const outcome = selectNodes(state, job, fit, { free: state.freeCount });
  if (!outcome.ok) return { ok: false, rejections: fit.rejections, message: outcome.message };
  return {
    ok: true,
    domain: outcome.domain,
    explanation: outcome.explanation,
    ranks: outcome.nodes.map((i, rank) => ({
      rank,
      node: nodes[i]!.name,
      gpus: pickGpus(state.freeMask[i]!, nodes[i]!.gpuCount, job.gpusPerNode),
    })),
  };
}

/** Free GPU indices of a node in a state (for tests and tools). */
export function freeGpusOf(state: ClusterState, name: string): number[] {
  const i = state.byName.get(name);
  return i === undefined ? [] : gpuIndices(state.freeMask[i]!);
}
