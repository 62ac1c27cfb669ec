// The scheduler's pure core works on plain values: a snapshot of the cluster taken from
// Redis, the queue of pending jobs, and the running jobs. It returns a plan; it never does
// I/O. The service (cycle.ts) builds the snapshot and commits the plan with compare-and-set.

export interface NodeTopology {
  nvlinkDomain: string;
  leafSwitch: string;
  spine: string;
  rack: string;
}

export interface NodeView {
  name: string;
  /** Only READY nodes take new work; the state is kept for explanations. */
  state: string;
  gpuModel: string;
  gpuCount: number;
  /** Indices of GPUs not allocated to any job, ascending. */
  freeGpus: number[];
  labels: Record<string, string>;
  topology: NodeTopology;
}

export type TopologyNeed = 'any' | 'same-nvlink-domain' | 'same-switch' | 'same-spine';

export interface JobRequest {
  id: string;
  tenant: string;
  nodes: number;
  gpusPerNode: number;
  /** Acceptable GPU models; empty = any. */
  gpuTypes: string[];
  /** Higher runs first. */
  priority: number;
  /** Milliseconds since epoch; FIFO order within a priority. */
  submitTime: number;
  /** 0 = none. */
  timeLimitSec: number;
  topology: TopologyNeed;
  nodeSelector: Record<string, string>;
  excludeNodes: string[];
}

export interface RankAssignment {
  rank: number;
  node: string;
  gpus: number[];
}

/** Per-reason counts of nodes a filter rejected, e.g. { 'insufficient free GPUs': 4011 }. */
export type RejectionCounts = Record<string, number>;

export type PlaceResult =
  | { ok: true; ranks: RankAssignment[]; /** e.g. "leaf switch leaf-3" */ domain: string }
  | { ok: false; rejections: RejectionCounts; message: string };

export interface Placement {
  jobId: string;
  ranks: RankAssignment[];
  domain: string;
}

export interface Unschedulable {
  jobId: string;
  /** 1-based position in the pending queue after ordering. */
  queuePosition: number;
  rejections: RejectionCounts;
  message: string;
}

export interface Plan {
  placements: Placement[];
  unschedulable: Unschedulable[];
}
