// The scheduler's internal JobService: the gateway validates and authenticates, then calls
// this. Submit and cancel are user intents any replica may record; the leader acts on them.
import { randomBytes } from 'node:crypto';
import { ExplainJobResponse, JobServiceService, type JobServiceServer, Job, JobState, Recovery, RecoveryGrade, isTerminalJobState, jobStateName } from '@gantry/proto';
import { failedPrecondition, invalidArgument, notFound, serverStream, unary, GrpcError } from '@gantry/service-kit';
import { InvalidPageTokenError, SchedulingStateStore } from '@gantry/store';
import { status } from '@grpc/grpc-js';
import type { SchedulerContext } from '../context.js';
import { currentAttempt, endJob, isActive, liveRanks } from '../jobs/lifecycle.js';
import type { Explanation } from '../scheduling-loop.js';
import { mutateJob } from '../jobs/mutate.js';
import { stopLiveRanks } from '../dispatch/dispatcher.js';
import { admitSubmit } from '@gantry/gateway/admission';

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
      // The gateway's rules and bounds again: a request sent straight to the scheduler (or by a
      // future caller) gets no more latitude than one through the gateway.
      const req = admitSubmit(input);
      if (!req.spec) throw invalidArgument('spec is required');
      const job = Job.create({ id: newJobId(), spec: req.spec, idempotencyKey: req.idempotencyKey, createdAt: new Date() });
      const res = await ctx.jobs.submit(job, req.idempotencyKey);
      if (res.created) {
        ctx.log.info({ job: job.id, tenant: req.spec.tenant, nodes: req.spec.nodes }, 'job submitted');
        ctx.kick();
      }
      return { job: res.job, created: res.created };
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
