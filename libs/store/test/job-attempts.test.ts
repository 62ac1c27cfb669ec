// Bounded job records against a real redis-server: the commit that adds an attempt beyond the
// store's limit drops the oldest ones in the same write (Job.attemptsCompacted counts them),
// a commit refused as stale drops nothing, and the event published with each commit carries
// the record as written, so the events published before still hold the dropped attempts; the
// dropped attempts go, in that same write, to the job's capped attempts archive.
import { describe, expect, it } from 'vitest';
import { Attempt, Job, JobEvent, JobSpec, JobState, RankPlacement } from '@gantry/proto';
import { ATTEMPTS_ARCHIVE_CAP, DEFAULT_ATTEMPTS_KEPT, splitAttempts, JobStore, type JobRecord } from '../src/jobs.js';
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

  it('archives exactly the attempts each commit drops, in that commit, and nothing from a stale one', async () => {
    const store = new JobStore(redis(), { attemptsKept: 2 });
    let rec = await submitted(store);
    const id = rec.job.id;
    rec = await store.commit({ prev: rec, next: placed(rec.job), reason: 'placed' });
    rec = await recoverOnce(store, rec);
    expect(await redis().exists(keys.jobAttemptsArchive(id))).toBe(0);
    expect(await store.archivedAttempts([id])).toEqual(new Map());

    // Watch every write to the job's keys: the archive must change in the very command (the
    // script) that writes the compacted record, never in a write of its own.
    const monitor = await redis().monitor();
    const commands: { args: string[]; source: string }[] = [];
    monitor.on('monitor', (_time: string, args: string[], source: string) => { commands.push({ args, source }); });
    try {
      rec = await recoverOnce(store, rec);
      await redis().ping();
    } finally {
      monitor.disconnect();
    }
    // Each client command with the commands its script ran (MONITOR marks those 'lua').
    const groups: { args: string[]; source: string }[][] = [];
    for (const c of commands) {
      if (c.source === 'lua' && groups.length > 0) groups.at(-1)!.push(c);
      else groups.push([c]);
    }
    const archiveWriters = groups.filter((g) => g.some((c) => c.args.includes(keys.jobAttemptsArchive(id)) && !/^evalsha$/i.test(c.args[0]!)));
    expect(archiveWriters).toHaveLength(1);
    const [script] = archiveWriters;
    expect(script![0]!.args[0]!.toLowerCase()).toBe('evalsha');
    const inScript = script!.slice(1).map((c) => [c.args[0]!.toLowerCase(), c.args[1]]);
    expect(inScript).toContainEqual(['rpush', keys.jobAttemptsArchive(id)]);
    expect(inScript).toContainEqual(['ltrim', keys.jobAttemptsArchive(id)]);
    expect(script!.some((c) => c.args[0]!.toLowerCase() === 'hset' && c.args[1] === keys.job(id) && JSON.parse(c.args.at(-1)!).attemptsCompacted === 1)).toBe(true);

    const stored = (await store.get(id))!.job;
    expect(stored.attempts.map((a) => a.number)).toEqual([2, 3]);
    expect(stored.attemptsCompacted).toBe(1);
    const first = (await store.archivedAttempts([id])).get(id)!;
    expect(first).toEqual([placed(Job.create({ attempt: 0 })).attempts[0]]);

    // A stale commit that would drop attempt 2 archives nothing.
    const failed = await store.commit({ prev: rec, next: { ...rec.job, state: JobState.JOB_STATE_RECOVERING }, reason: 'failed' });
    const pending = await store.commit({ prev: failed, next: { ...failed.job, state: JobState.JOB_STATE_PENDING }, reason: 'retry' });
    await store.commit({ prev: pending, next: { ...pending.job, reason: 'still waiting' }, reason: 'noted' });
    await expect(store.commit({ prev: pending, next: placed(pending.job), reason: 'placed' })).rejects.toBeInstanceOf(StaleWriteError);
    expect((await store.archivedAttempts([id])).get(id)!.map((a) => a.number)).toEqual([1]);

    // Archive + record hold every attempt once, in order, as the chain goes on.
    rec = (await store.get(id))!;
    rec = await store.commit({ prev: rec, next: placed(rec.job), reason: 'placed' });
    for (let i = 0; i < 3; i++) rec = await recoverOnce(store, rec);
    const archived = (await store.archivedAttempts([id])).get(id)!;
    expect(archived.map((a) => a.number)).toEqual([1, 2, 3, 4, 5]);
    expect(archived.map((a) => a.placement[0]!.node)).toEqual(['node-1', 'node-2', 'node-3', 'node-4', 'node-5']);
    expect([...archived, ...rec.job.attempts].map((a) => a.number)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(rec.job.attemptsCompacted).toBe(archived.length);
  });

  it('archives every attempt a lowered limit drops in one commit, and keeps only the newest ATTEMPTS_ARCHIVE_CAP', async () => {
    expect(ATTEMPTS_ARCHIVE_CAP).toBe(1000);
    const wide = new JobStore(redis(), { attemptsKept: 1500 });
    let rec = await submitted(wide);
    const id = rec.job.id;
    // 1,200 attempts in one record (a store that kept them all), then a store keeping 2.
    const attempts = Array.from({ length: 1200 }, (_, i) => Attempt.create({ number: i + 1, placement: [RankPlacement.create({ rank: 0, node: `node-${i + 1}`, gpuIndices: [0] })] }));
    rec = await wide.commit({ prev: rec, next: Job.create({ ...rec.job, state: JobState.JOB_STATE_SCHEDULED, attempt: 1200, attempts }), reason: 'placed' });
    expect(await redis().exists(keys.jobAttemptsArchive(id))).toBe(0);
    const narrow = new JobStore(redis(), { attemptsKept: 2 });
    rec = await narrow.commit({ prev: rec, next: { ...rec.job, reason: 'noted' }, reason: 'noted' });
    expect(rec.job.attemptsCompacted).toBe(1198);
    expect(rec.job.attempts.map((a) => a.number)).toEqual([1199, 1200]);
    const archived = (await narrow.archivedAttempts([id, 'no-such-job'])).get(id)!;
    expect(archived).toHaveLength(ATTEMPTS_ARCHIVE_CAP);
    expect(archived[0]!.number).toBe(1198 - ATTEMPTS_ARCHIVE_CAP + 1);
    expect(archived.at(-1)!.number).toBe(1198);
    // The cap holds as more are dropped: one more attempt, one more archived, the oldest out.
    rec = await narrow.commit({ prev: rec, next: placed(rec.job), reason: 'placed' });
    const after = (await narrow.archivedAttempts([id])).get(id)!;
    expect(await redis().llen(keys.jobAttemptsArchive(id))).toBe(ATTEMPTS_ARCHIVE_CAP);
    expect([after[0]!.number, after.at(-1)!.number]).toEqual([200, 1199]);
  });

  it('keeps 16 attempts by default and refuses fewer than 2', () => {
    expect(DEFAULT_ATTEMPTS_KEPT).toBe(16);
    expect(() => new JobStore(redis(), { attemptsKept: 1 })).toThrow('attempts kept per job must be an integer of at least 2, got 1');
    expect(() => new JobStore(redis(), { attemptsKept: 2.5 })).toThrow(/got 2.5/);
    const job = Job.create({ attempt: 3, attempts: [3, 1, 2].map((number) => Attempt.create({ number })) });
    expect(splitAttempts(job, 3)).toEqual({ job, dropped: [] });
    expect(splitAttempts(job, 3).job).toBe(job);
    const split = splitAttempts(job, 2);
    expect(split.job).toMatchObject({ attemptsCompacted: 1, attempts: [{ number: 2 }, { number: 3 }] });
    expect(split.dropped.map((a) => a.number)).toEqual([1]);
  });
});
