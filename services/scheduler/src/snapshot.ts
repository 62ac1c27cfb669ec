// Builds the pure core's inputs from Redis records.
import { type Job, type Node, NodeState, TopologyRequirement, nodeStateName } from '@gantry/proto';
import type { NodeRecord } from '@gantry/store';
import type { JobRequest, NodeView, TopologyNeed } from './placement/index.js';

/** Numeric priority of a class; unknown or empty classes are `normal`. */
export const PRIORITY_CLASSES: Record<string, number> = { critical: 1000, high: 100, normal: 0, low: -100, preemptible: -1000 };

export function priorityOf(cls: string): number {
  return PRIORITY_CLASSES[cls] ?? 0;
}

const TOPOLOGY_NEEDS: Record<TopologyRequirement, TopologyNeed> = {
  [TopologyRequirement.TOPOLOGY_REQUIREMENT_UNSPECIFIED]: 'any',
  [TopologyRequirement.TOPOLOGY_REQUIREMENT_SAME_NVLINK_DOMAIN]: 'same-nvlink-domain',
  [TopologyRequirement.TOPOLOGY_REQUIREMENT_SAME_SWITCH]: 'same-switch',
  [TopologyRequirement.TOPOLOGY_REQUIREMENT_SAME_SPINE]: 'same-spine',
  [TopologyRequirement.UNRECOGNIZED]: 'any',
};

export function nodeView(rec: NodeRecord): NodeView {
  const n: Node = rec.node;
  const used = new Set(rec.allocations.map((a) => a.gpuIndex));
  return {
    name: n.name,
    state: nodeStateName(n.state),
    gpuModel: n.gpus[0]?.model ?? '',
    gpuCount: n.gpus.length,
    freeGpus: n.gpus.map((g) => g.index).filter((i) => !used.has(i)).sort((a, b) => a - b),
    labels: n.labels,
    topology: {
      nvlinkDomain: n.topology?.nvlinkDomain || n.name,
      leafSwitch: n.topology?.leafSwitch ?? '',
      spine: n.topology?.spine ?? '',
      rack: n.topology?.rack ?? '',
    },
  };
}

export function jobRequest(job: Job): JobRequest {
  const s = job.spec!;
  return {
    id: job.id,
    tenant: s.tenant,
    nodes: s.nodes,
    gpusPerNode: s.gpusPerNode,
    gpuTypes: s.gpuTypes,
    priority: priorityOf(s.priorityClass),
    submitTime: job.createdAt?.getTime() ?? 0,
    timeLimitSec: s.timeLimitSeconds,
    topology: TOPOLOGY_NEEDS[s.topology] ?? 'any',
    nodeSelector: s.nodeSelector,
    excludeNodes: s.excludeNodes,
  };
}

export function isSchedulable(n: Node): boolean {
  return n.state === NodeState.NODE_STATE_READY;
}
