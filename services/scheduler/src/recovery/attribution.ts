// Who failed first, and why. Pure: from an attempt's rank exits (with the errors the ranks
// reported) and the fault signals seen while it ran (fatal XIDs, lost nodes), the class of
// the failure, the rank and node to blame, and the evidence.
//
// The first rank to exit is often not the culprit: in a 2-node torchrun job whose node-1
// worker raised, node-0's workers die of "Connection closed by peer" and node-0's torchrun
// may well exit first. So exits are not simply ordered by time: an error that is the echo
// of a lost peer (connection reset, NCCL/gloo transport errors, watchdog timeouts) or a
// stop Gantry itself sent ranks after the failure never outranks an error of its own kind.
import { FailureClass, FaultSignal, JobFailure, RankPhase, type Attempt, type RankStatus } from '@gantry/proto';

/** Errors that a rank raises because a peer went away, not because of its own fault. */
const PEER_ERROR = new RegExp([
  'connection (closed|reset|refused) by peer', 'connection reset', 'broken pipe', 'ECONNRESET', 'EPIPE',
  'DistNetworkError', 'DistBackendError', 'RendezvousClosedError', 'RendezvousTimeoutError', 'remote process exited',
  'NCCL (communicator was aborted|error: remote)', 'ncclRemoteError', 'watchdog (caught|timeout)', 'Socket Timeout',
  'timed out', 'Timeout', 'gloo.*(closed|reset|read|write)', 'ProcessGroup.*(abort|timeout)', 'SignalException',
].join('|'), 'i');

/** Signal classes that explain a failure when no node fault does, strongest first. */
const SECONDARY_SIGNALS = [FailureClass.FAILURE_CLASS_GPU_CONTAINED, FailureClass.FAILURE_CLASS_INFRASTRUCTURE, FailureClass.FAILURE_CLASS_HANG];
const SIGNAL_WHAT = new Map([
  [FailureClass.FAILURE_CLASS_NODE_FAULT, 'node fault'],
  [FailureClass.FAILURE_CLASS_GPU_CONTAINED, 'contained GPU error'],
  [FailureClass.FAILURE_CLASS_INFRASTRUCTURE, 'shared infrastructure fault'],
  [FailureClass.FAILURE_CLASS_HANG, 'hang'],
]);

/** Launcher wrappers that only say "a child failed": never the root cause themselves. */
const LAUNCHER_ERROR = /ChildFailedError/;

export interface Attribution {
  failureClass: FailureClass;
  /** One line for Job.reason and the attempt's failure. */
  reason: string;
  /** The rank and node that failed first (absent when no rank can be named). */
  rank?: number;
  node: string;
  exitCode?: number;
  signal: string;
  evidence: string;
  time: Date;
  /** Nodes to blame and exclude (node faults only). */
  faultyNodes: string[];
}

interface Exit {
  status: RankStatus;
  node: string;
  /** When the failure happened: the rank's own error time when it gave one, else its exit. */
  at: number;
  secondary: boolean;
}

function failed(s: RankStatus): boolean {
  return s.phase === RankPhase.RANK_PHASE_EXITED && s.signal !== 'NODE_LOST' && (s.signal !== '' || (s.exitCode ?? 0) !== 0);
}

function describeRank(s: RankStatus, node: string): string {
  const how = s.signal ? `was killed by ${s.signal}` : `exited with code ${s.exitCode ?? 0}`;
  return `node-rank ${s.rank} on ${node} ${how}${s.error ? `: ${s.error}` : ''}`;
}

function describeSignal(s: FaultSignal): string {
  if (s.kind === 'xid') return `XID ${s.xid}${s.detail ? ` (${s.detail})` : ''}${s.gpu !== undefined ? ` on GPU ${s.gpu}` : ''} of ${s.node}`;
  return s.detail || `${s.kind} on ${s.node}`;
}

const hhmmss = (t: number) => new Date(t).toISOString().slice(11, 19);

/**
 * Attributes an attempt's failure. `detectedAt` is when the first failure was seen: ranks
 * killed by SIGTERM/SIGKILL after it were stopped by Gantry and are not suspects.
 */
export function attributeFailure(attempt: Attempt, signals: FaultSignal[], detectedAt: Date): Attribution {
  const nodeOf = new Map(attempt.placement.map((p) => [p.rank, p.node]));
  const ordered = [...signals].sort((a, b) => (a.time?.getTime() ?? 0) - (b.time?.getTime() ?? 0));
  const nodeFaults = ordered.filter((s) => s.failureClass === FailureClass.FAILURE_CLASS_NODE_FAULT);
  const exits: Exit[] = attempt.ranks.filter(failed).map((s) => {
    const at = (s.errorTime ?? s.finishedAt ?? detectedAt).getTime();
    const stoppedByUs = (s.signal === 'SIGTERM' || s.signal === 'SIGKILL') && (s.finishedAt?.getTime() ?? 0) > detectedAt.getTime();
    const secondary = stoppedByUs || PEER_ERROR.test(s.error) || (s.error !== '' && LAUNCHER_ERROR.test(s.error));
    return { status: s, node: nodeOf.get(s.rank) ?? '', at, secondary };
  }).sort((a, b) => Number(a.secondary) - Number(b.secondary) || a.at - b.at || a.status.rank - b.status.rank);
  const exitEvidence = exits.map((e) => `${describeRank(e.status, e.node)} at ${hhmmss(e.at)}${e.secondary ? ' (secondary)' : ''}`);

  // A node fault outranks the rest; then a contained GPU error, a shared storage or fabric
  // fault, and a hang nobody could pin on a node, in that order.
  const firstOwnExit = exits.find((e) => !e.secondary);
  let blame = nodeFaults[0] ?? SECONDARY_SIGNALS.map((c) => ordered.find((s) => s.failureClass === c)).find((s) => s !== undefined);
  // A contained GPU error after a rank's own crash is its echo (XID 43: the app was killed).
  if (blame?.failureClass === FailureClass.FAILURE_CLASS_GPU_CONTAINED && firstOwnExit && firstOwnExit.at < (blame.time?.getTime() ?? 0)) blame = undefined;
  if (blame) {
    const faultyNodes = [...new Set(nodeFaults.map((s) => s.node))];
    const cls = blame.failureClass;
    const named = cls === FailureClass.FAILURE_CLASS_NODE_FAULT || cls === FailureClass.FAILURE_CLASS_GPU_CONTAINED;
    const rank = named ? attempt.placement.find((p) => p.node === blame.node)?.rank : undefined;
    const what = SIGNAL_WHAT.get(cls) ?? 'fault';
    return {
      failureClass: cls,
      reason: `${what}: ${describeSignal(blame)}`,
      rank, node: named ? blame.node : '', signal: '',
      evidence: [...ordered.map((s) => `${describeSignal(s)} at ${hhmmss(s.time?.getTime() ?? 0)}`), ...exitEvidence].join('; '),
      time: blame.time ?? detectedAt,
      faultyNodes,
    };
  }
  const first = exits[0];
  if (!first) {
    return { failureClass: FailureClass.FAILURE_CLASS_APPLICATION, reason: 'the attempt failed without a rank exit or node fault to name', node: '', signal: '', evidence: '', time: detectedAt, faultyNodes: [] };
  }
  const others = exits.length - 1;
  return {
    failureClass: FailureClass.FAILURE_CLASS_APPLICATION,
    reason: `${describeRank(first.status, first.node)}${others > 0 ? ` (first of ${exits.length} failed ranks)` : ''}`,
    rank: first.status.rank, node: first.node, exitCode: first.status.exitCode, signal: first.status.signal,
    evidence: exitEvidence.join('; '),
    time: new Date(first.at),
    faultyNodes: [],
  };
}

/** The attempt's failure record for an attribution. */
export function failureOf(a: Attribution): JobFailure {
  return JobFailure.create({
    reason: a.reason, rank: a.rank, exitCode: a.exitCode, signal: a.signal, node: a.node, failureClass: a.failureClass, evidence: a.evidence, time: a.time,
  });
}
