// What the evaluator takes in per window and gives back. Inputs are the messages the agents
// already send (gantry.v1 TelemetryBatch and XidEvent) plus what the scheduler knows about
// nodes, heartbeats and jobs; outputs are decisions the scheduler turns into node
// transitions, events and recovery signals.
import type { TelemetryBatch, XidEvent } from '@gantry/proto';
import type { XidAction } from './xid-actions.js';

export type HealthStatus = 'READY' | 'SUSPECT' | 'QUARANTINED';

export interface HealthNodeInfo {
  name: string;
  /** Topology.leaf_switch: the fabric segment for shared-fault grouping. */
  leafSwitch?: string;
  /**
   * The node's registered GPU UUIDs (re-fingerprinted by the agent); when absent the
   * evaluator learns the inventory from the batches.
   */
  gpuUuids?: readonly string[];
}

export interface HeartbeatInfo {
  /** When the scheduler last heard from the agent (ms since the epoch). */
  lastSeenMs: number;
  /** The longest silence between two heartbeats within the window, if the scheduler tracks it. */
  longestGapMs?: number;
}

export interface NcclTimeoutLine {
  node: string;
  timeMs: number;
  line: string;
}

export interface JobInfo {
  id: string;
  /** The job's nodes; GPU utilisation of co-scheduled nodes is compared for stragglers. */
  nodes: readonly string[];
  /** When the job last wrote a log line (any rank). */
  lastLogMs?: number;
  /** When the current attempt started running: a job younger than the hang time is not judged. */
  startedMs?: number;
  /** NCCL watchdog / collective timeout lines seen in the window. */
  ncclTimeouts?: readonly NcclTimeoutLine[];
}

export interface OperatorAction {
  node: string;
  /**
   * release: back to READY, latches and evidence cleared; remediated: the GPU reset / reboot /
   * repair asked for was done (latch cleared, the node then has to stay clean to be READY);
   * quarantine: hold the node out until released.
   */
  action: 'release' | 'remediated' | 'quarantine';
  reason?: string;
}

export interface HealthWindowInput {
  /** End of the window (ms since the epoch); windows must come in time order. */
  nowMs: number;
  batches?: readonly TelemetryBatch[];
  xids?: readonly XidEvent[];
  /** By node. */
  heartbeats?: Readonly<Record<string, HeartbeatInfo>>;
  /** The nodes to judge, with topology; when absent, every node seen in batches or state. */
  nodes?: readonly HealthNodeInfo[];
  jobs?: readonly JobInfo[];
  operator?: readonly OperatorAction[];
}

/** One signal's part in a node's score: what `gantry node explain` prints. */
export interface HealthReason {
  /** Signal key: "gpu.ecc_sbe_rate", "nfs.rtt_ms@10.0.0.11:/checkpoints", "xid.memory". */
  signal: string;
  value: number;
  /** The node's own baseline (median of its recent normal windows). */
  baseline?: number;
  /** Median of the peers' values this window. */
  peerMedian?: number;
  zOwn?: number;
  zPeer?: number;
  weight: number;
  /** Points this signal adds to the score now (decayed evidence x weight). */
  contribution: number;
  gpu?: number;
  detail?: string;
  /** Set when a shared fault took this signal off the host's score. */
  attributedTo?: string;
}

export interface HealthTransition {
  node: string;
  from: HealthStatus;
  to: HealthStatus;
  atMs: number;
  score: number;
  reason: string;
}

export interface HealthAction {
  node: string;
  action: XidAction;
  atMs: number;
  reason: string;
  gpu?: number;
  gpuUuid?: string;
  xid?: number;
  /** The XID event id, for de-duplication by the caller. */
  eventId?: string;
}

export interface NodeDecision {
  node: string;
  status: HealthStatus;
  score: number;
  /** Contributing signals, largest first (only those adding points, plus suppressed ones). */
  reasons: HealthReason[];
  /** Transitions made in this window (usually none). */
  transitions: HealthTransition[];
  /** XID / inventory actions decided in this window. */
  actions: HealthAction[];
  /** A hard action holds the node until it is remediated or released. */
  hold?: { action: XidAction; reason: string; sinceMs: number };
  lemon: boolean;
}

export type SharedFaultKind = 'storage' | 'fabric' | 'management';

export interface SharedFaultFlag {
  kind: SharedFaultKind;
  /** "10.0.0.11:/checkpoints" (server:export) or a leaf switch name. */
  target: string;
  active: boolean;
  sinceMs: number;
  /** Set on the window the flag clears. */
  clearedMs?: number;
  /** Nodes degraded in this window, of the total on the target. */
  degradedNodes: string[];
  totalNodes: number;
  signals: string[];
}

export interface ProgressFinding {
  kind: 'hang' | 'straggler';
  job: string;
  /** The node to blame when one can be named. */
  node?: string;
  sinceMs: number;
  detectedAtMs: number;
  evidence: string[];
  /** A shared fault active on the job's nodes when it hung: the likely cause, not a host. */
  cause?: { kind: SharedFaultKind; target: string };
}

export interface LemonFlag {
  node: string;
  sinceMs: number;
  incidents: Array<{ atMs: number; kind: string; detail: string }>;
}
