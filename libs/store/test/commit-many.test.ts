// JobStore.commitMany against a real redis-server: several jobs' changes in one round trip,
// each still its own compare-and-set script. One that loses its race (a GPU another commit of
// the same batch took, a stale revision) or is not a valid transition fails alone, with nothing
// of it applied; the others apply with their events. A failed replica wait fails the batch.
// Many commits share a script call: a batch over several calls keeps each commit's outcome in
// its place, and a commit whose script raises an error fails alone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { Job, JobSpec, JobState } from '@gantry/proto';
import { startRedis, type Server } from '../../../test/harness/infra.js';
import { InvalidTransitionError, JobStore, type JobCommit } from '../src/jobs.js';
import { AllocationConflictError, FencedError, StaleWriteError } from '../src/errors.js';
import { REPLICA_WAIT, ReplicationError } from '../src/durability.js';
import { allocationOwner, keys } from '../src/keys.js';

let server: Server;
let redis: Redis;
let jobs: JobStore;
let seq = 0;
const EPOCH = 5;

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
  jobs = new JobStore(redis);
  await redis.set(keys.leaderEpoch, String(EPOCH));
}, 60_000);

afterAll(async () => {
  await redis?.quit();
  await server?.stop();
});

async function pending() {
  const n = ++seq;
  const spec = JobSpec.create({ nodes: 1, gpusPerNode: 1, command: ['true'], tenant: 't' });
  const { job } = await jobs.submit(Job.create({ id: `jm-${n}`, spec }), '');
  return (await jobs.get(job.id))!;
}

async function readyNode(): Promise<string> {
  const node = `node-m-${++seq}`;
  await redis.hset(keys.node(node), 'state', 'READY');
  return node;
}

function placement(rec: Awaited<ReturnType<typeof pending>>, node: string, gpu: number, epoch = EPOCH): JobCommit {
  const next = Job.create({ ...rec.job, state: JobState.JOB_STATE_SCHEDULED, attempt: 1 });
  return { prev: rec, next, reason: `placed on ${node}`, epoch, claims: [{ node, gpu, owner: allocationOwner(rec.job.id, 1, 0) }] };
}

describe('JobStore.commitMany', () => {
  it('applies each commit on its own: the ones that lose a race or are invalid fail alone, with nothing of them written', async () => {
    const node = await readyNode();
    const [a, b, c, d] = [await pending(), await pending(), await pending(), await pending()];
    const outbox = await redis.xlen(keys.outbox);
    const results = await jobs.commitMany([
      placement(a, node, 0),
      placement(b, node, 0), // the GPU a's commit, ahead of it in the same batch, took
      { ...placement(c, node, 2), prev: { ...c, rev: c.rev + 7 } }, // stale revision
      { prev: d, next: Job.create({ ...d.job, state: JobState.JOB_STATE_SUCCEEDED }), reason: 'no', epoch: EPOCH }, // PENDING -> SUCCEEDED
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'rejected']);
    const outcome = (i: number) => {
      const r = results[i]!;
      return r.status === 'fulfilled' ? r.value : r.reason;
    };
    expect(outcome(0).rev).toBe(a.rev + 1);
    expect(outcome(1)).toBeInstanceOf(AllocationConflictError);
    expect(outcome(2)).toBeInstanceOf(StaleWriteError);
    expect(outcome(3)).toBeInstanceOf(InvalidTransitionError);

    expect((await jobs.get(a.job.id))!.job.state).toBe(JobState.JOB_STATE_SCHEDULED);
    for (const r of [b, c, d]) expect(await jobs.get(r.job.id)).toEqual(r);
    expect(await redis.hgetall(keys.nodeAlloc(node))).toEqual({ 0: allocationOwner(a.job.id, 1, 0) });
    // Indexed in its new state by its creation time, as the submission indexed it.
    expect(Number(await redis.zscore(keys.jobsInState('SCHEDULED'), a.job.id))).toBe(Number(await redis.zscore(keys.jobsAll, a.job.id)));
    expect(Number(await redis.zscore(keys.jobsOfTenantInState('t', 'SCHEDULED'), a.job.id))).toBe(a.job.createdAt!.getTime());
    expect(await redis.zscore(keys.jobsInState('PENDING'), b.job.id)).not.toBeNull();
    // One event: a's transition.
    expect(await redis.xlen(keys.outbox)).toBe(outbox + 1);
  });

  it('claims a rank\'s GPUs together: one GPU held by another owner refuses the whole placement', async () => {
    const [n1, n2] = [await readyNode(), await readyNode()];
    const [a, b] = [await pending(), await pending()];
    await redis.hset(keys.nodeAlloc(n2), '2', 'someone:1:0');
    const gang = (rec: typeof a, node: string) => {
      const c = placement(rec, n1, 0);
      const owner = (rank: number) => allocationOwner(rec.job.id, 1, rank);
      return { ...c, claims: [0, 1, 2, 3].flatMap((g) => [{ node: n1, gpu: g, owner: owner(0) }, { node, gpu: g, owner: owner(1) }]) };
    };
    const message = (r: PromiseSettledResult<unknown> | undefined) => (r?.status === 'rejected' ? (r.reason as Error).message : '');
    const [refused] = await jobs.commitMany([gang(a, n2)]);
    expect(message(refused)).toBe(`allocation conflict: ${keys.nodeAlloc(n2)} gpu 2 held by someone:1:0`);
    expect(await redis.hlen(keys.nodeAlloc(n1))).toBe(0);
    expect(await redis.hgetall(keys.nodeAlloc(n2))).toEqual({ 2: 'someone:1:0' });
    // A node that is not READY refuses it too.
    const n4 = await readyNode();
    await redis.hset(keys.node(n4), 'state', 'DRAINING');
    const [draining] = await jobs.commitMany([gang(b, n4)]);
    expect(message(draining)).toBe(`allocation conflict: ${keys.node(n4)} is DRAINING, not READY`);
    expect(await redis.hlen(keys.nodeAlloc(n1))).toBe(0);
    const n3 = await readyNode();
    const [placed] = await jobs.commitMany([gang(b, n3)]);
    expect(placed!.status).toBe('fulfilled');
    expect(await redis.hgetall(keys.nodeAlloc(n3))).toEqual({ 0: allocationOwner(b.job.id, 1, 1), 1: allocationOwner(b.job.id, 1, 1), 2: allocationOwner(b.job.id, 1, 1), 3: allocationOwner(b.job.id, 1, 1) });
    expect(Object.keys(await redis.hgetall(keys.nodeAlloc(n1))).sort()).toEqual(['0', '1', '2', '3']);
  });

  it('is fenced as a whole when the epoch is not the leader\'s', async () => {
    const node = await readyNode();
    const [a, b] = [await pending(), await pending()];
    const results = await jobs.commitMany([placement(a, node, 0, EPOCH - 1), placement(b, node, 1, EPOCH - 1)]);
    for (const r of results) expect(r.status === 'rejected' ? r.reason : r.value).toBeInstanceOf(FencedError);
    expect(await redis.hlen(keys.nodeAlloc(node))).toBe(0);
  });

  it('rejects the whole batch when the replicas it must wait for do not confirm it', async () => {
    const node = await readyNode();
    const a = await pending();
    const waiting = new Redis(server.url, { maxRetriesPerRequest: 1 });
    try {
      // This server has no replica: a wait for one falls short.
      (waiting as unknown as Record<symbol, unknown>)[REPLICA_WAIT] = { replicas: 1, timeoutMs: 50 };
      await expect(new JobStore(waiting).commitMany([placement(a, node, 0)])).rejects.toBeInstanceOf(ReplicationError);
    } finally {
      waiting.disconnect();
    }
  });

  it('tells the relay about each write that added an event, and only those', async () => {
    let told = 0;
    const notifying = new JobStore(redis, { onEvent: () => { told++; } });
    const node = await readyNode();
    const spec = JobSpec.create({ nodes: 1, gpusPerNode: 1, command: ['true'], tenant: 't' });
    await notifying.submit(Job.create({ id: `jm-told-${++seq}`, spec }), '');
    expect(told).toBe(1);
    const [a, b] = [await pending(), await pending()];
    await notifying.commitMany([placement(a, node, 0), placement(b, node, 0)]); // b loses the GPU
    expect(told).toBe(2);
    await notifying.commitMany([placement(b, node, 0)]); // loses again: nothing written
    expect(told).toBe(2);
    const rec = (await jobs.get(a.job.id))!;
    await notifying.commit({ prev: rec, next: rec.job, reason: 'same state', epoch: EPOCH }); // no transition, no event
    expect(told).toBe(2);
  });

  it('answers an empty batch with no outcomes', async () => {
    expect(await jobs.commitMany([])).toEqual([]);
  });

  it('keeps each outcome in its place over several script calls, and fails alone a commit that raises an error', async () => {
    const node = await readyNode();
    const broken = await readyNode();
    // Not a hash: the claim's HGET raises WRONGTYPE inside the script.
    await redis.set(keys.nodeAlloc(broken), 'x');
    const recs: Awaited<ReturnType<typeof pending>>[] = [];
    for (let i = 0; i < 75; i++) recs.push(await pending());
    const outbox = await redis.xlen(keys.outbox);
    const commits = recs.map((rec, i) => {
      if (i === 40) return placement(rec, broken, 0);
      if (i % 10 === 3) return { ...placement(rec, node, i), prev: { ...rec, rev: rec.rev + 1 } }; // stale
      return placement(rec, node, i % 10 === 7 ? i - 1 : i); // i - 1: the GPU the commit before took
    });
    const results = await jobs.commitMany(commits);
    results.forEach((r, i) => {
      const reason = r.status === 'rejected' ? r.reason as Error : undefined;
      if (i === 40) expect(reason?.message).toMatch(/WRONGTYPE/);
      else if (i % 10 === 3) expect(reason).toBeInstanceOf(StaleWriteError);
      else if (i % 10 === 7) expect(reason).toBeInstanceOf(AllocationConflictError);
      else expect(r.status === 'fulfilled' && r.value.job.id).toBe(recs[i]!.job.id);
    });
    const placed = recs.filter((_, i) => i !== 40 && i % 10 !== 3 && i % 10 !== 7);
    expect(await redis.xlen(keys.outbox)).toBe(outbox + placed.length);
    expect(await redis.hgetall(keys.nodeAlloc(node))).toEqual(Object.fromEntries(recs.flatMap((rec, i) => (placed.includes(rec) ? [[String(i), allocationOwner(rec.job.id, 1, 0)]] : []))));
    for (const [i, rec] of recs.entries()) {
      const now = (await jobs.get(rec.job.id))!;
      if (placed.includes(rec)) expect([now.job.state, now.rev]).toEqual([JobState.JOB_STATE_SCHEDULED, rec.rev + 1]);
      else expect(now, `job ${i}`).toEqual(rec);
    }
  });
});
