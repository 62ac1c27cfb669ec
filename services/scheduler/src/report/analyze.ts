// The operations report's analyses, pure: from a window's node event logs (XIDs and state
// changes), job attempts, checkpoint records and NFS telemetry to the figures of the published
// 504-GPU operations report (Lablup, arXiv 2605.09370). The scheduler's report service reads
// the records (report/service.ts); the simulations feed the same function the events they
// produce, so the figures are checked against injected truth (test/sim, report tests).
import {
  CheckpointState, FailureClass, JobState, NodeState, OperationsReport, type Attempt, type Checkpoint, type Job, type NodeEvent, type NodeHostEvent,
  type StorageTarget, type XidEvent,
} from '@gantry/proto';
import type { NfsQueueTally } from './nfs.js';

export interface NodeRecords {
  name: string;
  /** The node's event log entries, any order. */
  events: NodeHostEvent[];
  /** Sum of the node's RDMA link rates in bytes/s (latest telemetry); undefined when unknown. */
  linkBytesPerSecond?: number | undefined;
}

export interface ReportInput {
  fromMs: number;
  toMs: number;
  nodes: NodeRecords[];
  /** Jobs created in the window. */
  jobs: Job[];
  /**
   * By job id, the attempts compacted out of those jobs' records that their archives keep
   * (JobStore.archivedAttempts): per-attempt figures count them with the kept ones.
   */
  archivedAttempts?: ReadonlyMap<string, readonly Attempt[]>;
  /** Checkpoint records of those jobs. */
  checkpoints: Checkpoint[];
  /** Storage targets, for their mount prefix and configured write bandwidth. */
  targets: StorageTarget[];
  nfs: NfsQueueTally;
  /** What recovery makes of an XID on a job's GPU (the XID policy), undefined when nothing. */
  xidClass: (xid: XidEvent) => FailureClass | undefined;
  /** Coverage limits the reader found (capped logs, an unreachable service). */
  limits?: string[];
}

/** A suspicion explains itself when a node fault shows up from its start to this long after the node is READY again. */
export const FALSE_ALARM_GRACE_MS = 3_600_000;
const DAY_MS = 86_400_000;

/** Reasons of the transitions the health detector makes on its score (health-monitor/decisions.ts). */
const DETECTOR_SCORE_REASON = /^ScoreAbove(Suspect|Quarantine):/;

const ms = (d: Date | undefined): number | undefined => d?.getTime();

export function quantile(values: number[], q: number): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

interface NodeTimeline {
  name: string;
  xids: XidEvent[];
  transitions: NodeEvent[];
}

function timelines(nodes: NodeRecords[], fromMs: number, toMs: number): NodeTimeline[] {
  return nodes.map((n) => {
    const inWindow = n.events.filter((e) => {
      const t = ms(e.time) ?? 0;
      return t >= fromMs && t <= toMs;
    }).sort((a, b) => (ms(a.time) ?? 0) - (ms(b.time) ?? 0));
    return {
      name: n.name,
      xids: inWindow.flatMap((e) => (e.event?.$case === 'xid' ? [e.event.xid] : [])),
      transitions: inWindow.flatMap((e) => (e.event?.$case === 'transition' ? [{ ...e.event.transition, time: e.time }] : [])),
    };
  });
}

function xidFigures(tl: NodeTimeline[], xidClass: ReportInput['xidClass']): Pick<OperationsReport, 'xidFailures' | 'components'> {
  const byXid = new Map<number, { mnemonic: string; component: string; events: number; nodes: Set<string>; failureClass: FailureClass }>();
  for (const n of tl) {
    for (const x of n.xids) {
      const row = byXid.get(x.xid) ?? { mnemonic: x.mnemonic, component: x.causeClass || 'unknown', events: 0, nodes: new Set(), failureClass: xidClass(x) ?? FailureClass.FAILURE_CLASS_UNSPECIFIED };
      row.events++;
      row.nodes.add(n.name);
      byXid.set(x.xid, row);
    }
  }
  const xidFailures = [...byXid].map(([xid, r]) => ({ xid, mnemonic: r.mnemonic, component: r.component, failureClass: r.failureClass, events: r.events, nodes: r.nodes.size }))
    .sort((a, b) => b.events - a.events || a.xid - b.xid);
  const total = xidFailures.reduce((s, r) => s + r.events, 0);
  const byComponent = new Map<string, number>();
  for (const r of xidFailures) byComponent.set(r.component, (byComponent.get(r.component) ?? 0) + r.events);
  const components = [...byComponent].map(([component, events]) => ({ component, events, share: total ? events / total : 0 }))
    .sort((a, b) => b.events - a.events || a.component.localeCompare(b.component));
  return { xidFailures, components };
}

type AttemptsOf = (job: Job) => Attempt[];

/**
 * Every attempt of a job known to the report, by number: the archived ones and the record's.
 * One number once, the record's copy first: the archive is read after the record, so a commit
 * in between can put an attempt in both.
 */
function attemptsOf(archived: ReportInput['archivedAttempts']): AttemptsOf {
  return (job) => {
    const old = archived?.get(job.id);
    if (!old || old.length === 0) return job.attempts;
    const byNumber = new Map<number, Attempt>();
    for (const a of [...job.attempts, ...old]) if (!byNumber.has(a.number)) byNumber.set(a.number, a);
    return [...byNumber.values()].sort((a, b) => a.number - b.number);
  };
}

/** Attempts of the window's jobs that failed, as recovery classed them. */
function failedAttempts(jobs: Job[], attempts: AttemptsOf, fromMs: number, toMs: number): Array<{ job: Job; node: string; cls: FailureClass; atMs: number }> {
  const out: Array<{ job: Job; node: string; cls: FailureClass; atMs: number }> = [];
  for (const job of jobs) {
    for (const a of attempts(job)) {
      const f = a.failure;
      if (!f || f.failureClass === FailureClass.FAILURE_CLASS_UNSPECIFIED) continue;
      const at = ms(f.time) ?? ms(a.finishedAt) ?? ms(job.updatedAt) ?? 0;
      if (at < fromMs || at > toMs) continue;
      out.push({ job, node: f.node, cls: f.failureClass, atMs: at });
    }
  }
  return out;
}

function exclusionFigures(tl: NodeTimeline[], failures: ReturnType<typeof failedAttempts>): OperationsReport['exclusions'] {
  const per = new Map<string, number>();
  const add = (node: string) => per.set(node, (per.get(node) ?? 0) + 1);
  let quarantines = 0;
  for (const n of tl) {
    for (const t of n.transitions) {
      if (t.toState === NodeState.NODE_STATE_QUARANTINED && t.fromState !== NodeState.NODE_STATE_QUARANTINED) {
        quarantines++;
        add(n.name);
      }
    }
  }
  let blames = 0;
  for (const f of failures) {
    // A node fault names the node it blames; that node is excluded from the job's later attempts.
    if (f.cls === FailureClass.FAILURE_CLASS_NODE_FAULT && f.node && f.job.excludedNodes.includes(f.node)) {
      blames++;
      add(f.node);
    }
  }
  const total = quarantines + blames;
  const ranked = [...per].map(([node, count]) => ({ node, count })).sort((a, b) => b.count - a.count || a.node.localeCompare(b.node));
  const topNodes = ranked.slice(0, 3);
  return { quarantines, blames, total, nodes: per.size, topNodes, top3Share: total ? topNodes.reduce((s, r) => s + r.count, 0) / total : 0 };
}

interface Suspicion { node: string; fromMs: number; toMs: number }

/** The detector's suspicions per node: from a score transition out of READY to the node's next READY. */
function suspicions(n: NodeTimeline, toMs: number): Suspicion[] {
  const out: Suspicion[] = [];
  let open: Suspicion | undefined;
  for (const t of n.transitions) {
    const at = ms(t.time) ?? 0;
    if (!open && t.fromState === NodeState.NODE_STATE_READY && t.toState !== NodeState.NODE_STATE_READY && DETECTOR_SCORE_REASON.test(t.reason)) {
      open = { node: n.name, fromMs: at, toMs };
      out.push(open);
    } else if (open && t.toState === NodeState.NODE_STATE_READY) {
      open.toMs = at;
      open = undefined;
    }
  }
  return out;
}

function detectionFigures(tl: NodeTimeline[], failures: ReturnType<typeof failedAttempts>, input: ReportInput): OperationsReport['detection'] {
  let faultXids = 0;
  let early = 0;
  const lead: number[] = [];
  let total = 0;
  let falseAlarms = 0;
  for (const n of tl) {
    const sus = suspicions(n, input.toMs);
    total += sus.length;
    const faultTimes = n.xids.filter((x) => input.xidClass(x) === FailureClass.FAILURE_CLASS_NODE_FAULT).map((x) => ms(x.time) ?? 0);
    for (const at of faultTimes) {
      faultXids++;
      const s = sus.find((x) => x.fromMs < at && at <= x.toMs);
      if (s) {
        early++;
        lead.push((at - s.fromMs) / 1000);
      }
    }
    const blamed = failures.filter((f) => f.node === n.name && f.cls === FailureClass.FAILURE_CLASS_NODE_FAULT).map((f) => f.atMs);
    for (const s of sus) {
      const explained = [...faultTimes, ...blamed].some((at) => at >= s.fromMs && at <= s.toMs + FALSE_ALARM_GRACE_MS);
      if (!explained) falseAlarms++;
    }
  }
  const days = Math.max(input.toMs - input.fromMs, 1) / DAY_MS;
  return {
    faultXids, suspectedBeforeXid: early, leadSeconds: lead, medianLeadSeconds: quantile(lead, 0.5),
    suspicions: total, falseAlarms, falseAlarmsPerDay: falseAlarms / days,
  };
}

function retryChainFigures(jobs: Job[], attemptsOfJob: AttemptsOf): OperationsReport['retryChains'] {
  // Automatic chains only: a manual retry or a preemption does not use the recovery budget.
  const chains = jobs.filter((j) => j.recoveries > 0);
  const intervals: number[] = [];
  let attempts = 0;
  let succeeded = 0;
  let failed = 0;
  for (const j of chains) {
    // Attempts dropped from a long chain's record (attemptsCompacted) count even when its
    // archive no longer holds them; the intervals are those of the archived and kept attempts.
    attempts += j.attemptsCompacted + j.attempts.length;
    if (j.state === JobState.JOB_STATE_SUCCEEDED) succeeded++;
    else if (j.state === JobState.JOB_STATE_FAILED || j.state === JobState.JOB_STATE_CANCELLED) failed++;
    const sorted = [...attemptsOfJob(j)].sort((a, b) => a.number - b.number);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1]!;
      const failedAt = ms(prev.failure?.time) ?? ms(prev.finishedAt);
      const startedAt = ms(sorted[i]!.startedAt) ?? ms(sorted[i]!.scheduledAt);
      if (failedAt !== undefined && startedAt !== undefined && startedAt >= failedAt) intervals.push((startedAt - failedAt) / 1000);
    }
  }
  return {
    chains: chains.length, attempts, succeeded, failed, open: chains.length - succeeded - failed,
    successShare: succeeded + failed ? succeeded / (succeeded + failed) : 0,
    retries: intervals.length,
    retryIntervalMedianSeconds: quantile(intervals, 0.5), retryIntervalP25Seconds: quantile(intervals, 0.25), retryIntervalP75Seconds: quantile(intervals, 0.75),
  };
}

function checkpointFigures(input: ReportInput, attemptsOfJob: AttemptsOf): OperationsReport['checkpoints'] {
  const committed = input.checkpoints.filter((c) => c.state === CheckpointState.CHECKPOINT_STATE_COMMITTED && c.createdAt && c.committedAt && c.bytes > 0);
  const jobs = new Map(input.jobs.map((j) => [j.id, j]));
  const links = new Map(input.nodes.map((n) => [n.name, n.linkBytesPerSecond]));
  // The longest mount prefix that holds the path names the target.
  const targetOf = (path: string) => input.targets.filter((t) => t.mountPrefix && (path === t.mountPrefix || path.startsWith(t.mountPrefix.endsWith('/') ? t.mountPrefix : `${t.mountPrefix}/`)))
    .sort((a, b) => b.mountPrefix.length - a.mountPrefix.length)[0];
  const groups = new Map<string, { target: StorageTarget | undefined; rows: Array<{ rate: number; bytes: number; link: number }> }>();
  for (const c of committed) {
    const t = targetOf(c.path);
    const key = t?.name ?? '';
    const g = groups.get(key) ?? { target: t, rows: [] };
    const secs = Math.max((c.committedAt!.getTime() - c.createdAt!.getTime()) / 1000, 0.001);
    const job = jobs.get(c.jobId);
    const attempt = job ? attemptsOfJob(job).find((a) => a.number === c.attempt) : undefined;
    const writers = [...new Set(attempt?.placement.map((p) => p.node) ?? (c.node ? [c.node] : []))];
    const rates = writers.map((w) => links.get(w));
    const link = rates.length > 0 && rates.every((r) => r !== undefined) ? rates.reduce((s: number, r) => s + r!, 0) : 0;
    g.rows.push({ rate: Number(c.bytes) / secs, bytes: Number(c.bytes), link });
    groups.set(key, g);
  }
  const targets = [...groups].map(([name, g]) => {
    const peak = g.rows.reduce((best, r) => (r.rate > best.rate ? r : best), g.rows[0]!);
    const capacity = Number(g.target?.writeBytesPerSecond ?? 0);
    return {
      target: name, checkpoints: g.rows.length, bytes: g.rows.reduce((s, r) => s + r.bytes, 0),
      medianBytesPerSecond: quantile(g.rows.map((r) => r.rate), 0.5), peakBytesPerSecond: peak.rate,
      capacityBytesPerSecond: capacity, peakShareOfCapacity: capacity ? peak.rate / capacity : 0,
      linkBytesPerSecond: peak.link, peakShareOfLink: peak.link ? peak.rate / peak.link : 0,
    };
  }).sort((a, b) => a.target.localeCompare(b.target));
  return { checkpoints: committed.length, bytes: committed.reduce((s, c) => s + Number(c.bytes), 0), targets };
}

export function operationsReport(input: ReportInput): OperationsReport {
  const tl = timelines(input.nodes, input.fromMs, input.toMs);
  const attempts = attemptsOf(input.archivedAttempts);
  const failures = failedAttempts(input.jobs, attempts, input.fromMs, input.toMs);
  const byClass = new Map<FailureClass, number>();
  for (const f of failures) byClass.set(f.cls, (byClass.get(f.cls) ?? 0) + 1);
  return OperationsReport.create({
    from: new Date(input.fromMs),
    to: new Date(input.toMs),
    nodes: input.nodes.length,
    jobs: input.jobs.length,
    ...xidFigures(tl, input.xidClass),
    attemptFailures: [...byClass].map(([failureClass, attempts]) => ({ failureClass, attempts })).sort((a, b) => b.attempts - a.attempts || a.failureClass - b.failureClass),
    exclusions: exclusionFigures(tl, failures),
    detection: detectionFigures(tl, failures, input),
    retryChains: retryChainFigures(input.jobs, attempts),
    checkpoints: checkpointFigures(input, attempts),
    nfs: input.nfs.figures(),
    limits: input.limits ?? [],
  });
}
