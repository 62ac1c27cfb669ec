// The SDK against a real in-process grpc-js server whose handlers fail on purpose.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Metadata, ServerUnaryCall, ServerWritableStream, sendUnaryData } from '@grpc/grpc-js';
import { Checkpoint, Job, JobEvent, JobState, LogStream, type JobServiceServer, type StreamLogsRequest, type StreamLogsResponse, type SubmitJobRequest, type WatchJobRequest, type WatchJobResponse } from '@gantry/proto';
import { CheckpointClient, GantryClient, GantryError, status } from '../src/index.js';
import { startTestServer, statusError, type TestServer } from '../src/testing.js';

/** What the server saw, and the failures it should produce next. */
const seen = {
  submits: [] as SubmitJobRequest[],
  getJobCalls: 0,
  cancelCalls: 0,
  metadata: [] as Metadata[],
  streamCancelled: false,
  logRequests: [] as StreamLogsRequest[],
};
let failures: status[] = [];
let delayFirstMs = 0;

function reset() {
  seen.submits = [];
  seen.getJobCalls = 0;
  seen.cancelCalls = 0;
  seen.metadata = [];
  seen.streamCancelled = false;
  seen.logRequests = [];
  failures = [];
  delayFirstMs = 0;
}

const job = (id: string, state = JobState.JOB_STATE_PENDING) => Job.fromPartial({ id, state });

/** Answers with the next queued failure, or with `ok()`; the first call may be delayed. */
function respond<T>(cb: sendUnaryData<T>, calls: number, ok: () => T) {
  const failure = failures.shift();
  const send = () => (failure === undefined ? cb(null, ok()) : cb(statusError(failure, `injected ${status[failure]}`)));
  if (calls === 1 && delayFirstMs > 0) setTimeout(send, delayFirstMs);
  else send();
}

const jobs: Partial<JobServiceServer> = {
  submitJob(call: ServerUnaryCall<SubmitJobRequest, unknown>, cb) {
    seen.submits.push(call.request);
    respond(cb, seen.submits.length, () => ({ job: job('j-1'), created: seen.submits.length === 1 }));
  },
  getJob(call, cb) {
    seen.getJobCalls++;
    seen.metadata.push(call.metadata);
    if (call.request.jobId === 'missing') return cb(statusError(status.NOT_FOUND, 'job missing not found'));
    respond(cb, seen.getJobCalls, () => ({ job: job(call.request.jobId) }));
  },
  cancelJob(call, cb) {
    seen.cancelCalls++;
    respond(cb, seen.cancelCalls, () => ({ job: job(call.request.jobId, JobState.JOB_STATE_CANCELLED) }));
  },
  listJobs(call, cb) {
    // Three pages of two jobs: tokens "2" and "4".
    const start = Number(call.request.pageToken || '0');
    const page = [start, start + 1].map((i) => job(`j-${i}`));
    cb(null, { jobs: page, nextPageToken: start + 2 < 6 ? String(start + 2) : '' });
  },
  watchJob(call: ServerWritableStream<WatchJobRequest, WatchJobResponse>) {
    const states = [JobState.JOB_STATE_PENDING, JobState.JOB_STATE_RUNNING, JobState.JOB_STATE_SUCCEEDED];
    if (call.request.jobId === 'endless') {
      // Writes until the client cancels.
      call.on('cancelled', () => (seen.streamCancelled = true));
      const timer = setInterval(() => call.write({ event: JobEvent.fromPartial({ eventId: 'e', jobId: 'endless', toState: JobState.JOB_STATE_RUNNING }) }), 5);
      call.on('cancelled', () => clearInterval(timer));
      return;
    }
    if (call.request.jobId === 'broken') {
      call.write({ event: JobEvent.fromPartial({ eventId: 'e1', jobId: 'broken', toState: JobState.JOB_STATE_RUNNING }) });
      call.emit('error', statusError(status.PERMISSION_DENIED, 'not your job'));
      return;
    }
    for (const [i, s] of states.entries()) call.write({ event: JobEvent.fromPartial({ eventId: `e${i}`, jobId: call.request.jobId, toState: s }) });
    call.end();
  },
  streamLogs(call: ServerWritableStream<StreamLogsRequest, StreamLogsResponse>) {
    seen.logRequests.push(call.request);
    for (let seq = 1; seq <= 3; seq++) {
      call.write({ jobId: call.request.jobId, attempt: 1, rank: call.request.rank ?? 0, node: 'n1', line: { seq, stream: LogStream.LOG_STREAM_STDOUT, text: `line ${seq}`, time: new Date() } });
    }
    call.end();
  },
};

let server: TestServer;
let client: GantryClient;
const fastRetry = { maxAttempts: 4, initialBackoffMs: 1, maxBackoffMs: 5 };

beforeAll(async () => {
  server = await startTestServer({
    jobs,
    checkpoints: { getLatestCheckpoint: (call, cb) => cb(null, { checkpoint: Checkpoint.fromPartial({ id: 'c1', jobId: call.request.jobId }) }) },
  });
  client = new GantryClient({ address: server.address, retry: fastRetry, token: 'secret', metadata: { 'x-client': 'test' }, env: {} });
});
afterAll(async () => {
  client.close();
  await server.close();
});
afterEach(reset);

describe('unary calls', () => {
  it('returns the unwrapped message and sends the auth metadata', async () => {
    await expect(client.getJob('j-7')).resolves.toMatchObject({ id: 'j-7' });
    expect(seen.metadata[0]?.get('authorization')).toEqual(['Bearer secret']);
    expect(seen.metadata[0]?.get('x-client')).toEqual(['test']);
  });

  it('retries a read on UNAVAILABLE until it succeeds', async () => {
    failures = [status.UNAVAILABLE, status.UNAVAILABLE];
    await expect(client.getJob('j-2')).resolves.toMatchObject({ id: 'j-2' });
    expect(seen.getJobCalls).toBe(3);
  });

  it('gives up after maxAttempts with a typed error', async () => {
    failures = Array(10).fill(status.UNAVAILABLE);
    const err = await client.getJob('j-2').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GantryError);
    expect(err).toMatchObject({ name: 'GantryError', code: status.UNAVAILABLE, codeName: 'UNAVAILABLE', details: 'injected UNAVAILABLE' });
    expect(seen.getJobCalls).toBe(4);
  });

  it('does not retry other errors, and keeps the server message', async () => {
    await expect(client.getJob('missing')).rejects.toMatchObject({ code: status.NOT_FOUND, message: 'NOT_FOUND: job missing not found' });
    expect(seen.getJobCalls).toBe(1);
  });

  it('gives each attempt its own deadline and retries a read that timed out', async () => {
    delayFirstMs = 500;
    await expect(client.getJob('j-3', { timeoutMs: 100 })).resolves.toMatchObject({ id: 'j-3' });
    expect(seen.getJobCalls).toBe(2);
  });

  it('does not retry a write that timed out (it may have been applied)', async () => {
    delayFirstMs = 500;
    await expect(client.cancelJob('j-4', 'test', { timeoutMs: 100 })).rejects.toMatchObject({ code: status.DEADLINE_EXCEEDED });
    expect(seen.cancelCalls).toBe(1);
  });

  it('retries cancel on UNAVAILABLE', async () => {
    failures = [status.UNAVAILABLE];
    await expect(client.cancelJob('j-4')).resolves.toMatchObject({ state: JobState.JOB_STATE_CANCELLED });
    expect(seen.cancelCalls).toBe(2);
  });

  it('retries a submit with one generated idempotency key', async () => {
    failures = [status.UNAVAILABLE, status.UNAVAILABLE];
    const res = await client.submitJob({ name: 'train', nodes: 2, command: ['python', 'x.py'] });
    expect(res.job?.id).toBe('j-1');
    expect(seen.submits).toHaveLength(3);
    const keys = new Set(seen.submits.map((s) => s.idempotencyKey));
    expect(keys.size).toBe(1);
    expect([...keys][0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(seen.submits[0]?.spec).toMatchObject({ name: 'train', nodes: 2, command: ['python', 'x.py'], gpusPerNode: 0, env: {} });
  });

  it('retries a submit that timed out with the same key, and reports the job the lost attempt created', async () => {
    delayFirstMs = 500; // the first attempt creates the job, but its answer comes too late
    const res = await client.submitJob({ name: 'train', nodes: 1, command: ['true'] }, { timeoutMs: 100 });
    expect(res).toMatchObject({ job: { id: 'j-1' }, created: true });
    expect(seen.submits).toHaveLength(2);
    expect(seen.submits[1]?.idempotencyKey).toBe(seen.submits[0]?.idempotencyKey);
  });

  it('passes on created=false for a caller key that matched an earlier submit', async () => {
    await client.submitJob({ name: 'a' }, { idempotencyKey: 'k' });
    await expect(client.submitJob({ name: 'a' }, { idempotencyKey: 'k' })).resolves.toMatchObject({ created: false });
  });

  it('sends a caller idempotency key unchanged, and fresh keys for separate submits', async () => {
    await client.submitJob({ name: 'a' }, { idempotencyKey: 'mine' });
    await client.submitJob({ name: 'a' });
    await client.submitJob({ name: 'a' });
    const [mine, k1, k2] = seen.submits.map((s) => s.idempotencyKey);
    expect(mine).toBe('mine');
    expect(k1).not.toBe(k2);
  });

  it('does not retry when retries are disabled', async () => {
    const once = new GantryClient({ address: server.address, retry: false, env: {} });
    failures = [status.UNAVAILABLE];
    await expect(once.getJob('j')).rejects.toMatchObject({ code: status.UNAVAILABLE });
    expect(seen.getJobCalls).toBe(1);
    once.close();
  });

  it('cancels with CANCELLED when the signal aborts', async () => {
    delayFirstMs = 2_000;
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    await expect(client.getJob('j', { signal: ac.signal })).rejects.toMatchObject({ code: status.CANCELLED });
  });

  it('reports UNAVAILABLE after retrying when nothing listens', async () => {
    const nowhere = new GantryClient({ address: '127.0.0.1:1', retry: { maxAttempts: 2, initialBackoffMs: 1 }, env: {} });
    await expect(nowhere.listNodes()).rejects.toMatchObject({ name: 'GantryError', code: status.UNAVAILABLE });
    nowhere.close();
  });

  it('answers UNIMPLEMENTED for a service the server lacks', async () => {
    await expect(client.getNode('n1')).rejects.toMatchObject({ code: status.UNIMPLEMENTED });
  });
});

describe('listAllJobs', () => {
  it('follows page tokens to the end', async () => {
    const ids: string[] = [];
    for await (const j of client.listAllJobs({ pageSize: 2 })) ids.push(j.id);
    expect(ids).toEqual(['j-0', 'j-1', 'j-2', 'j-3', 'j-4', 'j-5']);
  });
});

describe('streams', () => {
  it('watchJob yields every event and ends with the server stream', async () => {
    const states: JobState[] = [];
    for await (const ev of client.watchJob('j-9')) states.push(ev.toState);
    expect(states).toEqual([JobState.JOB_STATE_PENDING, JobState.JOB_STATE_RUNNING, JobState.JOB_STATE_SUCCEEDED]);
  });

  it('cancels the call when the consumer breaks out of the loop', async () => {
    let n = 0;
    for await (const _ of client.watchJob('endless')) if (++n === 3) break;
    await expect.poll(() => seen.streamCancelled).toBe(true);
  });

  it('throws a server failure as a GantryError after the messages before it', async () => {
    const got: string[] = [];
    const err = await (async () => {
      for await (const ev of client.watchJob('broken')) got.push(ev.eventId);
    })().catch((e: unknown) => e);
    expect(got).toEqual(['e1']);
    expect(err).toMatchObject({ name: 'GantryError', code: status.PERMISSION_DENIED, details: 'not your job' });
  });

  it('streamLogs passes follow, rank and attempt', async () => {
    const lines: string[] = [];
    for await (const l of client.streamLogs('j-5', { follow: true, rank: 2, attempt: 3 })) lines.push(`${l.rank}:${l.line?.text}`);
    expect(lines).toEqual(['2:line 1', '2:line 2', '2:line 3']);
    expect(seen.logRequests[0]).toEqual({ jobId: 'j-5', follow: true, rank: 2, attempt: 3 });
  });

  it('streamLogs leaves rank unset when not given', async () => {
    for await (const _ of client.streamLogs('j-5')) break;
    expect(seen.logRequests[0]).toMatchObject({ follow: false, attempt: 0 });
    expect(seen.logRequests[0]?.rank).toBeUndefined();
  });

  it('cancels a stream when the signal aborts, and refuses an aborted signal', async () => {
    const ac = new AbortController();
    const got: unknown[] = [];
    const err = await (async () => {
      for await (const ev of client.watchJob('endless', { signal: ac.signal })) if (got.push(ev) === 2) ac.abort();
    })().catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'GantryError', code: status.CANCELLED });
    await expect.poll(() => seen.streamCancelled).toBe(true);
    await expect(client.watchJob('j-1', { signal: ac.signal }).next()).rejects.toMatchObject({ code: status.CANCELLED });
  });

  it('does not start the call until iterated', async () => {
    client.streamLogs('j-5');
    await new Promise((r) => setTimeout(r, 20));
    expect(seen.logRequests).toHaveLength(0);
  });
});

describe('CheckpointClient', () => {
  it('talks to the checkpoint service', async () => {
    const cp = new CheckpointClient({ address: server.address, env: {} });
    await expect(cp.getLatestCheckpoint('j-1')).resolves.toMatchObject({ id: 'c1', jobId: 'j-1' });
    cp.close();
  });
});
