// The leader's parsed copy of queued and placed jobs, against a real redis-server: a pass
// fetches only jobs that are new to it or were written since the last pass (the submit and
// commit scripts append to the change stream in the same step), never serves a stale job,
// and reloads everything when the capped stream can no longer vouch for its copy.
import { describe, expect, it } from 'vitest';
import { Job, JobSpec, JobState } from '@gantry/proto';
import { JobStore, keys } from '@gantry/store';
import { JobCache } from '../../src/jobs/job-cache.js';
import { useRedis } from '../../../../libs/store/test/redis-fixture.js';

const redis = useRedis();
const STATES = [JobState.JOB_STATE_PENDING, JobState.JOB_STATE_CANCELLED] as const;

async function submit(store: JobStore, id: string, createdAt?: Date): Promise<void> {
  await store.submit(Job.create({ id, spec: JobSpec.create({ nodes: 1, gpusPerNode: 1, command: ['true'], tenant: 't' }), ...(createdAt ? { createdAt } : {}) }), '');
}

async function move(store: JobStore, id: string, state: JobState): Promise<void> {
  const prev = (await store.get(id))!;
  await store.commit({ prev, next: Job.create({ ...prev.job, state }), reason: 'test' });
}

const cancel = (store: JobStore, id: string) => move(store, id, JobState.JOB_STATE_CANCELLED);

/** The real store, counting reads of whole state indexes. */
class CountingStore extends JobStore {
  indexReads = 0;
  override async indexOfState(state: JobState) {
    this.indexReads++;
    return super.indexOfState(state);
  }
}

describe('JobCache', () => {
  it('fetches only new and changed jobs, and serves each at its latest revision', async () => {
    await redis().flushall();
    const store = new JobStore(redis());
    const cache = new JobCache(store);
    for (let i = 0; i < 20; i++) await submit(store, `j${i}`);
    let [pending, cancelled] = await cache.inStates(STATES);
    expect(pending.map((r) => r.job.id).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `j${i}`).sort());
    expect(cancelled).toEqual([]);
    expect(cache.lastFetched).toBe(20);
    // Nothing written: nothing fetched.
    await cache.inStates(STATES);
    expect(cache.lastFetched).toBe(0);
    // Two cancelled and one new: exactly those three are fetched, at their new revision.
    await cancel(store, 'j3');
    await cancel(store, 'j7');
    await submit(store, 'j20');
    [pending, cancelled] = await cache.inStates(STATES);
    expect(cache.lastFetched).toBe(3);
    expect(cancelled.map((r) => [r.job.id, r.rev, r.job.state])).toEqual([['j3', 2, JobState.JOB_STATE_CANCELLED], ['j7', 2, JobState.JOB_STATE_CANCELLED]]);
    expect(pending).toHaveLength(19);
    // A cached job cannot be changed in place by a caller.
    expect(() => { (pending[0]!.job as { state: JobState }).state = JobState.JOB_STATE_FAILED; }).toThrow(TypeError);
  });

  it('reloads everything when entries after its cursor were trimmed from the change stream', async () => {
    await redis().flushall();
    const store = new JobStore(redis());
    const cache = new JobCache(store);
    for (let i = 0; i < 5; i++) await submit(store, `k${i}`);
    await cache.inStates(STATES);
    await cancel(store, 'k1');
    // The stream trimmed past the cache's cursor: the change to k1 is gone from it.
    await redis().xtrim(keys.jobChanges, 'MAXLEN', 0);
    await submit(store, 'k5');
    const [pending, cancelled] = await cache.inStates(STATES);
    expect(cache.lastFetched).toBe(6);
    expect(cancelled.map((r) => r.job.id)).toEqual(['k1']);
    expect(pending.map((r) => r.job.id).sort()).toEqual(['k0', 'k2', 'k3', 'k4', 'k5']);
  });

  it('reads by id with one revision check, fetching only jobs whose revision moved', async () => {
    await redis().flushall();
    const store = new JobStore(redis());
    const cache = new JobCache(store);
    for (let i = 0; i < 4; i++) await submit(store, `h${i}`);
    expect((await cache.getMany(['h0', 'h1', 'nope', 'h0'])).map((r) => r.job.id)).toEqual(['h0', 'h1']);
    expect(cache.lastFetched).toBe(2);
    expect((await cache.getMany(['h0', 'h1'])).map((r) => r.rev)).toEqual([1, 1]);
    expect(cache.lastFetched).toBe(0);
    await cancel(store, 'h1');
    const [h0, h1] = await cache.getMany(['h0', 'h1']);
    expect(cache.lastFetched).toBe(1);
    expect([h0!.rev, h1!.rev, h1!.job.state]).toEqual([1, 2, JobState.JOB_STATE_CANCELLED]);
    // A job deleted from Redis is not served from the copy.
    await redis().del(keys.job('h0'));
    expect((await cache.getMany(['h0', 'h1'])).map((r) => r.job.id)).toEqual(['h1']);
  });

  it('a read by id keeps the jobs it vouched for while a pass drops them from the copy, and never goes back to an older revision', async () => {
    await redis().flushall();
    // The real store; only the moment its fetch answers is held, so that a pass runs in between.
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => (release = r));
    class HeldStore extends JobStore {
      hold = false;
      override async getMany(ids: string[]) {
        const recs = await super.getMany(ids);
        if (this.hold) await held;
        return recs;
      }
    }
    const store = new HeldStore(redis());
    const cache = new JobCache(store);
    await submit(store, 'p0');
    await cache.inStates(STATES);
    await submit(store, 'p1');
    store.hold = true;
    // p0 is vouched for from the copy; p1 is fetched, and the fetch is held.
    const read = cache.getMany(['p0', 'p1']);
    await new Promise((r) => setTimeout(r, 50));
    // Meanwhile both are cancelled: a pass that wants only pending jobs drops p0 from the copy,
    // and another read fetches p1's new revision.
    store.hold = false;
    await cancel(store, 'p0');
    await cancel(store, 'p1');
    await cache.inStates([JobState.JOB_STATE_PENDING]);
    expect((await cache.getMany(['p1'])).map((r) => r.rev)).toEqual([2]);
    release();
    // The held read answers with both jobs (p0 as it was when its revision was read): a
    // heartbeat must not take a job it asked for as unknown (it would stop the job's rank).
    expect((await read).map((r) => [r.job.id, r.rev])).toEqual([['p0', 1], ['p1', 2]]);
    // Its older fetch of p1 did not replace the newer revision in the copy.
    expect((await cache.getMany(['p1'])).map((r) => [r.rev, r.job.state])).toEqual([[2, JobState.JOB_STATE_CANCELLED]]);
    expect(cache.lastFetched).toBe(0);
  });

  it('starts over after reset (a new leadership)', async () => {
    await redis().flushall();
    const store = new JobStore(redis());
    const cache = new JobCache(store);
    await submit(store, 'r0');
    await cache.inStates(STATES);
    cache.reset();
    await cache.inStates(STATES);
    expect(cache.lastFetched).toBe(1);
  });

  it('keeps each state\'s ids in the index\'s order through moves, reading each index only once', async () => {
    await redis().flushall();
    const store = new CountingStore(redis());
    const cache = new JobCache(store);
    const states = [JobState.JOB_STATE_PENDING, JobState.JOB_STATE_FAILED] as const;
    // Creation times out of submission order, several equal (the index orders those by id).
    const t0 = Date.parse('2026-12-01T00:00:00Z');
    const ids = Array.from({ length: 40 }, (_, i) => `m${(i * 7) % 40}`);
    for (const [i, id] of ids.entries()) await submit(store, id, new Date(t0 + ((i * 13) % 9) * 1000));
    const check = async () => {
      const got = await cache.inStates(states);
      for (const [k, s] of states.entries()) expect(got[k]!.map((r) => r.job.id)).toEqual(await store.idsInState(s));
      for (const [k, s] of states.entries()) expect(got[k]!.every((r) => r.job.state === s)).toBe(true);
    };
    await check();
    expect(store.indexReads).toBe(2);
    // A random walk: PENDING -> FAILED -> PENDING (an operator's retry) ..., some cancelled for good.
    let seed = 7;
    const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    for (let round = 0; round < 12; round++) {
      for (let j = 0; j < 1 + rand(6); j++) {
        const id = ids[rand(ids.length)]!;
        const { job } = (await store.get(id))!;
        if (job.state === JobState.JOB_STATE_PENDING) await move(store, id, rand(5) === 0 ? JobState.JOB_STATE_CANCELLED : JobState.JOB_STATE_FAILED);
        else if (job.state === JobState.JOB_STATE_FAILED) await move(store, id, JobState.JOB_STATE_PENDING);
      }
      if (round % 4 === 0) await submit(store, `n${round}`, new Date(t0 + rand(9) * 1000));
      await check();
    }
    expect(store.indexReads).toBe(2);
  });

  it('applies changes one read at a time when the loop and the health monitor read together', async () => {
    await redis().flushall();
    // The real store; only the moment the first read learns the changed jobs' states is held.
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => (release = r));
    class HeldStore extends JobStore {
      hold = false;
      override async indexEntries(ids: readonly string[]) {
        const entries = await super.indexEntries(ids);
        if (this.hold) {
          this.hold = false;
          await held;
        }
        return entries;
      }
    }
    const store = new HeldStore(redis());
    const cache = new JobCache(store);
    const states = [JobState.JOB_STATE_PENDING, JobState.JOB_STATE_FAILED] as const;
    await submit(store, 'x');
    await cache.inStates(states);
    // The first read sees x FAILED and is held; x is retried (PENDING again) and a second read starts.
    await move(store, 'x', JobState.JOB_STATE_FAILED);
    store.hold = true;
    const first = cache.inStates(states);
    await new Promise((r) => setTimeout(r, 50));
    await move(store, 'x', JobState.JOB_STATE_PENDING);
    const second = cache.inStates([JobState.JOB_STATE_FAILED]);
    await new Promise((r) => setTimeout(r, 50));
    release();
    await Promise.all([first, second]);
    // Applied in the order read, the copy ends as the indexes are: x pending.
    const [pending, failed] = await cache.inStates(states);
    expect(pending.map((r) => [r.job.id, r.job.state])).toEqual([['x', JobState.JOB_STATE_PENDING]]);
    expect(failed).toEqual([]);
  });

  it('takes the records its own process committed instead of reading them back, unless someone wrote after', async () => {
    await redis().flushall();
    const reader = new JobStore(redis());
    const cache = new JobCache(reader);
    const writer = new JobStore(redis(), { onCommitted: (rec) => cache.committed(rec) });
    const other = new JobStore(redis()); // another writer, whose commits the copy does not see
    const states = [JobState.JOB_STATE_PENDING, JobState.JOB_STATE_FAILED] as const;
    for (let i = 0; i < 4; i++) await submit(writer, `w${i}`);
    await cache.inStates(states);
    const fail = async (store: JobStore, id: string) => {
      const prev = (await reader.get(id))!;
      await store.commit({ prev, next: Job.create({ ...prev.job, state: JobState.JOB_STATE_FAILED }), reason: 'failed by writer' });
    };
    await fail(writer, 'w0');
    await fail(writer, 'w1');
    let [pending, failed] = await cache.inStates(states);
    expect(cache.lastFetched).toBe(0);
    expect(failed.map((r) => [r.job.id, r.rev, r.job.reason])).toEqual([['w0', 2, 'failed by writer'], ['w1', 2, 'failed by writer']]);
    // w2 committed here, then by the other writer: the copy's record is one revision behind and is read.
    await fail(writer, 'w2');
    const prev = (await reader.get('w2'))!;
    await other.commit({ prev, next: Job.create({ ...prev.job, reason: 'changed by other' }), reason: 'test' });
    [pending, failed] = await cache.inStates(states);
    expect(cache.lastFetched).toBe(1);
    expect(failed.find((r) => r.job.id === 'w2')).toMatchObject({ rev: 3, job: { reason: 'changed by other' } });
    expect(pending.map((r) => r.job.id)).toEqual(['w3']);
    // A read by id takes a committed record at the revision Redis holds.
    await fail(writer, 'w3');
    expect((await cache.getMany(['w3']))[0]).toMatchObject({ rev: 2, job: { state: JobState.JOB_STATE_FAILED } });
    expect(cache.lastFetched).toBe(0);
  });
});
