// Builds the pure core's inputs from Redis records.
import { NodeState, RecoveryGrade, type Job, type Node, TopologyRequirement, nodeStateName } from '@gantry/proto';
import type { NodeRecord } from '@gantry/store';
import { PRIORITY_CLASSES, gpuType, nodeSelector, priorityOf as classPriority, type JobRequest, type NodeView, type RunningJob, type TopologyNeed } from './placement/index.js';
import { currentAttempt, liveRanks } from './jobs/lifecycle.js';

/** Numeric priority of a class; the gateway admits only known classes, anything else counts as `normal`. */
export function priorityOf(cls: string): number {
  try {
    return classPriority(cls);
  } catch {
    return PRIORITY_CLASSES.normal;
  }
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
    // A cordoned node takes no new work; the planner explains it by this name.
    state: n.cordoned && n.state === NodeState.NODE_STATE_READY ? 'CORDONED' : nodeStateName(n.state),
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
    lastBlamedAt: n.lastBlamedAt?.getTime(),
    lemon: n.lemon,
  };
}

/**
 * "All GPUs of the node" (gpus_per_node 0) as a number the planner can place: the most GPUs a
 * READY node that matches the job's GPU types and selector has. On a mixed pool this asks for
 * the biggest such nodes. 0 (no such node) is left for the planner to refuse with its reason.
 */
export class WholeNodeSizer {
  private readonly cache = new Map<string, number>();

  constructor(private readonly nodes: readonly NodeView[]) {}

  gpusPerNode(spec: { gpusPerNode: number; gpuTypes: string[]; nodeSelector: Record<string, string> }): number {
    if (spec.gpusPerNode !== 0) return spec.gpusPerNode;
    const key = JSON.stringify([spec.gpuTypes, spec.nodeSelector]);
    let n = this.cache.get(key);
    if (n === undefined) {
      const probe = { gpuTypes: spec.gpuTypes, nodeSelector: spec.nodeSelector } as JobRequest;
      n = Math.max(0, ...this.nodes.filter((v) => v.state === 'READY' && !gpuType(v, probe) && !nodeSelector(v, probe)).map((v) => v.gpuCount));
      this.cache.set(key, n);
    }
    return n;
  }
}

export function jobRequest(job: Job, sizer?: WholeNodeSizer): JobRequest {
  const s = job.spec!;
  return {
    id: job.id,
    tenant: s.tenant,
    nodes: s.nodes,
    gpusPerNode: sizer ? sizer.gpusPerNode(s) : s.gpusPerNode,
    gpuTypes: s.gpuTypes,
    priority: priorityOf(s.priorityClass),
    submitTime: job.createdAt?.getTime() ?? 0,
    timeLimitSec: s.timeLimitSeconds,
    topology: TOPOLOGY_NEEDS[s.topology] ?? 'any',
    nodeSelector: s.nodeSelector,
    // The spec's exclusions plus every node blamed for this job's node faults.
    excludeNodes: job.excludedNodes.length > 0 ? [...new Set([...s.excludeNodes, ...job.excludedNodes])] : s.excludeNodes,
    ...recoveryRequest(job),
  };
}

/** A recovering job's next attempt keeps the ranks its recovery decided to keep, and may take spares. */
function recoveryRequest(job: Job): Pick<JobRequest, 'keep' | 'recovery'> {
  const r = job.recovery;
  if (!r?.decided || r.grade === RecoveryGrade.RECOVERY_GRADE_MANUAL_RETRY) return {};
  return { recovery: true, keep: r.keep.map((p) => ({ rank: p.rank, node: p.node, gpus: p.gpuIndices })) };
}

/** runningJob views of cached jobs: a cached job is frozen, and a new revision is a new object. */
const runningViews = new WeakMap<Job, RunningJob>();

/**
 * runningJob(job, lastCheckpointMs, false), computed once per revision of a cached (frozen) job
 * when there is no checkpoint time to add: a pass views every placed job (41,000 on 10,000
 * nodes), and most of them have not changed since the last pass. The view must not be changed.
 */
export function holdingJob(job: Job, lastCheckpointMs: number | undefined): RunningJob {
  if (lastCheckpointMs !== undefined || !Object.isFrozen(job)) return runningJob(job, lastCheckpointMs, false);
  let view = runningViews.get(job);
  if (!view) {
    view = runningJob(job, undefined, false);
    runningViews.set(job, view);
  }
  return view;
}

/** A job holding GPUs, as the planner sees it (for preemption, backfill and quotas). */
export function runningJob(job: Job, lastCheckpointMs: number | undefined, terminating: boolean): RunningJob {
  const a = currentAttempt(job);
  // Only ranks that have not exited hold GPUs: an exited rank's GPUs may already be someone else's.
  const live = liveRanks(job);
  return {
    id: job.id,
    tenant: job.spec?.tenant ?? '',
    priority: priorityOf(job.spec?.priorityClass ?? ''),
    ranks: live.map((p) => ({ rank: p.rank, node: p.node, gpus: p.gpuIndices })),
    // The time limit runs from placement (when the GPUs were claimed): the same clock the
    // scheduler enforces it on and backfill reasons with.
    startTime: (a?.scheduledAt ?? job.createdAt ?? new Date(0)).getTime(),
    timeLimitSec: job.spec?.timeLimitSeconds ?? 0,
    // A checkpoint from before this attempt began does not shorten this attempt's lost work.
    lastCheckpointTime: lastCheckpointMs === undefined ? undefined : Math.max(lastCheckpointMs, (a?.scheduledAt ?? new Date(0)).getTime()),
    preemptedAt: job.preemptedAt?.getTime(),
    terminating,
  };
}
