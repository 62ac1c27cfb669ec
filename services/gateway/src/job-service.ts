// The public JobService. Unary calls are validated here and forwarded to the scheduler;
// the two streams are served from JetStream (job events and rank output are durable
// there), so a client sees the whole history first and then follows live.
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, type Consumer } from '@nats-io/jetstream';
import type { ServerWritableStream } from '@grpc/grpc-js';
import {
  JobEvent, JobServiceService, JobState, LogBatch, RecoveryGrade, isTerminalJobState, type Job, type JobServiceClient, type JobServiceServer,
  type StreamLogsRequest, type StreamLogsResponse, type WatchJobRequest, type WatchJobResponse,
} from '@gantry/proto';
import { decode, streams, subjects } from '@gantry/bus';
import { serverStream, unary, type Logger } from '@gantry/service-kit';
import { call } from './scheduler-client.js';
import { requireToken, validateListJobs, validateSubmit } from './admission/validate.js';

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

export function jobService(log: Logger, scheduler: JobServiceClient, nc: NatsConnection): JobServiceServer {
  const js = jetstream(nc);
  const getJob = async (jobId: string): Promise<Job> => (await call(scheduler, scheduler.getJob, { jobId })).job!;

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

  return {
    submitJob: unary(log, 'SubmitJob', (req) => call(scheduler, scheduler.submitJob, validateSubmit(req))),
    getJob: unary(log, 'GetJob', (req) => { requireToken('job_id', req.jobId); return call(scheduler, scheduler.getJob, req); }),
    listJobs: unary(log, 'ListJobs', (req) => call(scheduler, scheduler.listJobs, validateListJobs(req))),
    cancelJob: unary(log, 'CancelJob', (req) => { requireToken('job_id', req.jobId); return call(scheduler, scheduler.cancelJob, req); }),
    explainJob: unary(log, 'ExplainJob', (req) => { requireToken('job_id', req.jobId); return call(scheduler, scheduler.explainJob, req); }),
    retryJob: unary(log, 'RetryJob', (req) => { requireToken('job_id', req.jobId); return call(scheduler, scheduler.retryJob, req); }),

    watchJob: serverStream(log, 'WatchJob', async (req: WatchJobRequest, stream: ServerWritableStream<WatchJobRequest, WatchJobResponse>) => {
      requireToken('job_id', req.jobId);
      const job = await getJob(req.jobId); // NOT_FOUND surfaces here
      const consumer = await js.consumers.get(streams.events.name, { filter_subjects: subjects.jobEvent(req.jobId) });
      let sent = 0;
      await drain(consumer, stream, (data) => {
        const event = decode(JobEvent, data, 'JobEvent');
        stream.write({ event });
        sent++;
        return endsWatch(event, job);
      }, async () => {
        // The events may have aged out of the stream: fall back to the job's current state.
        if (sent === 0 && isTerminalJobState(job.state)) {
          stream.write({ event: JobEvent.create({ eventId: `current-${job.revision}`, jobId: job.id, toState: job.state, fromState: job.state, attempt: job.attempt, reason: job.reason, time: job.updatedAt, job }) });
          return true;
        }
        return false;
      });
    }),

    streamLogs: serverStream(log, 'StreamLogs', async (req: StreamLogsRequest, stream: ServerWritableStream<StreamLogsRequest, StreamLogsResponse>) => {
      requireToken('job_id', req.jobId);
      await getJob(req.jobId);
      const consumer = await js.consumers.get(streams.logs.name, { filter_subjects: subjects.logsFilter(req.jobId, req.attempt, req.rank) });
      let endedAt = 0;
      // Agents may re-send lines after a failure (at-least-once); each line's sequence number
      // per (attempt, node rank, local rank, stream) lets the stream show it once.
      const lastSeq = new Map<string, number>();
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
    }),
  };
}

export { JobServiceService };
