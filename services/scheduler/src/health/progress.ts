// Hangs and stragglers: judged per job from its nodes' GPU utilisation, its log output and
// NCCL watchdog lines. A hung collective leaves every rank waiting: no progress log, GPUs
// idle or spinning, and the NCCL watchdog eventually prints a timeout on the ranks that
// waited. A straggler is one node markedly slower than its job's other nodes. Both become
// findings (once per episode) that recovery can act on, naming a node when the evidence
// points at one.
import type { HealthConfig } from './config.js';
import { median } from './robust.js';
import type { JobRecord } from './state.js';
import type { HealthStatus, JobInfo, ProgressFinding, SharedFaultKind } from './types.js';

export interface NodeProgress {
  util?: number;
  throughput?: number;
  status: HealthStatus;
  held: boolean;
  score: number;
  /** The node sent no telemetry this window. */
  silent: boolean;
  /** Shared targets this node is on (storage targets, segments), as "kind:target". */
  targets: readonly string[];
}

/** Throughput minus the median of the job's other nodes, per node (the gpu.util_vs_job signal). */
export function throughputVsJob(jobs: readonly JobInfo[], tput: ReadonlyMap<string, number | undefined>, config: HealthConfig): Map<string, number> {
  const out = new Map<string, number>();
  for (const job of jobs) {
    const have = job.nodes.filter((n) => tput.get(n) !== undefined);
    if (have.length < config.straggler.minNodes) continue;
    const others = othersMedian(have.map((n) => tput.get(n)!));
    have.forEach((n, i) => {
      if (others[i]! >= config.straggler.minPeerUtil && !out.has(n)) out.set(n, tput.get(n)! - others[i]!);
    });
  }
  return out;
}

/**
 * For each value, the median of all the others. Big jobs: the median of all is within one
 * rank of that and costs one sort instead of one per node (48 nodes, every window).
 */
export function othersMedian(values: readonly number[]): number[] {
  if (values.length > 8) {
    const m = median(values)!;
    return values.map(() => m);
  }
  return values.map((_, i) => median(values.filter((__, j) => j !== i)) ?? Number.NaN);
}

function newJobRecord(nowMs: number): JobRecord {
  return { ncclNodes: [], hangReported: false, straggle: {}, reported: [], lastSeenMs: nowMs };
}

export interface ProgressResult {
  jobs: Record<string, JobRecord>;
  findings: ProgressFinding[];
}

export function judgeProgress(
  jobs: readonly JobInfo[],
  nodes: ReadonlyMap<string, NodeProgress>,
  prev: Readonly<Record<string, JobRecord>>,
  activeShared: ReadonlySet<string>,
  windowStartMs: number,
  nowMs: number,
  config: HealthConfig,
): ProgressResult {
  const out: Record<string, JobRecord> = {};
  const findings: ProgressFinding[] = [];
  for (const job of jobs) {
    const p = prev[job.id] ?? newJobRecord(nowMs);
    const r: JobRecord = { ...p, ncclNodes: [...p.ncclNodes], straggle: {}, reported: [...p.reported], lastSeenMs: nowMs };
    out[job.id] = r;
    const views = job.nodes.map((n) => [n, nodes.get(n)] as const).filter((x): x is readonly [string, NodeProgress] => x[1] !== undefined);
    judgeHang(job, views, r, activeShared, windowStartMs, nowMs, config, findings);
    judgeStragglers(job, views, r, p, nowMs - windowStartMs, nowMs, config, findings);
  }
  return { jobs: out, findings };
}

function judgeHang(
  job: JobInfo, views: ReadonlyArray<readonly [string, NodeProgress]>, r: JobRecord, activeShared: ReadonlySet<string>,
  windowStartMs: number, nowMs: number, config: HealthConfig, findings: ProgressFinding[],
): void {
  const h = config.hang;
  const withUtil = views.filter(([, v]) => v.util !== undefined);
  const idle = withUtil.filter(([, v]) => v.util! < h.idleUtilPercent);
  const allIdle = withUtil.length > 0 && idle.length === withUtil.length;
  // One node idle while every other one is busy: the others are spinning in a collective
  // that waits for it.
  const split = withUtil.length >= 2 && idle.length === 1 && withUtil.every(([, v]) => v.util! < h.idleUtilPercent || v.util! >= config.straggler.minPeerUtil);
  const stalled = allIdle || split;
  if (stalled) r.idleSinceMs ??= windowStartMs;
  else delete r.idleSinceMs;

  // A log line in this window is progress: the episode (if any) is over. The log feed is
  // progress output only; NCCL watchdog lines come separately (job.ncclTimeouts).
  const progressed = job.lastLogMs !== undefined && job.lastLogMs > windowStartMs;
  if (progressed) {
    r.ncclNodes = [];
    r.hangReported = false;
    delete r.hangSinceMs;
  }
  for (const l of job.ncclTimeouts ?? []) if (!r.ncclNodes.includes(l.node)) r.ncclNodes.push(l.node);

  const silentMs = h.silentSec * 1000;
  const silent = job.lastLogMs !== undefined ? nowMs - job.lastLogMs >= silentMs : undefined;
  const stalledLong = r.idleSinceMs !== undefined && nowMs - r.idleSinceMs >= silentMs;
  const nccl = job.nodes.length > 0 && r.ncclNodes.length / job.nodes.length >= h.minNcclNodeFraction;
  const young = job.startedMs !== undefined && nowMs - job.startedMs < silentMs;
  // Log silence is the primary evidence and needs GPU or NCCL corroboration (some jobs log
  // rarely); without a log feed, stalled GPUs AND NCCL timeouts must agree.
  const hung = !young && (silent === undefined ? stalledLong && nccl : silent && (stalledLong || nccl));
  if (!hung) return;
  r.hangSinceMs ??= Math.min(job.lastLogMs ?? nowMs, r.idleSinceMs ?? nowMs);
  if (r.hangReported) return;
  r.hangReported = true;

  const evidence: string[] = [];
  if (job.lastLogMs !== undefined) evidence.push(`no log output for ${Math.round((nowMs - job.lastLogMs) / 1000)}s`);
  if (stalledLong && allIdle) evidence.push(`all ${withUtil.length} nodes' GPUs below ${h.idleUtilPercent}% utilisation since ${new Date(r.idleSinceMs!).toISOString()}`);
  if (r.ncclNodes.length > 0) evidence.push(`NCCL watchdog/timeout lines from ${r.ncclNodes.length} of ${job.nodes.length} nodes`);

  const cause = sharedCause(views, activeShared);
  const node = nameHangNode(job, views, r, config, cause !== undefined, evidence);
  if (cause) evidence.push(`${cause.kind} ${cause.target} is flagged as a shared fault`);
  const f: ProgressFinding = { kind: 'hang', job: job.id, sinceMs: r.hangSinceMs, detectedAtMs: nowMs, evidence };
  if (node) f.node = node;
  if (cause) f.cause = cause;
  findings.push(f);
}

function sharedCause(views: ReadonlyArray<readonly [string, NodeProgress]>, activeShared: ReadonlySet<string>): ProgressFinding['cause'] {
  const counts = new Map<string, number>();
  for (const [, v] of views) for (const t of v.targets) if (activeShared.has(t)) counts.set(t, (counts.get(t) ?? 0) + 1);
  let best: string | undefined;
  for (const [t, n] of counts) if (best === undefined || n > counts.get(best)!) best = t;
  if (!best) return undefined;
  const i = best.indexOf(':');
  return { kind: best.slice(0, i) as SharedFaultKind, target: best.slice(i + 1) };
}

/**
 * The node a hang can be pinned on, in order of how direct the evidence is: the only node
 * whose GPUs are idle while the others spin in a collective; the only node without an NCCL
 * timeout line while the others have one (it is the one they waited for); the only node
 * sending no telemetry; the only node already suspect. With a shared fault active, only the
 * first two count: the shared cause explains the rest.
 */
function nameHangNode(
  job: JobInfo, views: ReadonlyArray<readonly [string, NodeProgress]>, r: JobRecord, config: HealthConfig, shared: boolean, evidence: string[],
): string | undefined {
  const h = config.hang;
  const only = <T>(xs: readonly T[]): T | undefined => (xs.length === 1 ? xs[0] : undefined);
  if (views.length >= 2) {
    const idle = views.filter(([, v]) => v.util !== undefined && v.util < h.idleUtilPercent);
    const busy = views.filter(([, v]) => v.util !== undefined && v.util >= config.straggler.minPeerUtil);
    const one = only(idle);
    if (one && busy.length === views.length - 1) {
      evidence.push(`${one[0]} idle while the other ${busy.length} nodes spin`);
      return one[0];
    }
  }
  if (r.ncclNodes.length >= 2 && r.ncclNodes.length === job.nodes.length - 1) {
    const missing = job.nodes.find((n) => !r.ncclNodes.includes(n));
    if (missing) {
      evidence.push(`${missing} is the only node without an NCCL timeout: the others waited for it`);
      return missing;
    }
  }
  if (shared) return undefined;
  const silent = only(views.filter(([, v]) => v.silent));
  if (silent) {
    evidence.push(`${silent[0]} sent no telemetry`);
    return silent[0];
  }
  const sick = only(views.filter(([, v]) => v.status !== 'READY' || v.held));
  if (sick) {
    evidence.push(`${sick[0]} is ${sick[1].status}`);
    return sick[0];
  }
  return undefined;
}

function judgeStragglers(
  job: JobInfo, views: ReadonlyArray<readonly [string, NodeProgress]>, r: JobRecord, p: JobRecord,
  windowMs: number, nowMs: number, config: HealthConfig, findings: ProgressFinding[],
): void {
  const c = config.straggler;
  const have = views.filter(([, v]) => v.throughput !== undefined);
  if (have.length < c.minNodes) return;
  const medians = othersMedian(have.map(([, v]) => v.throughput!));
  for (const [idx, [n, v]] of have.entries()) {
    const others: number | undefined = Number.isNaN(medians[idx]!) ? undefined : medians[idx];
    const slow = others !== undefined && others >= c.minPeerUtil && v.throughput! < c.ratio * others;
    if (!slow) {
      r.reported = r.reported.filter((x) => x !== n);
      continue;
    }
    const windows = (p.straggle[n] ?? 0) + 1;
    r.straggle[n] = windows;
    if (windows < c.windows || r.reported.includes(n)) continue;
    r.reported.push(n);
    findings.push({
      kind: 'straggler', job: job.id, node: n, sinceMs: nowMs - windows * windowMs, detectedAtMs: nowMs,
      evidence: [`throughput ${v.throughput!.toFixed(0)} vs job median ${others!.toFixed(0)} (< ${c.ratio} x) for ${windows} windows`],
    });
  }
}
