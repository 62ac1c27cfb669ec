// Listing jobs against a real redis-server: the per-state and per-tenant index sets kept by the
// submit and commit scripts are what a page reads, so a page of one tenant's jobs, or of one
// state, never reads other jobs, and paging returns every matching job exactly once, newest
// first, even when many were created in the same millisecond.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Job, JobSpec, JobState } from '@gantry/proto';
import { JobStore } from '../src/jobs.js';
import { keys } from '../src/keys.js';
import { useRedis } from './redis-fixture.js';

const redis = useRedis();
let seq = 0;

interface Made { id: string; tenant: string; state: JobState; created: number }

async function submit(store: JobStore, tenant: string, created: number, prefix: string): Promise<Made> {
  const id = `${prefix}-${String(++seq).padStart(5, '0')}`;
  await store.submit(Job.create({ id, spec: JobSpec.create({ nodes: 1, gpusPerNode: 1, command: ['true'], tenant }), createdAt: new Date(created) }), '');
  return { id, tenant, state: JobState.JOB_STATE_PENDING, created };
}

/** PENDING -> CANCELLED, a user-intent transition any replica may commit (no epoch). */
async function cancel(store: JobStore, m: Made): Promise<void> {
  const prev = (await store.get(m.id))!;
  await store.commit({ prev, next: Job.create({ ...prev.job, state: JobState.JOB_STATE_CANCELLED }), reason: 'test' });
  m.state = JobState.JOB_STATE_CANCELLED;
}

async function pageAll(store: JobStore, q: { tenant?: string; states?: JobState[] }, pageSize: number): Promise<string[]> {
  const ids: string[] = [];
  let token = '';
  for (let pages = 0; ; pages++) {
    expect(pages).toBeLessThan(10_000);
    const page = await store.list({ ...q, pageSize, pageToken: token });
    expect(page.jobs.length).toBeLessThanOrEqual(pageSize);
    ids.push(...page.jobs.map((j) => j.id));
    if (!page.nextPageToken) return ids;
    token = page.nextPageToken;
  }
}

/** What a list must return: matching jobs, newest first, ties by id descending. */
function expected(made: Made[], q: { tenant?: string; states?: JobState[] }): string[] {
  return made
    .filter((m) => (!q.tenant || m.tenant === q.tenant) && (!q.states || q.states.includes(m.state)))
    .sort((a, b) => b.created - a.created || (a.id < b.id ? 1 : -1))
    .map((m) => m.id);
}

describe('JobStore.list', () => {
  it('pages one tenant, one state or both from the index sets, newest first, each job once', async () => {
    const store = new JobStore(redis());
    await redis().flushall();
    const made: Made[] = [];
    // 150 jobs, 60 of them created in the same millisecond, in three tenants.
    for (let i = 0; i < 150; i++) made.push(await submit(store, ['alice', 'bob', 'carol'][i % 3]!, i < 60 ? 1_000 : 1_000 + i, 'a'));
    for (const m of made.filter((_, i) => i % 4 === 0)) await cancel(store, m);
    for (const q of [
      {}, { tenant: 'alice' }, { states: [JobState.JOB_STATE_CANCELLED] },
      { tenant: 'bob', states: [JobState.JOB_STATE_PENDING] },
      { tenant: 'carol', states: [JobState.JOB_STATE_PENDING, JobState.JOB_STATE_CANCELLED] },
      { tenant: 'nobody' },
    ]) {
      for (const size of [1, 7, 100, 1000]) expect(await pageAll(store, q, size), `${JSON.stringify(q)} by ${size}`).toEqual(expected(made, q));
    }
    // The tenant sets follow transitions: a cancelled job leaves the tenant's PENDING set.
    const alicePending = await redis().zrange(keys.jobsOfTenantInState('alice', 'PENDING'), 0, -1);
    expect(alicePending.sort()).toEqual(made.filter((m) => m.tenant === 'alice' && m.state === JobState.JOB_STATE_PENDING).map((m) => m.id).sort());
  });

  it('matches a model over random tenants, creation times, transitions and page sizes', async () => {
    const store = new JobStore(redis());
    await fc.assert(fc.asyncProperty(
      fc.array(fc.record({ tenant: fc.constantFrom('t1', 't2', 't3'), created: fc.integer({ min: 1, max: 20 }), cancel: fc.boolean() }), { maxLength: 40 }),
      fc.integer({ min: 1, max: 12 }),
      fc.constantFrom<{ tenant?: string; states?: JobState[] }>({}, { tenant: 't1' }, { states: [JobState.JOB_STATE_PENDING] }, { tenant: 't2', states: [JobState.JOB_STATE_CANCELLED] }),
      async (specs, size, q) => {
        await redis().flushall();
        const made: Made[] = [];
        for (const s of specs) {
          const m = await submit(store, s.tenant, s.created, 'p');
          if (s.cancel) await cancel(store, m);
          made.push(m);
        }
        expect(await pageAll(store, q, size)).toEqual(expected(made, q));
      },
    ), { numRuns: 40 });
  });

  it('indexes jobs written before the tenant sets existed, once, and lists them by tenant', async () => {
    const store = new JobStore(redis());
    await redis().flushall();
    const made: Made[] = [];
    for (let i = 0; i < 30; i++) made.push(await submit(store, i % 2 ? 'old-a' : 'old-b', 5_000 + i, 'o'));
    for (const m of made.slice(0, 10)) await cancel(store, m);
    // What a store of the previous version left: no tenant sets, no index version.
    const tenantKeys = await redis().keys('gantry:jobs:tenant:*');
    expect(tenantKeys.length).toBeGreaterThan(0);
    await redis().del(...tenantKeys);
    expect(await store.list({ tenant: 'old-a', pageSize: 100 })).toEqual({ jobs: [], nextPageToken: '' });
    expect(await store.ensureIndexes()).toBe(30);
    expect(await store.ensureIndexes()).toBe(0); // once
    for (const q of [{ tenant: 'old-a' }, { tenant: 'old-b', states: [JobState.JOB_STATE_CANCELLED] }]) {
      expect(await pageAll(store, q, 4)).toEqual(expected(made, q));
    }
  });
});
