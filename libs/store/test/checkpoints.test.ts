// CheckpointStore against a real redis-server: the Lua scripts are the behaviour under test.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { CheckpointState } from '@gantry/proto';
import { startRedis, type Server } from '../../../test/harness/infra.js';
import {
  CheckpointConflictError,
  CheckpointIncompleteError,
  CheckpointNotFoundError,
  CheckpointStateError,
  CheckpointStore,
  ShardIndexError,
  checkpointId,
  CHECKPOINT_ID_PATTERN,
} from '../src/checkpoints.js';
import { keys } from '../src/keys.js';

const { CHECKPOINT_STATE_WRITING: WRITING, CHECKPOINT_STATE_COMMITTED: COMMITTED, CHECKPOINT_STATE_ABANDONED: ABANDONED } = CheckpointState;

let server: Server;
let redis: Redis;
let store: CheckpointStore;
let jobSeq = 0;

/** Each test writes under its own job id, so tests share one Redis without interfering. */
const newJob = () => `job-${process.pid}-${++jobSeq}`;

async function complete(jobId: string, step: number, attempt = 1, shardCount = 2, now?: Date) {
  const { checkpoint } = await store.begin({ jobId, attempt, step, path: `/ckpt/${jobId}/${step}`, shardCount });
  for (let i = 0; i < shardCount; i++) await store.reportShard(checkpoint.id, i, 100);
  return (await store.commit(checkpoint.id, now)).checkpoint;
}

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
  store = new CheckpointStore(redis);
}, 60_000);

afterAll(async () => {
  await redis?.quit();
  await server?.stop();
});

describe('CheckpointStore.begin', () => {
  it('creates a WRITING checkpoint indexed under its job', async () => {
    const jobId = newJob();
    const now = new Date('2025-01-02T03:04:05.678Z');
    const { checkpoint, created } = await store.begin({ jobId, attempt: 2, step: 1000, path: '/ckpt/a/1000', shardCount: 8 }, now);
    expect(created).toBe(true);
    expect(checkpoint).toMatchObject({
      id: checkpointId(jobId, 1000, 2),
      jobId,
      attempt: 2,
      step: 1000,
      path: '/ckpt/a/1000',
      shardCount: 8,
      shardsReported: [],
      bytes: 0,
      state: WRITING,
      createdAt: now,
      committedAt: undefined,
    });
    expect(checkpoint.id).toMatch(CHECKPOINT_ID_PATTERN);
    expect(await redis.zscore(keys.jobCheckpoints(jobId), checkpoint.id)).toBe('1000');
    expect(await store.get(checkpoint.id)).toEqual(checkpoint);
  });

  it('is idempotent: the same (job, step, attempt) returns the same record', async () => {
    const jobId = newJob();
    const input = { jobId, attempt: 1, step: 5, path: '/ckpt/x', shardCount: 2 };
    const first = await store.begin(input);
    await store.reportShard(first.checkpoint.id, 0, 10);
    const again = await store.begin(input, new Date(Date.now() + 60_000));
    expect(again.created).toBe(false);
    expect(again.checkpoint.id).toBe(first.checkpoint.id);
    expect(again.checkpoint.createdAt).toEqual(first.checkpoint.createdAt);
    // The retry did not reset the progress made in between.
    expect(again.checkpoint.shardsReported).toEqual([0]);
    expect(await store.list(jobId)).toHaveLength(1);
  });

  it('refuses the same (job, step, attempt) with another path or shard count', async () => {
    const jobId = newJob();
    await store.begin({ jobId, attempt: 1, step: 5, path: '/ckpt/x', shardCount: 2 });
    const err = await store.begin({ jobId, attempt: 1, step: 5, path: '/ckpt/y', shardCount: 4 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointConflictError);
    expect((err as Error).message).toBe(
      `checkpoint ${checkpointId(jobId, 5, 1)} was begun with path /ckpt/x and shard_count 2; this request has path /ckpt/y and shard_count 4`,
    );
  });

  it('keeps different attempts at the same step apart', async () => {
    const jobId = newJob();
    const a = await store.begin({ jobId, attempt: 1, step: 5, path: '/ckpt/x', shardCount: 2 });
    const b = await store.begin({ jobId, attempt: 2, step: 5, path: '/ckpt/x', shardCount: 2 });
    expect(a.checkpoint.id).not.toBe(b.checkpoint.id);
    expect(b.created).toBe(true);
  });
});

describe('CheckpointStore.reportShard', () => {
  it('records each shard once, replaces a repeat and sums the bytes', async () => {
    const jobId = newJob();
    const { checkpoint } = await store.begin({ jobId, attempt: 1, step: 1, path: '/c', shardCount: 4 });
    const r1 = await store.reportShard(checkpoint.id, 2, 300);
    expect(r1.previousBytes).toBeUndefined();
    await store.reportShard(checkpoint.id, 0, 100);
    const repeat = await store.reportShard(checkpoint.id, 2, 300);
    expect(repeat.previousBytes).toBe(300);
    expect(repeat.checkpoint).toMatchObject({ shardsReported: [0, 2], bytes: 400 });
    const replaced = await store.reportShard(checkpoint.id, 2, 50);
    expect(replaced.previousBytes).toBe(300);
    expect(replaced.checkpoint).toMatchObject({ shardsReported: [0, 2], bytes: 150 });
  });

  it('keeps shard sizes beyond 32 bits exact', async () => {
    const jobId = newJob();
    const { checkpoint } = await store.begin({ jobId, attempt: 1, step: 1, path: '/c', shardCount: 2 });
    const big = 2 ** 45 + 7;
    await store.reportShard(checkpoint.id, 0, big);
    const r = await store.reportShard(checkpoint.id, 1, big);
    expect(r.checkpoint.bytes).toBe(2 * big);
  });

  it('rejects an index at or beyond the shard count', async () => {
    const jobId = newJob();
    const { checkpoint } = await store.begin({ jobId, attempt: 1, step: 1, path: '/c', shardCount: 8 });
    const err = await store.reportShard(checkpoint.id, 8, 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ShardIndexError);
    expect((err as Error).message).toBe(`shard_index must be less than shard_count 8 of checkpoint ${checkpoint.id}, got 8`);
    expect((await store.get(checkpoint.id))?.shardsReported).toEqual([]);
  });

  it('rejects reports for unknown, committed and abandoned checkpoints', async () => {
    await expect(store.reportShard('ck-nope-1-1', 0, 1)).rejects.toBeInstanceOf(CheckpointNotFoundError);

    const jobId = newJob();
    const committed = await complete(jobId, 10);
    const afterCommit = await store.reportShard(committed.id, 0, 5).catch((e: unknown) => e);
    expect(afterCommit).toBeInstanceOf(CheckpointStateError);
    expect((afterCommit as Error).message).toBe(`checkpoint ${committed.id} is COMMITTED; shard reports are accepted only while WRITING`);
    expect((await store.get(committed.id))?.bytes).toBe(200);
    // A retry of a report that landed before the commit (same index, same bytes) is accepted.
    const shard0 = (await store.get(committed.id))!;
    const retried = await store.reportShard(committed.id, 0, shard0.bytes / shard0.shardCount);
    expect(retried.checkpoint.state).toBe(COMMITTED);
    expect(retried.checkpoint.bytes).toBe(200);

    const { checkpoint } = await store.begin({ jobId, attempt: 1, step: 20, path: '/c', shardCount: 2 });
    await store.abandon(checkpoint.id, 'attempt failed');
    await expect(store.reportShard(checkpoint.id, 0, 5)).rejects.toThrow(`checkpoint ${checkpoint.id} is ABANDONED`);
  });
});

describe('CheckpointStore.commit', () => {
  it('refuses an incomplete checkpoint and lists the missing shards', async () => {
    const jobId = newJob();
    const { checkpoint } = await store.begin({ jobId, attempt: 1, step: 7, path: '/c', shardCount: 8 });
    for (const i of [0, 1, 2, 4, 5, 6]) await store.reportShard(checkpoint.id, i, 1);
    const err = await store.commit(checkpoint.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointIncompleteError);
    expect((err as CheckpointIncompleteError).missing).toEqual([3, 7]);
    expect((err as Error).message).toBe(`checkpoint ${checkpoint.id} has 6 of 8 shards; missing 3, 7`);
    expect((await store.get(checkpoint.id))?.state).toBe(WRITING);
  });

  it('cuts a long list of missing shards short but counts them all', async () => {
    const jobId = newJob();
    const { checkpoint } = await store.begin({ jobId, attempt: 1, step: 7, path: '/c', shardCount: 1000 });
    const err = (await store.commit(checkpoint.id).catch((e: unknown) => e)) as CheckpointIncompleteError;
    expect(err.missingCount).toBe(1000);
    expect(err.missing).toHaveLength(32);
    expect(err.message).toMatch(/^checkpoint \S+ has 0 of 1000 shards; missing 0, 1, 2, .*, 31 and 968 more$/);
  });

  it('commits a complete checkpoint once; a second commit is a no-op', async () => {
    const jobId = newJob();
    const { checkpoint } = await store.begin({ jobId, attempt: 1, step: 7, path: '/c', shardCount: 2 });
    await store.reportShard(checkpoint.id, 1, 10);
    await store.reportShard(checkpoint.id, 0, 20);
    const at = new Date('2025-03-01T00:00:00.000Z');
    const first = await store.commit(checkpoint.id, at);
    expect(first.changed).toBe(true);
    expect(first.checkpoint).toMatchObject({ state: COMMITTED, committedAt: at, bytes: 30, shardsReported: [0, 1] });
    const second = await store.commit(checkpoint.id, new Date(at.getTime() + 1000));
    expect(second.changed).toBe(false);
    expect(second.checkpoint).toEqual(first.checkpoint);
  });

  it('refuses unknown and abandoned checkpoints', async () => {
    await expect(store.commit('ck-nope-1-1')).rejects.toThrow('checkpoint ck-nope-1-1 not found');
    const jobId = newJob();
    const { checkpoint } = await store.begin({ jobId, attempt: 1, step: 1, path: '/c', shardCount: 1 });
    await store.reportShard(checkpoint.id, 0, 1);
    const abandoned = await store.abandon(checkpoint.id, 'node lost');
    expect(abandoned).toMatchObject({ changed: true, checkpoint: { state: ABANDONED } });
    expect((await store.abandon(checkpoint.id, 'again')).changed).toBe(false);
    await expect(store.commit(checkpoint.id)).rejects.toThrow(`checkpoint ${checkpoint.id} is ABANDONED; only a WRITING checkpoint can be committed`);
  });

  it('cannot abandon a committed checkpoint', async () => {
    const committed = await complete(newJob(), 1);
    await expect(store.abandon(committed.id, 'x')).rejects.toBeInstanceOf(CheckpointStateError);
  });
});

describe('CheckpointStore.list and latestCommitted', () => {
  it('lists by step (then attempt), all or committed only', async () => {
    const jobId = newJob();
    await complete(jobId, 300);
    await store.begin({ jobId, attempt: 1, step: 1000, path: '/c', shardCount: 1 });
    await complete(jobId, 20);
    await complete(jobId, 100, 2);
    await store.begin({ jobId, attempt: 1, step: 100, path: '/c', shardCount: 1 });
    const all = await store.list(jobId);
    expect(all.map((c) => [c.step, c.attempt])).toEqual([[20, 1], [100, 1], [100, 2], [300, 1], [1000, 1]]);
    const committed = await store.list(jobId, true);
    expect(committed.map((c) => c.step)).toEqual([20, 100, 300]);
    expect(committed.every((c) => c.state === COMMITTED)).toBe(true);
    expect(await store.list(newJob())).toEqual([]);
  });

  it('latest committed ignores WRITING and ABANDONED ones at higher steps', async () => {
    const jobId = newJob();
    expect(await store.latestCommitted(jobId)).toBeUndefined();
    await complete(jobId, 100);
    await complete(jobId, 200);
    await store.begin({ jobId, attempt: 1, step: 300, path: '/c', shardCount: 2 });
    const abandoned = await store.begin({ jobId, attempt: 1, step: 400, path: '/c', shardCount: 1 });
    await store.abandon(abandoned.checkpoint.id, 'attempt failed');
    const latest = await store.latestCommitted(jobId);
    expect(latest).toMatchObject({ step: 200, state: COMMITTED });
  });

  it('latest committed breaks a tie on step by the newest commit', async () => {
    const jobId = newJob();
    const t = Date.parse('2025-05-01T00:00:00Z');
    await complete(jobId, 500, 2, 1, new Date(t));
    await complete(jobId, 500, 1, 1, new Date(t + 5000));
    await complete(jobId, 400, 3, 1, new Date(t + 9000));
    expect(await store.latestCommitted(jobId)).toMatchObject({ step: 500, attempt: 1 });
  });

  it('latest committed looks past a page of uncommitted checkpoints', async () => {
    const jobId = newJob();
    await complete(jobId, 1);
    for (let step = 2; step < 80; step++) await store.begin({ jobId, attempt: 1, step, path: '/c', shardCount: 1 });
    expect(await store.latestCommitted(jobId)).toMatchObject({ step: 1 });
  });
});

describe('last commit times', () => {
  it('tracks each job\'s newest commit for the scheduler in one read', async () => {
    const a = newJob();
    const b = newJob();
    await complete(a, 10, 1, 2, new Date(1_000));
    await complete(a, 20, 1, 2, new Date(5_000));
    await complete(b, 10, 1, 2, new Date(3_000));
    const times = await store.lastCommitTimes([a, b, 'j-none']);
    expect(times.get(a)).toBe(5_000);
    expect(times.get(b)).toBe(3_000);
    expect(times.has('j-none')).toBe(false);
  });
});

