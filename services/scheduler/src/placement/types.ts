// The scheduler's pure core works on plain values: a snapshot of the cluster taken from
// Redis, the queue of pending jobs, and the running jobs. It returns a plan; it never does
// I/O and never reads the clock (time comes in as `CycleOptions.now`). The service builds
// the snapshot and commits the plan with compare-and-set.
import type { SchedulingConfigInput } from './config.js';
import type { PluginRegistry } from './framework/registry.js';

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
  /** When recovery last blamed the node for a node fault (ms); scored down for everyone for a while. */
  lastBlamedAt?: number;
  /** The health detector marked the node a repeat offender (Node.lemon). */
  lemon?: boolean;
}

export type TopologyNeed = 'any' | 'same-nvlink-domain' | 'same-switch' | 'same-spine';

export interface JobRequest {
  id: string;
  tenant: string;
  nodes: number;
  gpusPerNode: number;
  /** Acceptable GPU models; empty = any. */
  gpuTypes: string[];
  /** Higher runs first; see PRIORITY_CLASSES for the named classes. */
  priority: number;
  /** Milliseconds since epoch; FIFO order within a priority and fair-share rank. */
  submitTime: number;
  /** 0 = none. Jobs without a limit never backfill in front of a reservation. */
  timeLimitSec: number;
  topology: TopologyNeed;
  nodeSelector: Record<string, string>;
  excludeNodes: string[];
  /**
   * Recovery: node ranks the next attempt keeps (restart in place: all of them; replace
   * nodes: the healthy ones). The planner places the kept ranks on their nodes and fills the
   * others, or, when that is impossible, places the whole gang anew (Placement.kept says which).
   */
  keep?: RankAssignment[];
  /** A recovery attempt: may take hot spares, and prefers them for the nodes it needs. */
  recovery?: boolean;
}

/** A job that holds GPUs now: what preemption may take and what backfill waits for. */
export interface RunningJob {
  id: string;
  tenant: string;
  priority: number;
  /** The GPUs it holds (they are already missing from the nodes' freeGpus). */
  ranks: RankAssignment[];
  /** Milliseconds since epoch. */
  startTime: number;
  /** 0 = none: the job never ends as far as reservations are concerned. */
  timeLimitSec: number;
  /** Last committed checkpoint (ms); work since then is lost if it is preempted. */
  lastCheckpointTime?: number;
  /** When it was last preempted (ms); inside the anti-loop window it is not preempted again. */
  preemptedAt?: number;
  /**
   * Preemption has been signalled and its GPUs are about to be released. Such a job is not
   * a victim again, and its GPUs count as already released for whoever waits for them.
   */
  terminating?: boolean;
}

export interface CycleOptions {
  /** Milliseconds since epoch. Defaults to the latest submit/start time seen in the input. */
  now?: number;
  /** Jobs holding GPUs; needed for preemption, backfill reservations and quotas. */
  running?: readonly RunningJob[];
  /** Tenants, quotas, fair share, preemption and backfill settings (parseSchedulingConfig). */
  config?: SchedulingConfigInput;
  /** Decayed GPU-seconds per tenant at `now` (see accrueUsage); drives fair-share order. */
  usage?: Readonly<Record<string, number>>;
  /**
   * Instrumentation only: a monotonic clock in ms (e.g. performance.now). When given, the
   * plan records how long each job's decision took. The logic never depends on it.
   */
  clock?: () => number;
  /** Filter and score plugins and their weights; DEFAULT_PLUGINS when absent. */
  plugins?: PluginRegistry;
  /**
   * Decide only the first `depth` jobs of the ordered queue (Slurm's default_queue_depth for
   * its event-triggered passes); the rest are listed in `CyclePlan.unevaluated`, untouched.
   * Absent: the whole queue.
   */
  depth?: number;
}

export interface RankAssignment {
  rank: number;
  node: string;
  gpus: number[];
}

/** Per-reason counts of nodes a filter rejected, e.g. { 'insufficient free GPUs': 4011 }. */
export type RejectionCounts = Record<string, number>;

export type PlaceResult =
  | { ok: true; ranks: RankAssignment[]; /** e.g. "leaf switch leaf-3" */ domain: string; explanation?: string }
  | { ok: false; rejections: RejectionCounts; message: string };

export interface Placement {
  jobId: string;
  ranks: RankAssignment[];
  domain: string;
  /** Topology level of `domain`. */
  level?: DomainLevel;
  /** Why these nodes: domain, best-fit score, borrowing. */
  explanation?: string;
  /** GPUs above the tenant's nominal quota, borrowed from its cohort (reclaimable). */
  borrowedGpus?: number;
  /** For a request with `keep`: whether every kept rank stayed on its node. */
  kept?: boolean;
  /** Hot spares this placement took. */
  spares?: string[];
}

export type DomainLevel = 'nvlink' | 'leaf' | 'spine' | 'cluster';

/** Why a job did not start this cycle (machine-readable; `message` is the human version). */
export type PendingReason =
  | 'invalid' // the request can never be valid (e.g. 0 nodes)
  | 'no-capacity' // not enough eligible nodes with free GPUs now
  | 'topology' // enough nodes, but not inside one required domain
  | 'quota' // the tenant's quota (and borrowing) does not allow it
  | 'reservation' // would delay the head job's reservation (EASY backfill)
  | 'waiting-for-preemption'; // victims chosen; starts once their GPUs are released

export interface Unschedulable {
  jobId: string;
  /** 1-based position in the pending queue after ordering. */
  queuePosition: number;
  rejections: RejectionCounts;
  message: string;
  reason?: PendingReason;
  /** e.g. "tenant ml-research at 512/512 GPUs nominal, borrowing disabled". */
  quota?: string;
  /** Set on the head job that holds the backfill reservation. */
  reservation?: Reservation;
}

export interface Preemption {
  /** The running job to stop (SIGTERM, grace, requeue). */
  jobId: string;
  /** The pending job that needs its GPUs. */
  preemptorId: string;
  /** e.g. "lower priority (low < high)" or "reclaiming quota lent by tenant ml". */
  reason: string;
}

export interface Reservation {
  jobId: string;
  /** Earliest time (ms) the job can start given running jobs' time limits. */
  startTime: number;
  /** Nodes the job is expected to use then; backfill must not delay them. */
  nodes: string[];
}

/** A preemptor that waits for its victims' GPUs; the nodes are held for it this cycle. */
export interface Nomination {
  jobId: string;
  nodes: string[];
  /** Running jobs whose GPUs it waits for (new victims and ones already terminating). */
  waitingFor: string[];
}

export interface DecisionTiming {
  jobId: string;
  nodes: number;
  gpusPerNode: number;
  placed: boolean;
  ms: number;
}

export interface Plan {
  placements: Placement[];
  unschedulable: Unschedulable[];
  preemptions?: Preemption[];
  reservations?: Reservation[];
  nominations?: Nomination[];
  timings?: DecisionTiming[];
}

/** What planCycle returns: a Plan whose optional lists are always filled. */
export interface CyclePlan extends Plan {
  preemptions: Preemption[];
  reservations: Reservation[];
  /** Jobs beyond `CycleOptions.depth`, in queue order: neither placed nor explained this cycle. */
  unevaluated: string[];
  nominations: Nomination[];
}
