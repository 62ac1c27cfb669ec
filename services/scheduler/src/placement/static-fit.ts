// Static feasibility of a job: which nodes pass the filters that do not depend on what runs
// there (state, exclusions, GPU type, labels, GPU count). Jobs with the same shape share the
// result within a cycle, so a queue of thousands of similar jobs costs one scan per shape.
import type { ClusterState } from './cluster-state.js';
import { firstRejection, staticFilters, type NodeFilter } from './filters.js';
import type { JobRequest, RejectionCounts } from './types.js';

export interface StaticFit {
  /** 1 where the node passes every static filter. */
  mask: Uint8Array;
  /** Indices of those nodes, ascending. */
  candidates: Int32Array;
  /** Model ids the job accepts; undefined = any. */
  models: number[] | undefined;
  /** Static rejections per reason (the part of the explanation that waiting cannot fix). */
  rejections: RejectionCounts;
}

export function shapeKey(job: JobRequest): string {
  const selector = Object.entries(job.nodeSelector).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([job.gpusPerNode, [...job.gpuTypes].sort(), selector, [...job.excludeNodes].sort()]);
}

export function computeStaticFit(state: ClusterState, job: JobRequest, filters: readonly NodeFilter[] = staticFilters): StaticFit {
  const mask = new Uint8Array(state.size);
  const rejections: RejectionCounts = {};
  const candidates: number[] = [];
  for (let i = 0; i < state.size; i++) {
    const reason = firstRejection(filters, state.nodes[i]!, job);
    if (reason === undefined) {
      mask[i] = 1;
      candidates.push(i);
    } else {
      rejections[reason] = (rejections[reason] ?? 0) + 1;
    }
  }
  const models = job.gpuTypes.length === 0 ? undefined : state.models.flatMap((m, id) => (job.gpuTypes.includes(m) ? [id] : []));
  return { mask, candidates: Int32Array.from(candidates), models, rejections };
}

/** Per-cycle cache keyed by job shape (node states do not change within a cycle). */
export class StaticFitCache {
  private readonly cache = new Map<string, StaticFit>();
  constructor(private readonly state: ClusterState) {}
  get(job: JobRequest): StaticFit {
    const key = shapeKey(job);
    let fit = this.cache.get(key);
    if (!fit) {
      fit = computeStaticFit(this.state, job);
      this.cache.set(key, fit);
    }
    return fit;
  }
}
