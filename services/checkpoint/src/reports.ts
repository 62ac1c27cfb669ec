// Consumes the agents' checkpoint reports (JetStream GANTRY_CHECKPOINTS, durable consumer):
// each one is checked, recorded by manifest through the store's observe script (one Lua step:
// IN_PROGRESS, COMMITTED, CORRUPT with the reason, ABANDONED, DELETED) and acknowledged only
// after that, so a service killed mid-way sees it again and applying it twice changes nothing.
// Then the job's retention runs (in the background).
import { isAbsolute } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ConsumerMessages } from '@nats-io/jetstream';
import type { Logger } from '@gantry/service-kit';
import { CheckpointReport, CheckpointState } from '@gantry/proto';
import { SUBJECT_TOKEN, checkpointReportSender, consumeDurable, consumers, decode, streams, subjects } from '@gantry/bus';
import type { CheckpointStore, ObservedCheckpoint } from '@gantry/store';
import type { CheckpointMetrics } from './metrics.js';
import type { RetentionRunner } from './retention.js';

const STATUSES = new Set(['COMPLETE', 'INCOMPLETE', 'CORRUPT', 'GONE']);
const MAX_REASON = 2_000;

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

  constructor(
    private readonly nc: NatsConnection,
    private readonly store: CheckpointStore,
    private readonly retention: RetentionRunner,
    private readonly metrics: CheckpointMetrics,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.messages = await consumeDurable(this.nc, {
      stream: streams.checkpoints.name, durable: consumers.checkpointReports, filterSubject: subjects.checkpointReportAll,
      // A report may wait on a large manifest's Lua call; do not redeliver it meanwhile.
      ackWaitMs: 30_000,
    }, this.log, (m) => this.handle(decode(CheckpointReport, m.data, 'CheckpointReport'), m.subject));
  }

  jobsSeen(): string[] {
    return [...this.seen];
  }

  async stop(): Promise<void> {
    await this.messages?.close();
    this.messages = undefined;
  }

  /**
   * One report. `subject` says who sent it: NATS permissions let an agent publish only reports
   * naming its own node, so a report whose payload names another node or job than its subject
   * (or that predates per-node subjects) is dropped and counted, never believed.
   */
  async handle(r: CheckpointReport, subject: string): Promise<void> {
    const sender = checkpointReportSender(subject);
    const mismatch = !sender ? 'unbound-subject' : sender.node !== r.node ? 'node-mismatch' : sender.jobId !== r.jobId ? 'job-mismatch' : undefined;
    if (mismatch) {
      this.metrics.reportsDropped.inc({ reason: mismatch });
      this.log.warn({ subject, job: r.jobId.slice(0, 128), node: r.node.slice(0, 128), reason: mismatch }, 'dropping a checkpoint report its sender may not make');
      return;
    }
    const problem = reportProblem(r);
    if (problem) {
      this.log.warn({ job: r.jobId, path: r.path, problem }, 'dropping invalid checkpoint report');
      return;
    }
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
}
