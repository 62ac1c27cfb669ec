// Follows job transitions (JetStream GANTRY_EVENTS) for what the checkpoint registry must do
// when an attempt or a job ends, whatever the agents could still say:
//   - an attempt that ended (RECOVERING, PREEMPTED or a final state): its IN_PROGRESS
//     checkpoints are ABANDONED (their writer is gone; a node that died sends no last pass);
//   - a job in a final state: its checkpoint records expire after CHECKPOINT_RECORD_TTL_SECONDS;
//     a job that runs again (gantry job retry) keeps them;
//   - a job with a checkpoint directory: its tenant is recorded, for the tenant's retention
//     policy (CHECKPOINT_RETENTION_POLICIES) when the job has none of its own, and where each
//     of its attempts runs (node rank 0's node first), for who may report its checkpoints
//     (reports.ts). Consumed durably and kept in Redis, so a restart forgets nothing.
import type { NatsConnection } from '@nats-io/transport-node';
import type { ConsumerMessages } from '@nats-io/jetstream';
import type { Logger } from '@gantry/service-kit';
import { CheckpointState, JobEvent, JobState, isTerminalJobState } from '@gantry/proto';
import { consumeDurable, consumers, decode, streams, subjects } from '@gantry/bus';
import type { CheckpointStore } from '@gantry/store';
import { attemptNodes } from './reports.js';

const ENDS_ATTEMPT = new Set([JobState.JOB_STATE_RECOVERING, JobState.JOB_STATE_PREEMPTED]);

export class JobEventConsumer {
  private messages: ConsumerMessages | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly store: CheckpointStore,
    private readonly recordTtlSeconds: number,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.messages = await consumeDurable(this.nc, {
      stream: streams.events.name, durable: consumers.checkpointJobEvents, filterSubject: subjects.jobEventAll,
      // One job's events in order (the subject is the job's), different jobs' at once.
      concurrency: 32,
    }, this.log, (m) => this.handle(decode(JobEvent, m.data, 'JobEvent')));
  }

  async stop(): Promise<void> {
    await this.messages?.close();
    this.messages = undefined;
  }

  async handle(ev: JobEvent): Promise<void> {
    const to = ev.toState;
    const spec = ev.job?.spec;
    if (spec?.checkpoint?.dir && spec.tenant) await this.store.setTenant(ev.jobId, spec.tenant);
    // Before the expiry below: a finished job's placement expires with its records.
    if (spec?.checkpoint?.dir && ev.job) await this.store.setPlacements(ev.jobId, attemptNodes(ev.job));
    const abandoned = `attempt ${ev.attempt} ended (${JobState[to]}) before it was complete`;
    if (isTerminalJobState(to)) {
      // One round trip for the common case, a job that never wrote a checkpoint.
      const { expired, writing } = await this.store.finishJob(ev.jobId, this.recordTtlSeconds, ev.attempt);
      for (const id of writing) await this.store.abandon(id, abandoned).catch(() => undefined);
      if (expired > 0) this.log.info({ job: ev.jobId, checkpoints: expired, ttlSeconds: this.recordTtlSeconds }, 'checkpoint records of a finished job expire');
    } else if (ENDS_ATTEMPT.has(to)) {
      for (const c of await this.store.list(ev.jobId)) {
        if (c.state !== CheckpointState.CHECKPOINT_STATE_WRITING || c.attempt > ev.attempt) continue;
        await this.store.abandon(c.id, abandoned).catch(() => undefined);
      }
    } else if (isTerminalJobState(ev.fromState)) {
      await this.store.keepJob(ev.jobId);
    }
  }
}
