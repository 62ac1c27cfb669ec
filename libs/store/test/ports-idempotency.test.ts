// Rendezvous port claims and idempotency keys against a real redis-server: the Lua scripts
// are the behaviour under test. A port is claimed in the same commit as the GPUs and freed in
// the same scripts that free node rank 0's GPUs (a rank's exit, reconciliation), so no crash
// can leave one held or hand it to two attempts; a key re-used with another spec is refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { Job, JobSpec, JobState } from '@gantry/proto';
import { startRedis, type Server } from '../../../test/harness/infra.js';
import { JobStore, specHash } from '../src/jobs.js';
import { NodeStore } from '../src/nodes.js';
import { AllocationConflictError, IdempotencyConflictError } from '../src/errors.js';
import { allocationOwner, keys } from '../src/keys.js';

let server: Server;
let redis: Redis;
let jobs: JobStore;
let nodes: NodeStore;
let seq = 0;
const EPOCH = 3;

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
  jobs = new JobStore(redis);
  nodes = new NodeStore(redis);
  await redis.set(keys.leaderEpoch, String(EPOCH));
}, 60_000);

afterAll(async () => {
  await redis?.quit();
  await server?.stop();
});

/** A fresh READY node and a PENDING job, per test. */
async function fixture() {
  const n = ++seq;
  const node = `node-${n}`;
  await redis.hset(keys.node(node), 'state', 'READY');
  const spec = JobSpec.create({ nodes: 1, gpusPerNode: 1, command: ['true'], tenant: 't' });
  const { job } = await jobs.submit(Job.create({ id: `j-${n}`, spec }), `key-${n}`);
  return { node, job, rec: (await jobs.get(job.id))! };
}

function scheduled(job: Job): Job {
  return Job.create({ ...job, state: JobState.JOB_STATE_SCHEDULED, attempt: 1 });
}

describe('rendezvous port claims', () => {
  it('are written with the placement, and refused to a second owner with nothing of that commit applied', async () => {
    const a = await fixture();
    const owner = allocationOwner(a.job.id, 1, 0);
    await jobs.commit({ prev: a.rec, next: scheduled(a.job), reason: 'placed', epoch: EPOCH, claims: [{ node: a.node, gpu: 0, owner }], portClaims: [{ node: a.node, port: 29500, owner }] });
    expect(await nodes.ports(a.node)).toEqual(new Map([[29500, owner]]));

    const b = await fixture();
    const other = allocationOwner(b.job.id, 1, 0);
    const err = await jobs.commit({ prev: b.rec, next: scheduled(b.job), reason: 'placed', epoch: EPOCH, claims: [{ node: a.node, gpu: 1, owner: other }], portClaims: [{ node: a.node, port: 29500, owner: other }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AllocationConflictError);
    expect((err as Error).message).toBe(`allocation conflict: ${keys.nodePorts(a.node)} port 29500 held by ${owner}`);
    expect(await redis.hget(keys.nodeAlloc(a.node), '1')).toBeNull();
    expect((await jobs.get(b.job.id))!.job.state).toBe(JobState.JOB_STATE_PENDING);
  });

  it('are freed with node rank 0\'s GPUs when its exit is committed', async () => {
    const a = await fixture();
    const owner = allocationOwner(a.job.id, 1, 0);
    const placed = await jobs.commit({ prev: a.rec, next: scheduled(a.job), reason: 'placed', epoch: EPOCH, claims: [{ node: a.node, gpu: 0, owner }], portClaims: [{ node: a.node, port: 29501, owner }] });
    // Another job's port on the same node stays.
    await redis.hset(keys.nodePorts(a.node), '29502', 'j-other:1:0');
    await jobs.commit({ prev: placed, next: Job.create({ ...placed.job, state: JobState.JOB_STATE_SUCCEEDED }), reason: 'done', epoch: EPOCH, releases: [{ node: a.node, gpu: 0, owner }] });
    expect(await nodes.ports(a.node)).toEqual(new Map([[29502, 'j-other:1:0']]));
    expect(await redis.hgetall(keys.nodeAlloc(a.node))).toEqual({});
  });

  it('are freed by the reconciliation release of stale GPUs, and not by a fenced one', async () => {
    const a = await fixture();
    const owner = allocationOwner(a.job.id, 1, 0);
    await jobs.commit({ prev: a.rec, next: scheduled(a.job), reason: 'placed', epoch: EPOCH, claims: [{ node: a.node, gpu: 0, owner }, { node: a.node, gpu: 1, owner }], portClaims: [{ node: a.node, port: 29503, owner }] });
    await expect(nodes.releaseGpus([{ node: a.node, gpu: 0, owner }], EPOCH - 1)).rejects.toThrow(/fencing epoch 2/);
    expect((await nodes.ports(a.node)).get(29503)).toBe(owner);
    expect(await nodes.releaseGpus([{ node: a.node, gpu: 0, owner }, { node: a.node, gpu: 1, owner }], EPOCH)).toBe(2);
    expect(await nodes.ports(a.node)).toEqual(new Map());
  });
});

describe('idempotency keys', () => {
  it('give back the job for the same spec, and refuse another spec naming the job', async () => {
    const spec = JobSpec.create({ name: 'a', nodes: 1, gpusPerNode: 8, command: ['python', 'train.py'], env: { A: '1', B: '2' } });
    const first = await jobs.submit(Job.create({ id: 'j-idem-1', spec }), 'idem-1');
    expect(first.created).toBe(true);
    // The same spec with its map built in another order is the same spec.
    const again = await jobs.submit(Job.create({ id: 'j-idem-2', spec: { ...spec, env: { B: '2', A: '1' } } }), 'idem-1');
    expect(again).toMatchObject({ created: false, job: { id: 'j-idem-1' } });
    const err = await jobs.submit(Job.create({ id: 'j-idem-3', spec: { ...spec, nodes: 2 } }), 'idem-1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IdempotencyConflictError);
    expect(err).toMatchObject({ code: 6, jobId: 'j-idem-1' });
    expect((err as IdempotencyConflictError).details).toContain('already created job j-idem-1 with a different spec');
    expect(await jobs.get('j-idem-3')).toBeUndefined();
  });

  it('still name their job when written before specs were hashed', async () => {
    const spec = JobSpec.create({ nodes: 1, gpusPerNode: 8, command: ['true'] });
    await jobs.submit(Job.create({ id: 'j-old-1', spec }), 'old-1');
    await redis.set(keys.idempotency('', 'old-1'), 'j-old-1');
    expect(await jobs.submit(Job.create({ id: 'j-old-2', spec: { ...spec, nodes: 3 } }), 'old-1')).toMatchObject({ created: false, job: { id: 'j-old-1' } });
    expect(specHash(spec)).toMatch(/^[0-9a-f]{32}$/);
  });
});
