// The scheduler's internal JobService: the gateway validates and authenticates, then calls
// this. Submit and cancel are user intents any replica may record; the leader acts on them.
import { randomBytes } from 'node:crypto';
import { ExplainJobResponse, JobServiceService, type JobServiceServer, type SubmitJobRequest, type SubmitJobsResult, Job, JobState, Recovery, RecoveryGrade, isTerminalJobState, jobStateName } from '@gantry/proto';
import { failedPrecondition, invalidArgument, notFound, serverStream, unary, GrpcError } from '@gantry/service-kit';
import { InvalidPageTokenError, SchedulingStateStore } from '@gantry/store';
import { status } from '@grpc/grpc-js';
import type { SchedulerContext } from '../context.js';
import { currentAttempt, endJob, isActive, liveRanks } from '../jobs/lifecycle.js';
import type { Explanation } from '../scheduling-loop.js';
import { mutateJob } from '../jobs/mutate.js';
import { stopLiveRanks } from '../dispatch/dispatcher.js';
import { admitBatchSize, admitSubmit, isItemRefusal, itemError } from '@gantry/gateway/admission';

/** A recovering job waiting out its backoff is not planned until then: say so. */
function backoffLine(job: Job): string | undefined {
  const notBefore = job.recovery?.notBefore?.getTime() ?? 0;
  const wait = notBefore - Date.now();
  if (wait <= 0) return undefined;
  return `recovery backoff: the next attempt is placed in ${Math.ceil(wait / 1000)}s${job.excludedNodes.length > 0 ? `, excluding ${job.excludedNodes.join(', ')}` : ''}`;
}

/** Sortable, unguessable, and a valid NATS subject token. */
export function newJobId(now = Date.now()): string {
  return `j-${now.toString(36)}-${randomBytes(4).toString('hex')}`;
}

/**
 * The gateway's rules and bounds again: a request sent straight to the scheduler (or by a
 * future caller) gets no more latitude than one through the gateway.
 */
function admitted(input: SubmitJobRequest): SubmitJobRequest & { spec: NonNullable<SubmitJobRequest['spec']> } {
  const req = admitSubmit(input);
  if (!req.spec) throw invalidArgument('spec is required');
  return { ...req, spec: req.spec };
}

function newJob(req: ReturnType<typeof admitted>): Job {
  return Job.create({ id: newJobId(), spec: req.spec, idempotencyKey: req.idempotencyKey, createdAt: new Date() });
}

export function jobService(ctx: SchedulerContext): JobServiceServer {
  const state = new SchedulingStateStore(ctx.redis);
  /** One line for GetJob: why a pending job waits, or why a placed job got its nodes. */
  const explanationLine = async (job: Job): Promise<string> => {
    if (job.state !== JobState.JOB_STATE_PENDING) return currentAttempt(job)?.placementExplanation ?? '';
    const backoff = backoffLine(job);
    if (backoff) return backoff;
    const raw = await state.explanation(job.id);
    if (!raw) return 'not evaluated by the scheduler yet';
    const e = JSON.parse(raw) as Explanation;
    return [`position ${e.queuePosition} in the queue`, e.message, e.quota, e.summary].filter(Boolean).join('; ');
  };
  // Streams to clients are the gateway's (it follows the job events and log subjects); through
  // the stream adapter a client is answered UNIMPLEMENTED with this message, not UNKNOWN.
  const unimplemented = (what: string) => serverStream(ctx.log, what, () => Promise.reject(new GrpcError(status.UNIMPLEMENTED, `${what} is served by the gateway`)));
  return {
    submitJob: unary(ctx.log, 'SubmitJob', async (input) => {
      const req = admitted(input);
      const job = newJob(req);
      const res = await ctx.jobs.submit(job, req.idempotencyKey);
      if (res.created) {
        ctx.log.info({ job: job.id, tenant: req.spec.tenant, nodes: req.spec.nodes }, 'job submitted');
        ctx.kick();
      }
      return { job: res.job, created: res.created };
    }),
    submitJobs: unary(ctx.log, 'SubmitJobs', async (input) => {
      admitBatchSize(input.jobs.length);
      const results: SubmitJobsResult[] = new Array<SubmitJobsResult>(input.jobs.length);
      const accepted: { index: number; job: Job; idempotencyKey: string }[] = [];
      // A batch mints its ids in the same millisecond: 32 random bits could repeat within it.
      const ids = new Set<string>();
      input.jobs.forEach((item, index) => {
        try {
          const req = admitted(item);
          let job = newJob(req);
          while (ids.has(job.id)) job = newJob(req);
          ids.add(job.id);
          accepted.push({ index, job, idempotencyKey: req.idempotencyKey });
        } catch (err) {
          if (!isItemRefusal(err)) throw err;
          results[index] = itemError(index, err);
        }
      });
      const outcomes = await ctx.jobs.submitMany(accepted);
      let created = 0;
      outcomes.forEach((o, i) => {
        const { index } = accepted[i]!;
        if ('error' in o) {
          if (!isItemRefusal(o.error)) ctx.log.error({ err: o.error, index }, 'a submission of a batch failed');
          results[index] = itemError(index, o.error);
          return;
        }
        if (o.created) created++;
        results[index] = { index, result: { $case: 'submitted', submitted: { job: o.job, created: o.created } } };
      });
      if (created > 0) {
        ctx.log.info({ jobs: created, of: input.jobs.length, tenants: [...new Set(accepted.map((a) => a.job.spec?.tenant ?? ''))].slice(0, 10) }, 'jobs submitted in a batch');
        ctx.kick();
      }
      return { results };
    }),
    getJob: unary(ctx.log, 'GetJob', async (req) => {
      const rec = await ctx.jobs.get(req.jobId);
      if (!rec) throw notFound(`job ${req.jobId} not found`);
      return { job: { ...rec.job, explanation: await explanationLine(rec.job) } };
    }),
    listJobs: unary(ctx.log, 'ListJobs', async (req) => {
      try {
        const page = await ctx.jobs.list({ states: req.states, tenant: req.tenant, pageSize: req.pageSize || 100, pageToken: req.pageToken });
        return { jobs: page.jobs, nextPageToken: page.nextPageToken };
      } catch (err) {
        if (err instanceof InvalidPageTokenError) throw invalidArgument(err.message);
        throw err;
      }
    }),
    cancelJob: unary(ctx.log, 'CancelJob', async (req) => {
      const reason = req.reason || 'cancelled by user';
      let refused: string | undefined;
      const rec = await mutateJob(ctx.jobs, req.jobId, (r) => {
        refused = undefined;
        if (r.job.state === JobState.JOB_STATE_CANCELLED) return undefined;
        if (isTerminalJobState(r.job.state)) {
          refused = `job ${req.jobId} already ended ${jobStateName(r.job.state)}`;
          return undefined;
        }
        return { next: endJob(r.job, JobState.JOB_STATE_CANCELLED, reason, new Date()), reason };
      });
      if (!rec) throw notFound(`job ${req.jobId} not found`);
      if (refused) throw failedPrecondition(refused);
      // The leader stops ranks now; otherwise the leader's next heartbeat reconciliation does.
      if (ctx.epoch() !== 0 && !isActive(rec.job)) await stopLiveRanks(ctx, rec.job, reason);
      ctx.kick();
      return { job: rec.job };
    }),
    retryJob: unary(ctx.log, 'RetryJob', async (req) => {
      const reason = req.reason || 'retried by an operator';
      let refused: string | undefined;
      const rec = await mutateJob(ctx.jobs, req.jobId, (r) => {
        const j = r.job;
        refused = undefined;
        if (j.state !== JobState.JOB_STATE_FAILED) {
          refused = `job ${req.jobId} is ${jobStateName(j.state)}; only a FAILED job can be retried`;
          return undefined;
        }
        const live = liveRanks(j).length;
        if (live > 0) {
          refused = `job ${req.jobId} still has ${live} rank${live === 1 ? '' : 's'} stopping; retry once they have exited`;
          return undefined;
        }
        const now = new Date();
        const next: Job = {
          ...j, state: JobState.JOB_STATE_PENDING, finishedAt: undefined,
          recovery: Recovery.create({ detectedAt: now, decided: true, retry: true, grade: RecoveryGrade.RECOVERY_GRADE_MANUAL_RETRY, gradeReason: reason, notBefore: now }),
        };
        return { next, reason: `${reason}: a new attempt from the newest committed checkpoint` };
      });
      if (!rec) throw notFound(`job ${req.jobId} not found`);
      if (refused) throw failedPrecondition(refused);
      ctx.log.info({ job: req.jobId, reason }, 'job retried');
      ctx.kick();
      return { job: rec.job };
    }),
    explainJob: unary(ctx.log, 'ExplainJob', async (req) => {
      const rec = await ctx.jobs.get(req.jobId);
      if (!rec) throw notFound(`job ${req.jobId} not found`);
      const job = rec.job;
      const res = ExplainJobResponse.create({ jobId: job.id, state: job.state, placementExplanation: currentAttempt(job)?.placementExplanation ?? '' });
      if (job.state !== JobState.JOB_STATE_PENDING) {
        res.message = job.reason;
        return res;
      }
      const backoff = backoffLine(job);
      if (backoff) {
        res.message = backoff;
        return res;
      }
      const raw = await state.explanation(job.id);
      if (!raw) {
        res.message = 'not evaluated by the scheduler yet';
        return res;
      }
      const e = JSON.parse(raw) as Explanation;
      return ExplainJobResponse.create({
        ...res,
        queuePosition: e.queuePosition, pendingReason: e.reason, message: e.message, quota: e.quota,
        rejections: Object.entries(e.rejections).sort((a, b) => b[1] - a[1]).map(([reason, nodes]) => ({ reason, nodes })),
        reservationStart: e.reservation ? new Date(e.reservation.startTime) : undefined,
        reservationNodes: e.reservation?.nodes ?? [],
        evaluatedAt: new Date(e.evaluatedAt),
      });
    }),
    watchJob: unimplemented('WatchJob'),
    streamLogs: unimplemented('StreamLogs'),
  };
}

export { JobServiceService };
