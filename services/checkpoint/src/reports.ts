// Consumes the agents' checkpoint reports (JetStream GANTRY_CHECKPOINTS, durable consumer):
// each one is checked, recorded by manifest through the store's observe script (one Lua step:
// IN_PROGRESS, COMMITTED, CORRUPT with the reason, ABANDONED, DELETED) and acknowledged only
// after that, so a service killed mid-way sees it again and applying it twice changes nothing.
// Then the job's retention runs (in the background).
//
// Who may report: the subject names the sending node (NATS lets an agent publish only its
// own), and that node must be the one the report's attempt placed node rank 0 on, the host that
// watches the checkpoint directory; an explicit report from the training code may come from
// any node of the attempt. Placements are learnt from the job events (job-events.ts, kept in
// Redis); a report that arrives before the event that placed its attempt is held back (not
// acknowledged, redelivered) until it is known, for at most CHECKPOINT_REPORT_PLACEMENT_WAIT_MS.
import { isAbsolute } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ConsumerMessages } from '@nats-io/jetstream';
import { throttledWarn, type Logger } from '@gantry/service-kit';
import { CheckpointReport, CheckpointState, type Job } from '@gantry/proto';
import { RetryLater, SUBJECT_TOKEN, checkpointReportSender, consumeDurable, consumers, decode, streams, subjects } from '@gantry/bus';
import type { CheckpointStore, ObservedCheckpoint } from '@gantry/store';
import type { CheckpointMetrics } from './metrics.js';
import type { RetentionRunner } from './retention.js';

const STATUSES = new Set(['COMPLETE', 'INCOMPLETE', 'CORRUPT', 'GONE']);
const MAX_REASON = 2_000;

export type ReportDropReason = 'node-mismatch' | 'job-mismatch' | 'unbound-subject' | 'not-watcher' | 'not-placed' | 'unknown-attempt';

/** Each attempt's nodes, node rank 0's first, then the others by rank (once each). */
export function attemptNodes(job: Job): { attempt: number; nodes: string[] }[] {
  return job.attempts.map((a) => ({ attempt: a.number, nodes: [...new Set([...a.placement].sort((x, y) => x.rank - y.rank).map((p) => p.node))] }));
}

/**
 * Why the sending node may not make this report, or undefined when it may: discovery is node
 * rank 0's host's alone; explicit reports come from whichever rank's host the training code
 * runs on.
 */
export function placementProblem(r: CheckpointReport, sender: string, nodes: string[]): ReportDropReason | undefined {
  if (r.source === 'explicit') return nodes.includes(sender) ? undefined : 'not-placed';
  return nodes[0] === sender ? undefined : 'not-watcher';
}

/** Thrown to have a report redelivered later: its attempt's placement is not known yet. */
export class PlacementNotKnownYet extends RetryLater {}

/** Why a report cannot be recorded, or undefined when it can. */
export function reportProblem(r: CheckpointReport): string | undefined {
  if (!SUBJECT_TOKEN.test(r.jobId)) return `job_id ${JSON.stringify(r.jobId)} is not valid`;
  if (!Number.isSafeInteger(r.attempt) || r.attempt < 1) return `attempt must be at least 1, got ${r.attempt}`;
  if (!STATUSES.has(r.status)) return `status must be one of ${[...STATUSES].join(', ')}, got ${JSON.stringify(r.status)}`;
  if (!isAbsolute(r.dir) || !isAbsolute(r.path)) return 'dir and path must be absolute';
  if (r.dir.split('/').includes('..') || r.path.split('/').includes('..')) return "dir and path must not contain '..'";
  if (!r.path.startsWith(`${r.dir.replace(/\/+$/, '')}/`)) return `path ${r.path} is not inside the job's checkpoint directory ${r.dir}`;
  if (r.step !== undefined && (!Number.isSafeInteger(r.step) || r.step < 0)) return `step must be a non-negative integer, got ${r.step}`;
  if (!SUBJECT_TOKEN.test(r.node)) return `node ${JSON.stringify(r.node)} is not valid`;
  return undefined;
}

export function observed(r: CheckpointReport): ObservedCheckpoint {
  return {
    jobId: r.jobId, attempt: r.attempt, node: r.node, path: r.path, step: r.step ?? 0,
    status: r.status as ObservedCheckpoint['status'], reason: r.reasons.join('; ').slice(0, MAX_REASON),
    files: r.files, bytes: r.totalBytes, format: r.format, variant: r.variant, source: r.source || 'discovery', attemptEnded: r.attemptEnded,
  };
}

export class ReportConsumer {
  private messages: ConsumerMessages | undefined;
  /** Jobs reported on since start, for the periodic retention pass (bounded, oldest dropped). */
  private readonly seen = new Set<string>();
  /** Per reason, at most a line a second (a flood must not flood the log). */
  private readonly warnDropped: ReturnType<typeof throttledWarn>;

  constructor(
    private readonly nc: NatsConnection,
    private readonly store: CheckpointStore,
    private readonly retention: RetentionRunner,
    private readonly metrics: CheckpointMetrics,
    private readonly log: Logger,
    /** How long a report whose attempt is not placed yet (as far as the job events say) is retried. */
    private readonly placementWaitMs = 120_000,
  ) {
    this.warnDropped = throttledWarn(log, 'dropping a checkpoint report its sender may not make');
  }

  async start(): Promise<void> {
    this.messages = await consumeDurable(this.nc, {
      stream: streams.checkpoints.name, durable: consumers.checkpointReports, filterSubject: subjects.checkpointReportAll,
      // A report may wait on a large manifest's Lua call; do not redeliver it meanwhile.
      ackWaitMs: 30_000,
    }, this.log, (m) => this.handle(decode(CheckpointReport, m.data, 'CheckpointReport'), m.subject, m.time));
  }

  jobsSeen(): string[] {
    return [...this.seen];
  }

  async stop(): Promise<void> {
    await this.messages?.close();
    this.messages = undefined;
  }

  /**
   * One report, stored in the stream at `storedAt`. `subject` says who sent it: NATS
   * permissions let an agent publish only reports naming its own node, so a report whose
   * payload names another node or job than its subject (or that predates per-node subjects),
   * or whose sender is not the attempt's node (placementProblem), is dropped and counted, never
   * believed. One whose attempt's placement is not known yet throws PlacementNotKnownYet (the
   * consumer redelivers it) until `placementWaitMs` after it was stored, then is dropped.
   */
  async handle(r: CheckpointReport, subject: string, storedAt: Date = new Date()): Promise<void> {
    const sender = checkpointReportSender(subject);
    const mismatch = !sender ? 'unbound-subject' : sender.node !== r.node ? 'node-mismatch' : sender.jobId !== r.jobId ? 'job-mismatch' : undefined;
    if (mismatch) return this.drop(mismatch, { subject, job: r.jobId.slice(0, 128), node: r.node.slice(0, 128) });
    const problem = reportProblem(r);
    if (problem) {
      this.log.warn({ job: r.jobId, path: r.path, problem }, 'dropping invalid checkpoint report');
      return;
    }
    const nodes = await this.store.placement(r.jobId, r.attempt);
    if (!nodes) {
      const waited = Date.now() - storedAt.getTime();
      if (waited < this.placementWaitMs) throw new PlacementNotKnownYet(`checkpoint report for job ${r.jobId} attempt ${r.attempt}: its placement is not known yet (waited ${waited} ms); retrying`);
      return this.drop('unknown-attempt', { job: r.jobId, attempt: r.attempt, node: r.node, waitedMs: waited });
    }
    const misplaced = placementProblem(r, r.node, nodes);
    if (misplaced) return this.drop(misplaced, { job: r.jobId, attempt: r.attempt, node: r.node, source: r.source, watcher: nodes[0], nodes: nodes.length });
    this.seen.delete(r.jobId);
    this.seen.add(r.jobId);
    if (this.seen.size > 10_000) this.seen.delete(this.seen.values().next().value!);
    await this.store.setMeta(r.jobId, { dir: r.dir, node: r.node, retention: r.retention });
    const { checkpoint, changed } = await this.store.observe(observed(r), r.seenAt ?? new Date());
    if (!checkpoint || !changed) return;
    const state = checkpoint.state;
    this.log.info({ job: r.jobId, checkpoint: checkpoint.id, step: checkpoint.step, state: CheckpointState[state], reason: checkpoint.reason || undefined, source: r.source }, 'checkpoint state');
    if (state === CheckpointState.CHECKPOINT_STATE_COMMITTED) this.metrics.committed.inc();
    if (state === CheckpointState.CHECKPOINT_STATE_CORRUPT) this.metrics.corrupt.inc();
    // Not awaited: deletions wait for an agent's answer, and the report is recorded already
    // (a pass that does not happen now happens at the next change or the periodic sweep).
    void this.retention.run(r.jobId).catch((err: unknown) => this.log.warn({ job: r.jobId, err: (err as Error).message }, 'retention pass failed'));
  }

  /** Counts the drop; logs at most one line per reason a second, with how many were not logged. */
  private drop(reason: ReportDropReason, detail: Record<string, unknown>): void {
    this.metrics.reportsDropped.inc({ reason });
    this.warnDropped(reason, { reason, ...detail });
  }

}
