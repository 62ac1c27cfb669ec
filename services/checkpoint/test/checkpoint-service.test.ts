// The checkpoint service in-process against a real redis-server, called over gRPC with the
// generated client exactly as the SDK and the agents call it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, credentials, status, type ServiceError } from '@grpc/grpc-js';
import {
  CheckpointServiceClient,
  CheckpointState,
  JobEvent,
  JobState,
  type BeginCheckpointRequest,
  type BeginCheckpointResponse,
  type Checkpoint,
  type CommitCheckpointRequest,
  type CommitCheckpointResponse,
  type GetLatestCheckpointRequest,
  type GetLatestCheckpointResponse,
  type ListCheckpointsRequest,
  type ListCheckpointsResponse,
  type ListLastCommitsRequest,
  type ListLastCommitsResponse,
  type ReportCheckpointShardRequest,
  type ReportCheckpointShardResponse,
} from '@gantry/proto';
import { ConfigError } from '@gantry/service-kit';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { Redis } from 'ioredis';
import { subjects } from '@gantry/bus';
import { keys } from '@gantry/store';
import { startNats, startRedis, type Server } from '../../../test/harness/infra.js';
import { startCheckpointService, type CheckpointServiceHandle } from '../src/server.js';


let redis: Server;
let nats: Server;
let service: CheckpointServiceHandle;
let client: CheckpointServiceClient;
let jobSeq = 0;

/** Each test uses its own job, so tests share one service and Redis without interfering. */
const newJob = () => `svc-job-${process.pid}-${++jobSeq}`;

/** Request and response of each method, for a promise wrapper over the callback client. */
interface Calls {
  beginCheckpoint: [BeginCheckpointRequest, BeginCheckpointResponse];
  reportCheckpointShard: [ReportCheckpointShardRequest, ReportCheckpointShardResponse];
  commitCheckpoint: [CommitCheckpointRequest, CommitCheckpointResponse];
  listCheckpoints: [ListCheckpointsRequest, ListCheckpointsResponse];
  getLatestCheckpoint: [GetLatestCheckpointRequest, GetLatestCheckpointResponse];
  listLastCommits: [ListLastCommitsRequest, ListLastCommitsResponse];
}
type Method = keyof Calls;
type Req<M extends Method> = Calls[M][0];
type Res<M extends Method> = Calls[M][1];

function rpc<M extends Method>(method: M, req: Req<M>): Promise<Res<M>> {
  const fn = client[method] as unknown as (r: Req<M>, cb: (err: ServiceError | null, res: Res<M>) => void) => unknown;
  return new Promise((resolve, reject) => {
    fn.call(client, req, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

async function rpcError<M extends Method>(method: M, req: Req<M>): Promise<{ code: number; details: string }> {
  const err = (await rpc(method, req).then(
    () => { throw new Error(`${method} succeeded, expected an error`); },
    (e: unknown) => e,
  )) as ServiceError;
  return { code: err.code, details: err.details };
}

async function begin(over: Partial<BeginCheckpointRequest> = {}): Promise<Checkpoint> {
  const res = await rpc('beginCheckpoint', { jobId: newJob(), attempt: 1, step: 100, path: '/mnt/ckpt/run/step-100', shardCount: 2, ...over });
  return res.checkpoint!;
}

async function beginComplete(over: Partial<BeginCheckpointRequest> = {}): Promise<Checkpoint> {
  const c = await begin(over);
  for (let i = 0; i < c.shardCount; i++) await rpc('reportCheckpointShard', { checkpointId: c.id, shardIndex: i, bytes: 1000 });
  return (await rpc('commitCheckpoint', { checkpointId: c.id })).checkpoint!;
}

beforeAll(async () => {
  [redis, nats] = await Promise.all([startRedis(), startNats()]);
  service = await startCheckpointService({
    REDIS_URL: redis.url,
    NATS_URL: nats.url,
    CHECKPOINT_GRPC_PORT: '0',
    METRICS_PORT: '0',
    BIND_HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
  });
  client = new CheckpointServiceClient(`127.0.0.1:${service.port}`, credentials.createInsecure());
}, 60_000);

afterAll(async () => {
  client?.close();
  await service?.stop();
  await redis?.stop();
  await nats?.stop();
});

describe('checkpoint service: the happy path', () => {
  it('begins, collects shards, commits, lists and offers the latest committed checkpoint', async () => {
    const jobId = newJob();
    const path = `/mnt/ckpt/${jobId}/step-2000`;
    const { checkpoint: begun } = await rpc('beginCheckpoint', { jobId, attempt: 3, step: 2000, path, shardCount: 4 });
    expect(begun).toMatchObject({ jobId, attempt: 3, step: 2000, path, shardCount: 4, state: CheckpointState.CHECKPOINT_STATE_WRITING, shardsReported: [], bytes: 0 });
    expect(begun!.createdAt).toBeInstanceOf(Date);

    // A retried begin returns the same record.
    const again = await rpc('beginCheckpoint', { jobId, attempt: 3, step: 2000, path, shardCount: 4 });
    expect(again.checkpoint).toEqual(begun);

    for (const i of [3, 0, 2, 1]) await rpc('reportCheckpointShard', { checkpointId: begun!.id, shardIndex: i, bytes: 2 ** 33 });
    // A retried report does not double-count.
    const reported = await rpc('reportCheckpointShard', { checkpointId: begun!.id, shardIndex: 2, bytes: 2 ** 33 });
    expect(reported.checkpoint).toMatchObject({ shardsReported: [0, 1, 2, 3], bytes: 4 * 2 ** 33 });

    const { checkpoint: committed } = await rpc('commitCheckpoint', { checkpointId: begun!.id });
    expect(committed).toMatchObject({ id: begun!.id, state: CheckpointState.CHECKPOINT_STATE_COMMITTED });
    expect(committed!.committedAt).toBeInstanceOf(Date);
    const twice = await rpc('commitCheckpoint', { checkpointId: begun!.id });
    expect(twice.checkpoint).toEqual(committed);

    // A later checkpoint still WRITING is listed but never offered for resume.
    await rpc('beginCheckpoint', { jobId, attempt: 3, step: 3000, path: `/mnt/ckpt/${jobId}/step-3000`, shardCount: 4 });
    const all = await rpc('listCheckpoints', { jobId, committedOnly: false });
    expect(all.checkpoints.map((c) => [c.step, c.state])).toEqual([
      [2000, CheckpointState.CHECKPOINT_STATE_COMMITTED],
      [3000, CheckpointState.CHECKPOINT_STATE_WRITING],
    ]);
    const onlyCommitted = await rpc('listCheckpoints', { jobId, committedOnly: true });
    expect(onlyCommitted.checkpoints).toEqual([committed]);
    const latest = await rpc('getLatestCheckpoint', { jobId });
    expect(latest.checkpoint).toEqual(committed);
  });

  it('answers a job without committed checkpoints with no checkpoint (not an error)', async () => {
    const jobId = newJob();
    expect((await rpc('getLatestCheckpoint', { jobId })).checkpoint).toBeUndefined();
    expect((await rpc('listCheckpoints', { jobId, committedOnly: false })).checkpoints).toEqual([]);
  });

  it('ListLastCommits: when each job named last committed one; a job without a commit is absent', async () => {
    const a = newJob();
    const b = newJob();
    const never = newJob();
    await beginComplete({ jobId: a, step: 10 });
    const newest = await beginComplete({ jobId: a, step: 20 });
    await begin({ jobId: b }); // begun, never committed
    const { lastCommits } = await rpc('listLastCommits', { jobIds: [a, b, never, a] });
    expect(lastCommits).toEqual({ [a]: newest.committedAt });
    expect((await rpc('listLastCommits', { jobIds: [] })).lastCommits).toEqual({});
  });
});

describe('checkpoint service: invalid requests get INVALID_ARGUMENT naming the field and rule', () => {
  const valid: BeginCheckpointRequest = { jobId: 'job-1', attempt: 1, step: 10, path: '/ckpt/job-1/10', shardCount: 8 };
  const jobRule = 'job_id must match ^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$';
  const idRule = 'checkpoint_id must match ^ck-[A-Za-z0-9][A-Za-z0-9_-]{0,127}-[0-9]{1,16}-[0-9]{1,10}$';

  const beginCases: [string, Partial<BeginCheckpointRequest>, string][] = [
    ['empty job_id', { jobId: '' }, 'job_id is required'],
    ['job_id with a space', { jobId: 'bad id' }, jobRule],
    ['job_id with a dot', { jobId: 'job.1' }, jobRule],
    ['job_id starting with -', { jobId: '-job' }, jobRule],
    // Caught by the shared bounds (@gantry/gateway/admission) before the pattern.
    ['job_id of 129 characters', { jobId: 'j'.repeat(129) }, `job_id must be at most 128 bytes, got 129 bytes starting "${'j'.repeat(32)}…" (129 bytes)`],
    ['attempt 0', { attempt: 0 }, 'attempt must be between 1 and 4294967295, got 0'],
    ['empty path', { path: '' }, 'path is required'],
    ['relative path', { path: 'ckpt/step-10' }, 'path must be an absolute path'],
    ['path with ..', { path: '/ckpt/../etc' }, "path must not contain '..' segments"],
    ['path with NUL', { path: '/ckpt/a\0b' }, 'path must not contain NUL characters'],
    ['path over 4096 bytes', { path: `/${'a'.repeat(4096)}` }, 'path must be at most 4096 bytes, got 4097'],
    ['shard_count 0', { shardCount: 0 }, 'shard_count must be between 1 and 65536, got 0'],
    ['shard_count 65537', { shardCount: 65537 }, 'shard_count must be between 1 and 65536, got 65537'],
    ['several fields at once', { jobId: '', shardCount: 0 }, 'job_id is required; shard_count must be between 1 and 65536, got 0'],
  ];
  it.each(beginCases)('BeginCheckpoint: %s', async (_name, over, details) => {
    expect(await rpcError('beginCheckpoint', { ...valid, ...over })).toEqual({ code: status.INVALID_ARGUMENT, details });
  });

  it('ReportCheckpointShard: checkpoint_id and shard_index', async () => {
    const ok = { checkpointId: 'ck-job-1-10-1', shardIndex: 0, bytes: 1 };
    expect(await rpcError('reportCheckpointShard', { ...ok, checkpointId: '' })).toEqual({ code: status.INVALID_ARGUMENT, details: 'checkpoint_id is required' });
    expect(await rpcError('reportCheckpointShard', { ...ok, checkpointId: 'gantry:job:x' })).toEqual({ code: status.INVALID_ARGUMENT, details: idRule });
    expect(await rpcError('reportCheckpointShard', { ...ok, shardIndex: 65536 })).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'shard_index must be between 0 and 65535, got 65536',
    });
  });

  it('ReportCheckpointShard: an index beyond the checkpoint\'s own shard count', async () => {
    const c = await begin({ shardCount: 8 });
    expect(await rpcError('reportCheckpointShard', { checkpointId: c.id, shardIndex: 8, bytes: 1 })).toEqual({
      code: status.INVALID_ARGUMENT,
      details: `shard_index must be less than shard_count 8 of checkpoint ${c.id}, got 8`,
    });
  });

  it('CommitCheckpoint, ListCheckpoints, GetLatestCheckpoint', async () => {
    expect(await rpcError('commitCheckpoint', { checkpointId: '' })).toEqual({ code: status.INVALID_ARGUMENT, details: 'checkpoint_id is required' });
    expect(await rpcError('commitCheckpoint', { checkpointId: 'ck-' })).toEqual({ code: status.INVALID_ARGUMENT, details: idRule });
    expect(await rpcError('listCheckpoints', { jobId: '', committedOnly: true })).toEqual({ code: status.INVALID_ARGUMENT, details: 'job_id is required' });
    expect(await rpcError('listCheckpoints', { jobId: 'a/b', committedOnly: false })).toEqual({ code: status.INVALID_ARGUMENT, details: jobRule });
    expect(await rpcError('getLatestCheckpoint', { jobId: '' })).toEqual({ code: status.INVALID_ARGUMENT, details: 'job_id is required' });
    expect(await rpcError('getLatestCheckpoint', { jobId: 'x*' })).toEqual({ code: status.INVALID_ARGUMENT, details: jobRule });
  });

  it('ListLastCommits: every job id, a few problems named; more ids than a list may hold', async () => {
    const rule = jobRule.replace('job_id', '');
    expect(await rpcError('listLastCommits', { jobIds: ['job-1', '', 'a b'] })).toEqual({
      code: status.INVALID_ARGUMENT,
      details: `job_ids[1] is required; job_ids[2]${rule}`,
    });
    const bad = await rpcError('listLastCommits', { jobIds: ['job-1', ...Array.from({ length: 9 }, (_, i) => `bad.${i}`)] });
    expect(bad.details.split('; ')).toEqual([1, 2, 3, 4, 5].map((i) => `job_ids[${i}]${rule}`));
    expect(await rpcError('listLastCommits', { jobIds: Array.from({ length: 4097 }, (_, i) => `job-${i}`) })).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'job_ids must have at most 4096 items, got 4097',
    });
  });
});

describe('checkpoint service: NOT_FOUND, FAILED_PRECONDITION, ALREADY_EXISTS', () => {
  it('NOT_FOUND for an unknown checkpoint id', async () => {
    const id = 'ck-no-such-job-5-1';
    expect(await rpcError('reportCheckpointShard', { checkpointId: id, shardIndex: 0, bytes: 1 })).toEqual({ code: status.NOT_FOUND, details: `checkpoint ${id} not found` });
    expect(await rpcError('commitCheckpoint', { checkpointId: id })).toEqual({ code: status.NOT_FOUND, details: `checkpoint ${id} not found` });
  });

  it('FAILED_PRECONDITION for committing an incomplete checkpoint, listing the missing shards', async () => {
    const c = await begin({ shardCount: 8 });
    for (const i of [0, 1, 2, 4, 5, 6]) await rpc('reportCheckpointShard', { checkpointId: c.id, shardIndex: i, bytes: 10 });
    expect(await rpcError('commitCheckpoint', { checkpointId: c.id })).toEqual({
      code: status.FAILED_PRECONDITION,
      details: `checkpoint ${c.id} has 6 of 8 shards; missing 3, 7`,
    });
    expect((await rpc('getLatestCheckpoint', { jobId: c.jobId })).checkpoint).toBeUndefined();
  });

  it('FAILED_PRECONDITION for a shard report after commit', async () => {
    const c = await beginComplete();
    expect(await rpcError('reportCheckpointShard', { checkpointId: c.id, shardIndex: 0, bytes: 1 })).toEqual({
      code: status.FAILED_PRECONDITION,
      details: `checkpoint ${c.id} is COMMITTED; shard reports are accepted only while WRITING`,
    });
  });

  it('ALREADY_EXISTS for a begin that disagrees with an earlier one of the same (job, step, attempt)', async () => {
    const c = await begin({ path: '/ckpt/a', shardCount: 2 });
    expect(await rpcError('beginCheckpoint', { jobId: c.jobId, attempt: 1, step: 100, path: '/ckpt/b', shardCount: 2 })).toEqual({
      code: status.ALREADY_EXISTS,
      details: `checkpoint ${c.id} was begun with path /ckpt/a and shard_count 2; this request has path /ckpt/b and shard_count 2`,
    });
  });
});

describe('checkpoint service: operations', () => {
  /** grpc.health.v1.Health/Check by hand: HealthCheckRequest{service=1}, HealthCheckResponse{status=1}. */
  function healthCheck(serviceName: string): Promise<number> {
    const raw = new Client(`127.0.0.1:${service.port}`, credentials.createInsecure());
    const name = Buffer.from(serviceName);
    const req = name.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a, name.length]), name]);
    return new Promise<number>((resolve, reject) => {
      raw.makeUnaryRequest('/grpc.health.v1.Health/Check', (b: Buffer) => b, (b: Buffer) => b, req, (err, res) => {
        raw.close();
        if (err) return reject(err);
        // proto3 omits the default (UNKNOWN = 0); otherwise the reply is tag 0x08 then the varint.
        resolve(res && res.length >= 2 && res[0] === 0x08 ? res[1]! : 0);
      });
    });
  }
  const SERVING = 1;

  it('reports SERVING on grpc.health.v1, overall and for gantry.v1.CheckpointService', async () => {
    expect(await healthCheck('')).toBe(SERVING);
    expect(await healthCheck('gantry.v1.CheckpointService')).toBe(SERVING);
  });

  it('counts begun and committed checkpoints and shard bytes on /metrics, once per change', async () => {
    const read = async () => {
      const text = await (await fetch(`http://127.0.0.1:${service.metricsPort}/metrics`)).text();
      const value = (name: string) => Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
      return {
        begun: value('gantry_checkpoints_begun_total'),
        committed: value('gantry_checkpoints_committed_total'),
        bytes: value('gantry_checkpoint_shard_bytes_total'),
      };
    };
    const before = await read();
    const c = await beginComplete({ shardCount: 3 });
    await rpc('beginCheckpoint', { jobId: c.jobId, attempt: c.attempt, step: c.step, path: c.path, shardCount: c.shardCount });
    await rpc('commitCheckpoint', { checkpointId: c.id });
    const after = await read();
    expect(after.begun - before.begun).toBe(1);
    expect(after.committed - before.committed).toBe(1);
    expect(after.bytes - before.bytes).toBe(3000);
  });

  it('refuses a bad environment with an error naming the variable', async () => {
    await expect(startCheckpointService({ REDIS_URL: redis.url, CHECKPOINT_GRPC_PORT: '70000' })).rejects.toThrow(ConfigError);
    await expect(startCheckpointService({ REDIS_URL: redis.url, CHECKPOINT_GRPC_PORT: 'x' })).rejects.toThrow(/CHECKPOINT_GRPC_PORT/);
  });
});

describe('checkpoint service: job events (JetStream)', () => {
  it('a job that ends abandons its attempt\'s WRITING checkpoints and its records expire; a later attempt\'s stay WRITING', async () => {
    const jobId = newJob();
    const ended = await begin({ jobId, attempt: 1, step: 100, path: `/mnt/ckpt/${jobId}/step-100` });
    const later = await begin({ jobId, attempt: 2, step: 200, path: `/mnt/ckpt/${jobId}/step-200` });
    const nc = await connect({ servers: nats.url });
    try {
      const ev = JobEvent.create({ eventId: `ev-${jobId}`, jobId, fromState: JobState.JOB_STATE_RUNNING, toState: JobState.JOB_STATE_FAILED, attempt: 1, reason: 'rank 0 exited 1', time: new Date() });
      await jetstream(nc).publish(subjects.jobEvent(jobId), JobEvent.encode(ev).finish());
      const states = async () => new Map((await rpc('listCheckpoints', { jobId, committedOnly: false })).checkpoints.map((c) => [c.id, c.state]));
      const deadline = Date.now() + 10_000;
      while ((await states()).get(ended.id) !== CheckpointState.CHECKPOINT_STATE_ABANDONED && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(await states()).toEqual(new Map([[ended.id, CheckpointState.CHECKPOINT_STATE_ABANDONED], [later.id, CheckpointState.CHECKPOINT_STATE_WRITING]]));
      const r = new Redis(redis.url);
      try {
        for (const id of [ended.id, later.id]) expect(await r.ttl(keys.checkpoint(id))).toBeGreaterThan(0);
        expect(await r.ttl(keys.jobCheckpointFinished(jobId))).toBeGreaterThan(0);
      } finally {
        r.disconnect();
      }
    } finally {
      await nc.close();
    }
  });
});
