// Retention (issue 11): which of a job's checkpoints to delete, as a pure function over its
// records, and the executor that asks the agent that found them to delete them (the agent
// confines the deletion to the job's checkpoint directory and does nothing on a dry run).
// Every outcome is an event in the job's checkpoint event list.
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '@gantry/service-kit';
import { Checkpoint, CheckpointDeleteReply, CheckpointDeleteRequest, CheckpointRetention, CheckpointState } from '@gantry/proto';
import { decode, encode, subjects } from '@gantry/bus';
import type { CheckpointMeta, CheckpointStore } from '@gantry/store';
import { effectivePolicy, type RetentionPolicies } from './retention-policy.js';

/** CORRUPT and ABANDONED checkpoints are deleted this long after they became so, unless the job says. */
export const DEFAULT_GC_GRACE_SECONDS = 3600;

export interface RetentionAction {
  checkpoint: Checkpoint;
  reason: string;
}

const { CHECKPOINT_STATE_COMMITTED: COMMITTED, CHECKPOINT_STATE_CORRUPT: CORRUPT, CHECKPOINT_STATE_ABANDONED: ABANDONED } = CheckpointState;

/**
 * What retention removes: committed checkpoints beyond the newest `keep_last` whose step is not
 * a multiple of `keep_every` (the newest committed one is always kept: it is what a recovery
 * resumes from), and CORRUPT or ABANDONED ones older than the grace period. Only checkpoints an
 * agent found (they have a node) are candidates; client-registered ones are the client's.
 */
export function planRetention(checkpoints: Checkpoint[], policy: CheckpointRetention | undefined, now: number): RetentionAction[] {
  const p = policy ?? CheckpointRetention.create();
  const out: RetentionAction[] = [];
  const committed = checkpoints
    .filter((c) => c.state === COMMITTED)
    .sort((a, b) => b.step - a.step || (b.committedAt?.getTime() ?? 0) - (a.committedAt?.getTime() ?? 0));
  if (p.keepLast > 0) {
    committed.forEach((c, i) => {
      if (i < Math.max(1, p.keepLast)) return;
      if (p.keepEvery > 0 && c.step % p.keepEvery === 0) return;
      if (!c.node) return;
      out.push({ checkpoint: c, reason: `retention: not among the newest ${p.keepLast}${p.keepEvery > 0 ? ` and step ${c.step} is not a multiple of ${p.keepEvery}` : ''}` });
    });
  }
  const graceMs = (p.gcGraceSeconds || DEFAULT_GC_GRACE_SECONDS) * 1000;
  for (const c of checkpoints) {
    if ((c.state !== CORRUPT && c.state !== ABANDONED) || !c.node) continue;
    const since = c.updatedAt?.getTime() ?? c.createdAt?.getTime() ?? now;
    if (now - since < graceMs) continue;
    out.push({ checkpoint: c, reason: `garbage collection: ${c.state === CORRUPT ? 'CORRUPT' : 'ABANDONED'} for more than ${Math.round(graceMs / 1000)}s${c.reason ? ` (${c.reason})` : ''}` });
  }
  return out;
}

export interface RetentionMetrics {
  deleted: { inc(n?: number): void };
  dryRuns: { inc(n?: number): void };
  refused: { inc(n?: number): void };
}

export class RetentionRunner {
  private readonly busy = new Set<string>();

  constructor(
    private readonly store: CheckpointStore,
    private readonly nc: NatsConnection,
    private readonly log: Logger,
    private readonly metrics: RetentionMetrics,
    private readonly requestTimeoutMs = 10_000,
    /** Per-tenant policies (CHECKPOINT_RETENTION_POLICIES); a job's own policy wins. */
    private readonly policies: RetentionPolicies = new Map(),
  ) {}

  /** Jobs whose records changed while their pass ran: they get one more pass after it. */
  private readonly again = new Set<string>();

  /** Applies the job's policy now; one pass per job at a time (a call during a pass queues one more). */
  async run(jobId: string, now?: number): Promise<void> {
    if (this.busy.has(jobId)) {
      this.again.add(jobId);
      return;
    }
    this.busy.add(jobId);
    try {
      do {
        this.again.delete(jobId);
        const meta = await this.store.meta(jobId);
        if (!meta) return;
        const { policy, source } = effectivePolicy(meta.retention, meta.tenant, this.policies);
        const actions = planRetention(await this.store.list(jobId), policy, now ?? Date.now());
        for (const a of actions) await this.apply(jobId, meta, policy, { ...a, reason: `${a.reason} (policy: ${source})` });
      } while (this.again.has(jobId));
    } finally {
      this.busy.delete(jobId);
      this.again.delete(jobId);
    }
  }

  private async apply(jobId: string, meta: CheckpointMeta, policy: CheckpointRetention | undefined, a: RetentionAction): Promise<void> {
    const c = a.checkpoint;
    const dryRun = !policy?.delete;
    // A dry run is recorded once per checkpoint, not at every pass.
    if (dryRun && (await this.store.flagOnce(c.id, 'gc_dry_run', String(Date.now()))) === false) return;
    const req = CheckpointDeleteRequest.create({ jobId, checkpointId: c.id, dir: meta.dir, path: c.path, dryRun, reason: a.reason });
    let reply: CheckpointDeleteReply;
    try {
      const msg = await this.nc.request(subjects.checkpointDelete(c.node || meta.node), encode(CheckpointDeleteRequest, req), { timeout: this.requestTimeoutMs });
      reply = decode(CheckpointDeleteReply, msg.data, 'CheckpointDeleteReply');
    } catch (err) {
      // The agent is away: the next pass asks again (a dry run's flag is lifted for that).
      if (dryRun) await this.store.clearFlag(c.id, 'gc_dry_run');
      this.log.debug({ job: jobId, checkpoint: c.id, node: c.node, err: (err as Error).message }, 'retention: agent did not answer');
      return;
    }
    if (reply.deleted) {
      await this.store.markDeleted(c.id, a.reason);
      this.metrics.deleted.inc();
      this.log.info({ job: jobId, checkpoint: c.id, path: c.path, reason: a.reason }, 'checkpoint deleted by retention');
    } else if (reply.ok) {
      await this.store.recordEvent({ checkpointId: c.id, jobId, kind: 'delete-dry-run', path: c.path, message: reply.message, time: new Date() });
      this.metrics.dryRuns.inc();
    } else if (await this.store.flagOnce(c.id, 'gc_refused', reply.message)) {
      await this.store.recordEvent({ checkpointId: c.id, jobId, kind: 'delete-refused', path: c.path, message: reply.message, time: new Date() });
      this.metrics.refused.inc();
      this.log.warn({ job: jobId, checkpoint: c.id, path: c.path, message: reply.message }, 'checkpoint deletion refused by the agent');
    }
  }
}
