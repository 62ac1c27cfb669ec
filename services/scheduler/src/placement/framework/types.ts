// The planner's extension points, modelled on kube-scheduler's framework. A plugin lives in
// its own folder under plugins/ and implements one or more of:
//   Filter  - whether a node can take one rank of a job; a failing filter returns its reason
//             (one of the plugin's reason constants), which `gantry job explain` counts.
//   Score   - a preference among nodes that pass every filter, normalised to
//             0..MAX_NODE_SCORE; the registry weights and sums the active ones.
// Best fit (plugins/best-fit) orders domains and nodes among equally scored ones and GPU
// locality (plugins/gpu-locality) picks GPU indices on a chosen node; both are fixed stages
// of gang selection rather than weighted scores (see docs/scheduling.md, section 4).
//
// Filters come in stages because a cycle evaluates them at different costs:
//   class    - reads only what NodeClasses groups nodes by (state, GPU model and count, and
//              labels when `labels(job)` says so): run once per node class and job shape.
//   node     - reads the node's identity but is shared by every job with the same `key`
//              (hot spares): run only on the nodes `affected` lists, once per job shape.
//   job      - a list particular to one job (exclusions): applied to the shape's result as a
//              cheap post-filter, never part of the shape key.
//   capacity - reads the scenario (free GPUs, the backfill reservation): run per selection.
import type { ClusterState } from '../cluster-state.js';
import type { SchedulingConfig } from '../config.js';
import type { JobRequest, NodeView } from '../types.js';

/** undefined when the node passes; otherwise why not, a key of the job's rejection counts. */
export type FilterStatus = string | undefined;

/** Scores are normalised to 0..MAX_NODE_SCORE before weighting (kube's MaxNodeScore). */
export const MAX_NODE_SCORE = 100;

/**
 * What every plugin may read about the cycle: fixed while the cycle runs. A plugin that
 * computes something once per cycle keeps it in a WeakMap keyed by this object.
 */
export interface CycleContext {
  readonly state: ClusterState;
  readonly config: SchedulingConfig;
  /** Milliseconds since epoch. */
  readonly now: number;
  /** Indices of the nodes held as hot spares this cycle (plugins/hot-spare). */
  readonly spares: ReadonlySet<number>;
  /** The same by name (running jobs name their nodes). */
  readonly spareNames: ReadonlySet<string>;
}

/** Slack of a node outside the reservation: anything fits. */
export const NOT_RESERVED = 1 << 30;

/** The head job's reservation as seen by later jobs (EASY backfill). */
export interface ReservationGuard {
  jobId: string;
  startTime: number;
  /** Per node: GPUs still spare at startTime; NOT_RESERVED for nodes it does not need. */
  slack: Int32Array;
}

/** Free GPUs per node in a "what if" (now, with victims released, at time T), for capacity filters. */
export interface Scenario {
  free: ArrayLike<number>;
  guard?: ReservationGuard;
  /** The job ends before the guard's reservation starts, so it cannot delay it. */
  endsBefore?: boolean;
}

/**
 * What a capacity filter needs beyond the node itself, for one node in the scenario. The
 * planner may reuse one context from call to call: read it during the call, do not keep it.
 */
export interface FilterContext {
  /** Free GPUs on the node in this scenario (now, or with preemption victims released). */
  free: number;
  /** Set when the node is part of the head job's backfill reservation. */
  reservation?: {
    jobId: string;
    /** GPUs on the node that are still spare at the reservation's start. */
    slack: number;
    /** Whether this job ends before the reservation starts (then it cannot delay it). */
    endsBefore: boolean;
  };
}

/**
 * The plain form of a filter, as each plugin exports it. The reason names the *kind* of
 * misfit (node-specific numbers stay out, except where they say what to change).
 */
export type NodeFilter = (node: NodeView, job: JobRequest, ctx?: FilterContext) => FilterStatus;

interface Plugin {
  /** Unique in a registry, PascalCase like kube-scheduler's (e.g. "NodeReady"). */
  readonly name: string;
}

export interface ClassFilterPlugin extends Plugin {
  readonly stage: 'class';
  /** The part of the job the filter reads, for the shape key ('' when nothing beyond gpusPerNode). */
  key(job: JobRequest): string;
  /** Whether the filter reads labels for this job (then node classes are split by labels). */
  labels?(job: JobRequest): boolean;
  filter(node: NodeView, job: JobRequest): FilterStatus;
}

export interface NodeFilterPlugin extends Plugin {
  readonly stage: 'node';
  key(job: JobRequest, cycle: CycleContext): string;
  /** The only nodes the filter can reject for this job; it passes every other node. */
  affected(job: JobRequest, cycle: CycleContext): Iterable<number>;
  filter(node: NodeView, i: number, job: JobRequest, cycle: CycleContext): FilterStatus;
}

/** Where a job filter lists node indices: an array will do (the planner passes a reused scratch list). */
export interface NodeSink {
  push(i: number): void;
}

export interface JobFilterPlugin extends Plugin {
  readonly stage: 'job';
  /** Pushes into `into` the nodes this job's own list names (indices in the snapshot; unknown names dropped). */
  affected(job: JobRequest, cycle: CycleContext, into: NodeSink): void;
  /**
   * When set: the filter rejects every node `affected` names, always with this reason, and
   * passes every other node. The planner then knows a named node's verdict without calling
   * the filter (explanations of a long queue would otherwise call it for every named node).
   */
  readonly rejects?: string;
  filter(node: NodeView, i: number, job: JobRequest, cycle: CycleContext): FilterStatus;
}

export interface CapacityFilterPlugin extends Plugin {
  readonly stage: 'capacity';
  /** The hot path: whether node i takes `gpus` GPUs in the scenario (no allocation, no reason). */
  admits(scenario: Scenario, i: number, gpus: number): boolean;
  filter(node: NodeView, job: JobRequest, ctx: FilterContext): FilterStatus;
}

export type StaticFilterPlugin = ClassFilterPlugin | NodeFilterPlugin | JobFilterPlugin;
export type FilterPlugin = StaticFilterPlugin | CapacityFilterPlugin;

/** One job's view of a score plugin (kube's PreScore + Score). */
export interface NodeScorer {
  /** 0..MAX_NODE_SCORE for node i (already normalised). */
  score(i: number): number;
  /**
   * When set: exactly the nodes scored below MAX_NODE_SCORE (every other node scores the
   * maximum). Lets the single-node fast path skip them instead of scoring every node.
   */
  readonly lowered?: ReadonlySet<number>;
}

export interface ScorePlugin extends Plugin {
  /** The job's scorer, or undefined when the plugin would score every node alike (skipped). */
  prepare(job: JobRequest, cycle: CycleContext): NodeScorer | undefined;
  /** How a chosen node's score reads in an explanation, when it is worth saying (e.g. "hot spare"). */
  describe?(i: number, cycle: CycleContext): string | undefined;
}

export interface WeightedScore {
  readonly plugin: ScorePlugin;
  /** > 0; the weighted sum of the active plugins orders nodes before best fit does. */
  readonly weight: number;
}
