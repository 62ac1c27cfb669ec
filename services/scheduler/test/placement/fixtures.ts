// Builders for clusters and jobs used by the placement tests.
import type { JobRequest, NodeView, RunningJob } from '../../src/placement/index.js';

export interface ClusterShape {
  spines?: number;
  leavesPerSpine?: number;
  nodesPerLeaf?: number;
  gpusPerNode?: number;
  /** Nodes per NVLink domain (1 = each node its own). */
  nvlinkSize?: number;
  model?: (index: number) => string;
}

export function cluster(shape: ClusterShape = {}): NodeView[] {
  const { spines = 1, leavesPerSpine = 2, nodesPerLeaf = 4, gpusPerNode = 8, nvlinkSize = 1, model = () => 'H100' } = shape;
  const nodes: NodeView[] = [];
  let i = 0;
  for (let s = 0; s < spines; s++) {
    for (let l = 0; l < leavesPerSpine; l++) {
      for (let n = 0; n < nodesPerLeaf; n++) {
        const leaf = s * leavesPerSpine + l;
        nodes.push({
          name: `n${String(i).padStart(4, '0')}`,
          state: 'READY',
          gpuModel: model(i),
          gpuCount: gpusPerNode,
          freeGpus: Array.from({ length: gpusPerNode }, (_, g) => g),
          labels: {},
          topology: { nvlinkDomain: `nvl-${Math.floor(i / nvlinkSize)}`, leafSwitch: `leaf-${leaf}`, spine: `spine-${s}`, rack: `rack-${Math.floor(i / 4)}` },
        });
        i++;
      }
    }
  }
  return nodes;
}

export function job(id: string, over: Partial<JobRequest> = {}): JobRequest {
  return {
    id,
    tenant: 't',
    nodes: 1,
    gpusPerNode: 8,
    gpuTypes: [],
    priority: 500,
    submitTime: 0,
    timeLimitSec: 0,
    topology: 'any',
    nodeSelector: {},
    excludeNodes: [],
    ...over,
  };
}

/** Marks GPUs as used on nodes (mutates the given views) and returns the running job. */
export function occupy(nodes: NodeView[], id: string, where: Record<string, number[]>, over: Partial<RunningJob> = {}): RunningJob {
  const ranks = Object.entries(where).map(([node, gpus], rank) => {
    const view = nodes.find((n) => n.name === node);
    if (!view) throw new Error(`no node ${node}`);
    for (const g of gpus) {
      if (!view.freeGpus.includes(g)) throw new Error(`GPU ${g} on ${node} already used`);
    }
    view.freeGpus = view.freeGpus.filter((g) => !gpus.includes(g));
    return { rank, node, gpus };
  });
  return { id, tenant: 't', priority: 500, ranks, startTime: 0, timeLimitSec: 0, ...over };
}
