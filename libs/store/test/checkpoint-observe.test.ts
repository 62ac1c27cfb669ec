// Discovery and explicit reports against a real redis-server: lua/checkpoint-observe.lua and
// lua/checkpoint-delete.lua are the behaviour under test.
import { beforeAll, describe, expect, it } from 'vitest';
import { CheckpointFormat, CheckpointState } from '@gantry/proto';
import { useRedis } from './redis-fixture.js';
import { CHECKPOINT_ID_PATTERN, CheckpointStore, checkpointId, checkpointJobId, discoveredCheckpointId, type ObservedCheckpoint } from '../src/checkpoints.js';
import { keys } from '../src/keys.js';

const { CHECKPOINT_STATE_WRITING: WRITING, CHECKPOINT_STATE_COMMITTED: COMMITTED, CHECKPOINT_STATE_ABANDONED: ABANDONED, CHECKPOINT_STATE_CORRUPT: CORRUPT, CHECKPOINT_STATE_DELETED: DELETED } = CheckpointState;

const redisOf = useRedis();
let store: CheckpointStore;
let seq = 0;
const newJob = () => `obs-${process.pid}-${++seq}`;

function report(jobId: string, step: number, status: ObservedCheckpoint['status'], extra: Partial<ObservedCheckpoint> = {}): ObservedCheckpoint {
  return {
    jobId, attempt: 1, node: 'node-0', path: `/ckpt/${jobId}/step-${step}`, step, status, reason: status === 'COMPLETE' ? '' : `${status.toLowerCase()} because`,
    files: [{ path: '.metadata', size: 10, sha256: '' }, { path: '__0_0.distcp', size: 90, sha256: 'ab' }], bytes: 100,
    format: CheckpointFormat.CHECKPOINT_FORMAT_DCP, variant: '', source: 'discovery', attemptEnded: false, ...extra,
  };
}

beforeAll(() => {
  store = new CheckpointStore(redisOf());
});

describe('CheckpointStore.observe', () => {
  it('ids are per (job, step, path) and keep the id pattern', () => {
    const a = discoveredCheckpointId('job-1', 500, '/ckpt/a');
    expect(a).toMatch(CHECKPOINT_ID_PATTERN);
    expect(discoveredCheckpointId('job-1', 500, '/ckpt/a')).toBe(a);
    expect(discoveredCheckpointId('job-1', 500, '/ckpt/b')).not.toBe(a);
  });

  it('IN_PROGRESS, then COMMITTED by manifest; repeating the report changes nothing; latestCommitted offers it', async () => {
    const job = newJob();
    const first = await store.observe(report(job, 10, 'INCOMPLETE'));
    expect(first).toMatchObject({ changed: true, checkpoint: { state: WRITING, step: 10, source: 'discovery', node: 'node-0', reason: 'incomplete because' } });
    const done = await store.observe(report(job, 10, 'COMPLETE'));
    expect(done.changed).toBe(true);
    expect(done.checkpoint).toMatchObject({ state: COMMITTED, bytes: 100, reason: '', format: CheckpointFormat.CHECKPOINT_FORMAT_DCP });
    expect(done.checkpoint!.files).toEqual([{ path: '.metadata', size: 10, sha256: '' }, { path: '__0_0.distcp', size: 90, sha256: 'ab' }]);
    expect((await store.observe(report(job, 10, 'COMPLETE'))).changed).toBe(false);
    expect((await store.latestCommitted(job))?.id).toBe(done.checkpoint!.id);
    expect((await store.lastCommitTimes([job])).has(job)).toBe(true);
    expect((await store.events(job)).map((e) => e.kind)).toEqual(['committed', 'in-progress']);
  });

  it('a committed checkpoint that later fails the check is CORRUPT, stays so, and is no longer offered for resume', async () => {
    const job = newJob();
    await store.observe(report(job, 10, 'COMPLETE'));
    const good = await store.observe(report(job, 20, 'COMPLETE'));
    expect((await store.latestCommitted(job))?.id).toBe(good.checkpoint!.id);
    const bad = await store.observe(report(job, 20, 'CORRUPT', { reason: '__0_0.distcp is missing' }));
    expect(bad.checkpoint).toMatchObject({ state: CORRUPT, reason: 'failed the check after commit: __0_0.distcp is missing' });
    // a later COMPLETE verdict does not bring back a checkpoint that broke after commit
    expect((await store.observe(report(job, 20, 'COMPLETE'))).checkpoint!.state).toBe(CORRUPT);
    expect((await store.latestCommitted(job))?.step).toBe(10);
    const lost = await store.observe(report(job, 10, 'INCOMPLETE', { reason: 'no .metadata' }));
    expect(lost.checkpoint).toMatchObject({ state: CORRUPT, reason: 'no longer complete after commit: no .metadata' });
    expect(await store.latestCommitted(job)).toBeUndefined();
  });

  it('CORRUPT before any commit may still complete (a tracker written before its last shard)', async () => {
    const job = newJob();
    expect((await store.observe(report(job, 5, 'CORRUPT'))).checkpoint!.state).toBe(CORRUPT);
    expect((await store.observe(report(job, 5, 'COMPLETE'))).checkpoint!.state).toBe(COMMITTED);
  });

  it('INCOMPLETE when the attempt ended is ABANDONED with the reason; a vanished directory is DELETED; DELETED is final', async () => {
    const job = newJob();
    await store.observe(report(job, 30, 'INCOMPLETE'));
    const ab = await store.observe(report(job, 30, 'INCOMPLETE', { attemptEnded: true, reason: 'no .metadata yet' }));
    expect(ab.checkpoint).toMatchObject({ state: ABANDONED, reason: 'attempt 1 ended before it was complete: no .metadata yet' });
    expect((await store.observe(report(job, 40, 'GONE'))).checkpoint).toBeUndefined();
    await store.observe(report(job, 50, 'COMPLETE'));
    const gone = await store.observe(report(job, 50, 'GONE'));
    expect(gone.checkpoint).toMatchObject({ state: DELETED, reason: 'the directory was removed outside Gantry' });
    expect((await store.observe(report(job, 50, 'COMPLETE'))).checkpoint!.state).toBe(DELETED);
  });

  it('markDeleted records an event once; expireJob sets TTLs and keepJob lifts them', async () => {
    const job = newJob();
    const c = (await store.observe(report(job, 60, 'COMPLETE'))).checkpoint!;
    expect((await store.markDeleted(c.id, 'retention: keep_last 1')).changed).toBe(true);
    expect((await store.markDeleted(c.id, 'retention: keep_last 1')).changed).toBe(false);
    const events = await store.events(job);
    expect(events[0]).toMatchObject({ kind: 'deleted', message: 'retention: keep_last 1', checkpointId: c.id });
    await store.setMeta(job, { dir: `/ckpt/${job}`, node: 'node-0', retention: { keepLast: 2, keepEvery: 0, gcGraceSeconds: 0, delete: false } });
    expect(await store.meta(job)).toMatchObject({ dir: `/ckpt/${job}`, retention: { keepLast: 2 } });
    expect(await store.expireJob(job, 100)).toBe(1);
    expect(await redisOf().ttl(keys.checkpoint(c.id))).toBeGreaterThan(0);
    expect(await redisOf().ttl(keys.jobCheckpointEvents(job))).toBeGreaterThan(0);
    await store.keepJob(job);
    expect(await redisOf().ttl(keys.checkpoint(c.id))).toBe(-1);
  });
});

describe('CheckpointStore.finishJob', () => {
  it('expires the records in one script and names the WRITING ones of the attempts that ended', async () => {
    const job = newJob();
    const committed = (await store.observe(report(job, 10, 'COMPLETE'))).checkpoint!;
    const first = (await store.begin({ jobId: job, attempt: 1, step: 20, path: `/ckpt/${job}/20`, shardCount: 1 })).checkpoint;
    const second = (await store.begin({ jobId: job, attempt: 2, step: 30, path: `/ckpt/${job}/30`, shardCount: 1 })).checkpoint;
    const later = (await store.begin({ jobId: job, attempt: 3, step: 40, path: `/ckpt/${job}/40`, shardCount: 1 })).checkpoint;
    const { expired, writing } = await store.finishJob(job, 100, 2);
    expect(expired).toBe(4);
    expect(writing.sort()).toEqual([first.id, second.id].sort());
    for (const c of [committed, first, second, later]) expect(await redisOf().ttl(keys.checkpoint(c.id))).toBeGreaterThan(0);
    expect(await redisOf().ttl(keys.jobCheckpointFinished(job))).toBeGreaterThan(0);
    expect((await store.lastCommitTimes([job])).has(job)).toBe(false);
    // Abandoning after keeps the expiry.
    await store.abandon(first.id, 'attempt 2 ended');
    expect(await redisOf().ttl(keys.checkpoint(first.id))).toBeGreaterThan(0);
  });

  it('a job without checkpoints gets only its finished marker', async () => {
    const job = newJob();
    expect(await store.finishJob(job, 100, 0)).toEqual({ expired: 0, writing: [] });
    expect(await redisOf().ttl(keys.jobCheckpointFinished(job))).toBeGreaterThan(0);
    expect(await redisOf().exists(keys.jobCheckpoints(job))).toBe(0);
  });
});

describe('records written after the job finished (the agent\'s last pass)', () => {
  /** Every key the store writes for the job, with its TTL in ms (-1: none, -2: absent). */
  async function ttls(job: string, ids: string[]): Promise<Record<string, number>> {
    const r = redisOf();
    const named: Record<string, string> = {
      index: keys.jobCheckpoints(job), events: keys.jobCheckpointEvents(job), meta: keys.jobCheckpointMeta(job),
      placement: keys.jobCheckpointPlacement(job), finished: keys.jobCheckpointFinished(job),
      ...Object.fromEntries(ids.map((id) => [id, keys.checkpoint(id)])),
    };
    const out: Record<string, number> = {};
    for (const [name, key] of Object.entries(named)) out[name] = await r.pttl(key);
    return out;
  }

  it('checkpointJobId reads the job back from either kind of id', () => {
    expect(checkpointJobId(checkpointId('my-job-7', 500, 2))).toBe('my-job-7');
    expect(checkpointJobId(discoveredCheckpointId('a-1-2', 3, '/x'))).toBe('a-1-2');
    expect(checkpointJobId('nonsense')).toBe('');
  });

  it('a late discovered commit expires with the job and does not bring back its last commit time', async () => {
    const job = newJob();
    await store.setPlacements(job, [{ attempt: 1, nodes: ['node-0'] }]);
    const early = (await store.observe(report(job, 10, 'COMPLETE'))).checkpoint!;
    expect((await store.lastCommitTimes([job])).has(job)).toBe(true);
    expect(await store.expireJob(job, 100)).toBe(1);
    expect((await store.lastCommitTimes([job])).has(job)).toBe(false);
    // The final save, seen by the agent's last pass after the job's final transition.
    await store.setMeta(job, { dir: `/ckpt/${job}`, node: 'node-0', retention: undefined });
    const late = await store.observe(report(job, 20, 'COMPLETE', { attemptEnded: true }));
    expect(late.checkpoint).toMatchObject({ state: COMMITTED, step: 20 });
    expect((await store.lastCommitTimes([job])).has(job)).toBe(false);
    const t = await ttls(job, [early.id, late.checkpoint!.id]);
    for (const [name, ms] of Object.entries(t)) {
      expect(ms, name).toBeGreaterThan(0);
      expect(ms, name).toBeLessThanOrEqual(100_000);
    }
    // Offered for resume until it expires, like the records before it.
    expect((await store.latestCommitted(job))?.id).toBe(late.checkpoint!.id);
  });

  it('a job with no checkpoint at its end: the index, events and settings a late report creates expire', async () => {
    const job = newJob();
    expect(await store.expireJob(job, 100)).toBe(0);
    await store.setTenant(job, 'team-a');
    await store.setMeta(job, { dir: `/ckpt/${job}`, node: 'node-0', retention: undefined });
    await store.setPlacements(job, [{ attempt: 1, nodes: ['node-0'] }]);
    const c = (await store.observe(report(job, 5, 'INCOMPLETE', { attemptEnded: true }))).checkpoint!;
    expect(c.state).toBe(ABANDONED);
    await store.recordEvent({ checkpointId: c.id, jobId: job, kind: 'delete-dry-run', path: c.path, message: 'dry run', time: new Date() });
    expect(await store.meta(job)).toMatchObject({ tenant: 'team-a', dir: `/ckpt/${job}` });
    for (const [name, ms] of Object.entries(await ttls(job, [c.id]))) expect(ms, name).toBeGreaterThan(0);
    const gone = (await store.observe(report(job, 6, 'COMPLETE'))).checkpoint!;
    await store.markDeleted(gone.id, 'retention');
    expect(await redisOf().pttl(keys.jobCheckpointEvents(job))).toBeGreaterThan(0);
  });

  it('a client begin and commit after the end expire too and leave the last-commit hash alone', async () => {
    const job = newJob();
    await store.expireJob(job, 100);
    const { checkpoint } = await store.begin({ jobId: job, attempt: 1, step: 30, path: `/ckpt/${job}/30`, shardCount: 1 });
    await store.reportShard(checkpoint.id, 0, 10);
    expect((await store.commit(checkpoint.id)).changed).toBe(true);
    expect((await store.lastCommitTimes([job])).has(job)).toBe(false);
    const t = await ttls(job, [checkpoint.id]);
    expect(t[checkpoint.id]).toBeGreaterThan(0);
    expect(t.index).toBeGreaterThan(0);
  });

  it('keepJob (a retry) removes the marker: later records stay and the last commit time comes back', async () => {
    const job = newJob();
    const c = (await store.observe(report(job, 10, 'COMPLETE'))).checkpoint!;
    await store.expireJob(job, 100);
    await store.keepJob(job);
    const next = (await store.observe(report(job, 20, 'COMPLETE', { attempt: 2 }))).checkpoint!;
    const t = await ttls(job, [c.id, next.id]);
    expect(t).toMatchObject({ finished: -2, index: -1, events: -1, [c.id]: -1, [next.id]: -1 });
    expect((await store.lastCommitTimes([job])).has(job)).toBe(true);
  });
});
