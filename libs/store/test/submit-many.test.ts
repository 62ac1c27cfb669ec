// JobStore.submitMany against a real redis-server: the batch is the submit script pipelined, so
// each item keeps submit()'s idempotency (per tenant and key, spec-checked) and atomicity, and
// one item's refusal leaves the others created.
import { describe, expect, it } from 'vitest';
import { Job, JobSpec, JobState } from '@gantry/proto';
import { useRedis } from './redis-fixture.js';
import { JobStore } from '../src/jobs.js';
import { IdempotencyConflictError } from '../src/errors.js';
import { keys } from '../src/keys.js';

const redis = useRedis();

const spec = (tenant: string, command: string) => JobSpec.create({ nodes: 1, gpusPerNode: 1, command: [command], tenant });
const item = (id: string, s: JobSpec, idempotencyKey: string) => ({ job: Job.create({ id, spec: s }), idempotencyKey });

describe('JobStore.submitMany', () => {
  it('creates each job with its key, answers a repeated key with the first job, and refuses a key re-used with another spec', async () => {
    let events = 0;
    const jobs = new JobStore(redis(), { onEvent: () => { events++; } });
    const outbox = await redis().xlen(keys.outbox);
    const batch = [
      item('m-1', spec('a', 'one'), 'k1'),
      item('m-2', spec('a', 'two'), ''),
      item('m-3', spec('a', 'one'), 'k1'), // same key and spec as m-1: m-1 back
      item('m-4', spec('a', 'other'), 'k1'), // same key, another spec
      item('m-5', spec('b', 'one'), 'k1'), // another tenant: its own key
    ];
    const out = await jobs.submitMany(batch);

    expect(out.map((o) => ('error' in o ? o.error.name : `${o.job.id}:${o.created}`))).toEqual(['m-1:true', 'm-2:true', 'm-1:false', 'IdempotencyConflictError', 'm-5:true']);
    expect((out[3] as { error: IdempotencyConflictError }).error.jobId).toBe('m-1');
    expect(events).toBe(1);
    expect(await redis().xlen(keys.outbox)).toBe(outbox + 3);
    for (const id of ['m-1', 'm-2', 'm-5']) {
      const rec = await jobs.get(id);
      expect(rec?.job.state).toBe(JobState.JOB_STATE_PENDING);
      expect(await redis().zscore(keys.jobsInState('PENDING'), id)).not.toBeNull();
    }
    for (const id of ['m-3', 'm-4']) expect(await jobs.get(id)).toBeUndefined();

    // The same batch again (a client's retry, with new ids as the scheduler would mint): the
    // keyed jobs come back and nothing is written; the unkeyed one is a new job, as with submit().
    const again = await jobs.submitMany(batch.map((b, i) => ({ ...b, job: { ...b.job, id: `r-${i + 1}` } })));
    expect(again.map((o) => ('error' in o ? o.error.name : `${o.job.id}:${o.created}`))).toEqual(['m-1:false', 'r-2:true', 'm-1:false', 'IdempotencyConflictError', 'm-5:false']);
    expect((again[0] as { job: Job }).job).toEqual((await jobs.get('m-1'))!.job);
    expect(await redis().xlen(keys.outbox)).toBe(outbox + 4);
    expect(events).toBe(2);
  });

  it('answers an empty batch without a call to Redis', async () => {
    expect(await new JobStore(redis()).submitMany([])).toEqual([]);
  });
});
