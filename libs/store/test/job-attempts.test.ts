// Bounded job records against a real redis-server: the commit that adds an attempt beyond the
// store's limit drops the oldest ones in the same write (Job.attemptsCompacted counts them),
// a commit refused as stale drops nothing, and the event published with each commit carries
// the record as written, so the events published before still hold the dropped attempts.
import { describe, expect, it } from 'vitest';
import { Attempt, Job, JobEvent, JobSpec, JobState, RankPlacement } from '@gantry/proto';
import { compactAttempts, DEFAULT_ATTEMPTS_KEPT, JobStore, type JobRecord } from '../src/jobs.js';
import { StaleWriteError } from '../src/errors.js';
import { keys } from '../src/keys.js';
import { useRedis } from './redis-fixture.js';

const redis = useRedis();
let seq = 0;

async function submitted(store: JobStore): Promise<JobRecord> {
  const id = `j-attempts-${++seq}`;
  await store.submit(Job.create({ id, spec: JobSpec.create({ nodes: 1, gpusPerNode: 1, command: ['true'], tenant: 't' }) }), '');
  return (await store.get(id))!;
}

/** PENDING -> SCHEDULED with attempt n+1 appended, as the scheduler's placement does. */
function placed(job: Job): Job {
  const number = job.attempt + 1;
  return Job.create({
    ...job, state: JobState.JOB_STATE_SCHEDULED, attempt: number,
    attempts: [...job.attempts, Attempt.create({ number, placement: [RankPlacement.create({ rank: 0, node: `node-${number}`, gpuIndices: [0] })] })],
  });
}

/** One failed attempt and its retry: SCHEDULED -> RECOVERING -> PENDING -> SCHEDULED (a new attempt). */
async function recoverOnce(store: JobStore, rec: JobRecord): Promise<JobRecord> {
  rec = await store.commit({ prev: rec, next: { ...rec.job, state: JobState.JOB_STATE_RECOVERING }, reason: 'failed' });
  rec = await store.commit({ prev: rec, next: { ...rec.job, state: JobState.JOB_STATE_PENDING, recoveries: rec.job.recoveries + 1 }, reason: 'retry' });
  return store.commit({ prev: rec, next: placed(rec.job), reason: 'placed' });
}

async function eventsOf(id: string): Promise<JobEvent[]> {
  const entries = await redis().xrangeBuffer(keys.outbox, '-', '+');
  return entries
    .map(([, f]) => JobEvent.decode(f[f.findIndex((b) => b.toString() === 'data') + 1]!))
    .filter((e) => e.jobId === id);
}

describe('attempt history compaction', () => {
  it('keeps the newest attempts in the record, counts the dropped ones, and numbers them so attempts[0] is attemptsCompacted + 1', async () => {
    const store = new JobStore(redis(), { attemptsKept: 3 });
    let rec = await submitted(store);
    rec = await store.commit({ prev: rec, next: placed(rec.job), reason: 'placed' });
    for (let i = 0; i < 6; i++) rec = await recoverOnce(store, rec);

    const stored = (await store.get(rec.job.id))!.job;
    expect(stored.attempt).toBe(7);
    expect(stored.attemptsCompacted).toBe(4);
    expect(stored.attempts.map((a) => a.number)).toEqual([5, 6, 7]);
    expect(stored.attempts[0]!.number).toBe(stored.attemptsCompacted + 1);
    expect(stored.attempts.at(-1)!.placement[0]!.node).toBe('node-7');
    expect(rec.job).toEqual(stored);
  });

  it('drops nothing in a commit refused as stale, and the record stays as the last good write left it', async () => {
    const store = new JobStore(redis(), { attemptsKept: 2 });
    let rec = await submitted(store);
    rec = await store.commit({ prev: rec, next: placed(rec.job), reason: 'placed' });
    rec = await recoverOnce(store, rec);
    const failed = await store.commit({ prev: rec, next: { ...rec.job, state: JobState.JOB_STATE_RECOVERING }, reason: 'failed' });
    const pending = await store.commit({ prev: failed, next: { ...failed.job, state: JobState.JOB_STATE_PENDING }, reason: 'retry' });
    // Another writer changes the job meanwhile; a placement from the older revision that
    // would add attempt 3 (and drop attempt 1) is refused, and nothing of it lands.
    const newer = await store.commit({ prev: pending, next: { ...pending.job, reason: 'still waiting' }, reason: 'noted' });
    await expect(store.commit({ prev: pending, next: placed(pending.job), reason: 'placed' })).rejects.toBeInstanceOf(StaleWriteError);
    const after = (await store.get(rec.job.id))!;
    expect(after.rev).toBe(newer.rev);
    expect(after.job.attempts.map((a) => a.number)).toEqual([1, 2]);
    expect(after.job.attemptsCompacted).toBe(0);
  });

  it('leaves every earlier attempt in the events published before the compaction', async () => {
    const store = new JobStore(redis(), { attemptsKept: 2 });
    let rec = await submitted(store);
    rec = await store.commit({ prev: rec, next: placed(rec.job), reason: 'placed' });
    for (let i = 0; i < 3; i++) rec = await recoverOnce(store, rec);
    const events = await eventsOf(rec.job.id);
    const seen = new Set(events.flatMap((e) => e.job!.attempts.map((a) => a.number)));
    expect([...seen].sort()).toEqual([1, 2, 3, 4]);
    const last = events.at(-1)!.job!;
    expect(last.attempts.map((a) => a.number)).toEqual([3, 4]);
    expect(last.attemptsCompacted).toBe(2);
  });

  it('keeps 16 attempts by default and refuses fewer than 2', () => {
    expect(DEFAULT_ATTEMPTS_KEPT).toBe(16);
    expect(() => new JobStore(redis(), { attemptsKept: 1 })).toThrow('attempts kept per job must be an integer of at least 2, got 1');
    expect(() => new JobStore(redis(), { attemptsKept: 2.5 })).toThrow(/got 2.5/);
    const job = Job.create({ attempt: 3, attempts: [3, 1, 2].map((number) => Attempt.create({ number })) });
    expect(compactAttempts(job, 3)).toBe(job);
    expect(compactAttempts(job, 2)).toMatchObject({ attemptsCompacted: 1, attempts: [{ number: 2 }, { number: 3 }] });
  });
});
