// The public JobService. Unary calls are validated here and forwarded to the scheduler;
// the two streams are served from JetStream (job events and rank output are durable
// there), so a client sees the whole history first and then follows live.
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, type Consumer } from '@nats-io/jetstream';
import { status, type ServerWritableStream } from '@grpc/grpc-js';
import {
  JobEvent, JobServiceService, JobState, LogBatch, RecoveryGrade, isTerminalJobState, type Job, type JobServiceClient, type JobServiceServer,
  type CancelJobRequest, type ExplainJobRequest, type GetJobRequest, type ListJobsRequest, type RetryJobRequest, type SubmitJobRequest, type SubmitJobsRequest, type SubmitJobsResult, type StreamLogsRequest, type StreamLogsResponse, type WatchJobRequest, type WatchJobResponse,
} from '@gantry/proto';
import { decode, streams, subjects } from '@gantry/bus';
import { GrpcError, invalidArgument } from '@gantry/service-kit';
import { ALL_TENANTS, hasRole, inTenant, isAdmin, permissionDenied, preview, userPriorityClasses, type Principal } from '@gantry/auth';
import { call } from './scheduler-client.js';
import { SubmitCoalescer } from './submit-coalescer.js';
import { admitBatchSize, admitListJobs, admitSubmit, admitToken, isItemRefusal, itemError } from './admission/shared.js';
import type { StorageTargetCheck } from './admission/storage-target.js';
import type { CallContext, Guard } from './auth/guard.js';
import { assertVisible, redactEvent, redactJob } from './auth/scope.js';
import type { TenantDirectory } from './auth/tenants.js';

const POLL_MS = 1_000;
/** After a followed job ends, keep reading this long for output still in flight from agents. */
const FOLLOW_TAIL_MS = 1_500;

/**
 * Whether a terminal event ends a watch that began when the job was `start`. A FAILED job
 * may have been retried (FAILED -> PENDING) since an end in its history: only the end of the
 * attempt current at the start, or of a later one, ends the watch.
 */
export function endsWatch(event: JobEvent, start: Job): boolean {
  if (!isTerminalJobState(event.toState)) return false;
  if (isTerminalJobState(start.state)) return event.attempt === start.attempt && event.toState === start.state;
  const retriedNotPlaced = start.state === JobState.JOB_STATE_PENDING && start.recovery?.grade === RecoveryGrade.RECOVERY_GRADE_MANUAL_RETRY;
  return retriedNotPlaced ? event.attempt > start.attempt : event.attempt >= start.attempt;
}

/** The tenant a submission is for: the spec's, else the principal's only tenant. */
function submitTenant(specTenant: string, p: Principal): string {
  if (specTenant) return specTenant;
  const own = p.tenants.filter((t) => t !== ALL_TENANTS);
  if (own.length === 1) return own[0]!;
  if (own.length === 0 && !isAdmin(p) && !p.tenants.includes(ALL_TENANTS)) throw permissionDenied(`${p.subject} belongs to no tenant and cannot submit jobs`);
  throw invalidArgument(`spec.tenant is required: ${p.subject} acts for ${own.length ? `several tenants (${own.slice(0, 10).join(', ')})` : 'every tenant'}`);
}

const JOB = (m: string) => `gantry.v1.JobService/${m}`;

/**
 * `storageTargets` checks a job with checkpoint.admit_flushes against the checkpoint service's
 * storage targets (admission/storage-target.ts); without it such a job is refused.
 */
export function jobService(guard: Guard, scheduler: JobServiceClient, nc: NatsConnection, tenants: TenantDirectory, storageTargets?: StorageTargetCheck): JobServiceServer {
  const js = jetstream(nc);
  const authOn = guard.auth.enabled;
  const getJob = async (jobId: string): Promise<Job> => (await call(scheduler, scheduler.getJob, { jobId })).job!;
  // Concurrent SubmitJob calls reach the scheduler as one SubmitJobs call (submit-coalescer.ts).
  const submissions = new SubmitCoalescer((req) => call(scheduler, scheduler.submitJob, req), (jobs) => call(scheduler, scheduler.submitJobs, { jobs }));
  /** The job, if the caller may see it; NOT_FOUND (as for a missing job) otherwise. */
  const visibleJob = async (jobId: string, ctx: CallContext): Promise<Job> => {
    admitToken('job_id', jobId);
    const job = await getJob(jobId);
    assertVisible(job, ctx.principal);
    ctx.audit.tenant = job.spec?.tenant ?? '';
    return job;
  };

  /** Tenant, known tenant and priority class rules of a submission (auth on). */
  async function authorizeSubmit(spec: NonNullable<SubmitJobRequest['spec']>, p: Principal): Promise<void> {
    if (!authOn) return;
    if (!inTenant(p, spec.tenant)) throw permissionDenied(`${p.subject} may not submit jobs for tenant ${preview(spec.tenant)}`);
    if (!(await tenants.known(spec.tenant))) throw invalidArgument(`spec.tenant ${preview(spec.tenant)} is not a tenant of the scheduling policy`);
    const pc = spec.priorityClass;
    if (pc === 'critical' && !hasRole(p, 'operator')) throw permissionDenied('priority class critical is for operators and admins');
    if (!hasRole(p, 'operator') && !userPriorityClasses(guard.auth.policy, spec.tenant).includes(pc)) {
      throw permissionDenied(`tenant ${spec.tenant} may not use priority class ${preview(pc)} (allowed: ${userPriorityClasses(guard.auth.policy, spec.tenant).join(', ')})`);
    }
  }

  /**
   * Everything the gateway checks of one submission before the scheduler sees it: tenant from
   * the principal, admission, authorization, storage targets. `admittedAs` learns the
   * submission's name and tenant as soon as they are known (for the audit of a refusal).
   */
  async function prepareSubmit(req: SubmitJobRequest, p: Principal, admittedAs: (spec: NonNullable<SubmitJobRequest['spec']>) => void = () => undefined): Promise<SubmitJobRequest> {
    const input = authOn && req.spec ? { ...req, spec: { ...req.spec, tenant: submitTenant(req.spec.tenant, p) } } : req;
    const admitted = admitSubmit(input);
    admittedAs(admitted.spec!);
    await authorizeSubmit(admitted.spec!, p);
    const ckpt = admitted.spec!.checkpoint;
    if (ckpt?.admitFlushes) {
      if (!storageTargets) throw invalidArgument('spec.checkpoint.admit_flushes cannot be checked: this gateway has no checkpoint service (CHECKPOINT_ADDR)');
      await storageTargets(ckpt);
    }
    return admitted;
  }

  /**
   * Reads an ordered consumer in batches; calls onIdle when caught up, which returns whether to
   * stop. Waits for a slow client to drain before fetching more, so a stalled reader of a
   * large log cannot make the gateway buffer it all in memory.
   */
  async function drain(consumer: Consumer, stream: ServerWritableStream<unknown, unknown>, onMessage: (data: Uint8Array) => boolean, onIdle: () => Promise<boolean>): Promise<void> {
    while (!stream.cancelled) {
      let got = 0;
      const batch = await consumer.fetch({ max_messages: 256, expires: POLL_MS });
      for await (const m of batch) {
        got++;
        if (onMessage(m.data)) return;
      }
      if (stream.writableNeedDrain) {
        await new Promise<void>((resolve) => {
          const done = () => { stream.off('drain', done); stream.off('cancelled', done); resolve(); };
          stream.once('drain', done);
          stream.once('cancelled', done);
        });
      }
      if (got === 0 && (await onIdle())) return;
    }
  }

  /**
   * A stream's ordered consumer is ephemeral, but the server keeps an idle one for minutes
   * (its inactive threshold): a watch that ended deletes its own at once.
   */
  function dropConsumer(consumer: Consumer): void {
    consumer.delete().catch(() => undefined);
  }

  return {
    submitJob: guard.unary(JOB('SubmitJob'), async (req: SubmitJobRequest, ctx) => {
      const p = ctx.principal;
      const admitted = await prepareSubmit(req, p, (spec) => { ctx.audit = { target: spec.name, tenant: spec.tenant }; });
      const res = await submissions.submit(admitted);
      if (res.job) ctx.audit.target = res.job.id;
      return { ...res, job: res.job && redactJob(res.job, p) };
    }),
    submitJobs: guard.unary(JOB('SubmitJobs'), async (req: SubmitJobsRequest, ctx) => {
      const p = ctx.principal;
      admitBatchSize(req.jobs.length);
      const results = new Array<SubmitJobsResult>(req.jobs.length);
      const forwarded: { index: number; req: SubmitJobRequest }[] = [];
      const tenantsSeen = new Set<string>();
      // Set before the scheduler's call too, so a batch that fails as a whole is audited with it.
      const noteAudit = () => {
        const refused = results.filter((r) => r?.result?.$case === 'error').length;
        const tenants = [...tenantsSeen];
        ctx.audit = { target: `${req.jobs.length} submissions, ${refused} refused`, tenant: tenants.length === 1 ? tenants[0]! : tenants.slice(0, 5).join(',') };
      };
      // One at a time: the tenant directory's first miss then fills its cache for the rest.
      for (const [index, item] of req.jobs.entries()) {
        try {
          forwarded.push({ index, req: await prepareSubmit(item, p, (spec) => tenantsSeen.add(spec.tenant)) });
        } catch (err) {
          if (!isItemRefusal(err)) throw err;
          results[index] = itemError(index, err);
        }
      }
      noteAudit();
      if (forwarded.length > 0) {
        // The scheduler answers in the order of what it was sent; its index is into that list.
        const res = await call(scheduler, scheduler.submitJobs, { jobs: forwarded.map((f) => f.req) }, 30_000);
        for (const r of res.results) {
          const index = forwarded[r.index]?.index;
          if (index === undefined) continue; // answered INTERNAL below, as any result missing
          results[index] = r.result?.$case === 'submitted'
            ? { index, result: { $case: 'submitted', submitted: { ...r.result.submitted, job: r.result.submitted.job && redactJob(r.result.submitted.job, p) } } }
            : { ...r, index };
        }
      }
      for (let i = 0; i < results.length; i++) {
        results[i] ??= itemError(i, new GrpcError(status.INTERNAL, 'the scheduler answered no result for this submission'));
      }
      noteAudit();
      return { results };
    }),
    getJob: guard.unary(JOB('GetJob'), async (req: GetJobRequest, ctx) => {
      await visibleJob(req.jobId, ctx);
      const res = await call(scheduler, scheduler.getJob, req);
      return { job: res.job && redactJob(res.job, ctx.principal) };
    }),
    listJobs: guard.unary(JOB('ListJobs'), async (req: ListJobsRequest, ctx) => {
      const p = ctx.principal;
      const admitted = admitListJobs(req);
      if (authOn && !isAdmin(p) && !p.tenants.includes(ALL_TENANTS)) {
        if (admitted.tenant) {
          if (!inTenant(p, admitted.tenant)) throw permissionDenied(`${p.subject} may not list the jobs of tenant ${preview(admitted.tenant)}`);
        } else if (p.tenants.length === 1) {
          admitted.tenant = p.tenants[0]!;
        } else {
          throw invalidArgument(p.tenants.length === 0 ? `${p.subject} belongs to no tenant` : `tenant is required: ${p.subject} acts for several tenants (${p.tenants.slice(0, 10).join(', ')})`);
        }
      }
      const res = await call(scheduler, scheduler.listJobs, admitted);
      // Defence in depth: whatever the scheduler returned, only the caller's tenants' jobs.
      return { ...res, jobs: res.jobs.filter((j) => inTenant(p, j.spec?.tenant ?? '')).map((j) => redactJob(j, p)) };
    }),
    cancelJob: guard.unary(JOB('CancelJob'), async (req: CancelJobRequest, ctx) => {
      await visibleJob(req.jobId, ctx);
      const res = await call(scheduler, scheduler.cancelJob, req);
      return { job: res.job && redactJob(res.job, ctx.principal) };
    }),
    explainJob: guard.unary(JOB('ExplainJob'), async (req: ExplainJobRequest, ctx) => {
      await visibleJob(req.jobId, ctx);
      return call(scheduler, scheduler.explainJob, req);
    }),
    retryJob: guard.unary(JOB('RetryJob'), async (req: RetryJobRequest, ctx) => {
      await visibleJob(req.jobId, ctx);
      const res = await call(scheduler, scheduler.retryJob, req);
      return { job: res.job && redactJob(res.job, ctx.principal) };
    }),

    watchJob: guard.serverStream(JOB('WatchJob'), async (req: WatchJobRequest, ctx, stream: ServerWritableStream<WatchJobRequest, WatchJobResponse>) => {
      // The job and the consumer of its events are asked for together (both are round trips on
      // the way to a watcher's first event); nothing is read before the job proved visible.
      admitToken('job_id', req.jobId);
      const [seen, made] = await Promise.allSettled([
        visibleJob(req.jobId, ctx), // NOT_FOUND surfaces here
        js.consumers.get(streams.events.name, { filter_subjects: subjects.jobEvent(req.jobId) }),
      ]);
      if (seen.status === 'rejected') {
        if (made.status === 'fulfilled') dropConsumer(made.value);
        throw seen.reason;
      }
      if (made.status === 'rejected') throw made.reason;
      const job = seen.value;
      const consumer = made.value;
      let sent = 0;
      try {
        await drain(consumer, stream, (data) => {
          const event = decode(JobEvent, data, 'JobEvent');
          stream.write({ event: redactEvent(event, ctx.principal) });
          sent++;
          return endsWatch(event, job);
        }, async () => {
          // The events may have aged out of the stream: fall back to the job's current state.
          if (sent === 0 && isTerminalJobState(job.state)) {
            stream.write({ event: JobEvent.create({ eventId: `current-${job.revision}`, jobId: job.id, toState: job.state, fromState: job.state, attempt: job.attempt, reason: job.reason, time: job.updatedAt, job: redactJob(job, ctx.principal) }) });
            return true;
          }
          return false;
        });
      } finally {
        dropConsumer(consumer);
      }
    }),

    streamLogs: guard.serverStream(JOB('StreamLogs'), async (req: StreamLogsRequest, ctx, stream: ServerWritableStream<StreamLogsRequest, StreamLogsResponse>) => {
      await visibleJob(req.jobId, ctx);
      const consumer = await js.consumers.get(streams.logs.name, { filter_subjects: subjects.logsFilter(req.jobId, req.attempt, req.rank) });
      let endedAt = 0;
      // Agents may re-send lines after a failure (at-least-once); each line's sequence number
      // per (attempt, node rank, local rank, stream) lets the stream show it once.
      const lastSeq = new Map<string, number>();
      try {
        await drain(consumer, stream, (data) => {
          const batch = decode(LogBatch, data, 'LogBatch');
          for (const line of batch.lines) {
            const key = `${batch.attempt}/${batch.rank}/${line.localRank ?? ''}/${line.stream}`;
            if (line.seq <= (lastSeq.get(key) ?? 0)) continue;
            lastSeq.set(key, line.seq);
            stream.write({ jobId: batch.jobId, attempt: batch.attempt, rank: batch.rank, node: batch.node, line });
          }
          return false;
        }, async () => {
          if (!req.follow) return true;
          if (endedAt === 0) {
            const job = await getJob(req.jobId);
            if (isTerminalJobState(job.state)) endedAt = Date.now();
            return false;
          }
          return Date.now() - endedAt >= FOLLOW_TAIL_MS;
        });
      } finally {
        dropConsumer(consumer);
      }
    }),
  };
}

export { JobServiceService };
