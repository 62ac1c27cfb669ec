// The operations report over a retry chain longer than the attempts a job record keeps, read
// from real Redis by the report's own reader: the attempts compacted out of the record come
// back from the job's attempts archive, so every per-attempt figure (failures by class,
// blames, retry intervals) is what it is for the same chain written without compaction; an
// archive that lacks attempts (compacted before archives existed) is named in the limits.
import { describe, expect, it } from 'vitest';
import { Attempt, FailureClass, Job, JobFailure, JobSpec, JobState, RankPlacement, type OperationsReport } from '@gantry/proto';
import { JobStore, NodeStore, keys, type JobRecord } from '@gantry/store';
import { useRedis } from '../../../../libs/store/test/redis-fixture.js';
import type { SchedulerContext } from '../../src/context.js';
import { ReportSource } from '../../src/report/service.js';

const redis = useRedis();
const T0 = Date.UTC(2026, 10, 1);
const MIN = 60_000;
const at = (ms: number) => new Date(T0 + ms);
const ATTEMPTS = 7;
const ID = 'long-chain';

/** Attempt n fails an hour after it starts (odd ones a node fault on its node, even ones the application's) and attempt n+1 starts n minutes later; the last succeeds. */
const startOf = (n: number): number => (n === 1 ? 10 * MIN : startOf(n - 1) + 60 * MIN + (n - 1) * MIN);

async function writeChain(store: JobStore): Promise<Job> {
  await store.submit(Job.create({ id: ID, createdAt: at(0), spec: JobSpec.create({ nodes: 1, gpusPerNode: 1, command: ['true'], tenant: 't' }) }), '');
  let rec: JobRecord = (await store.get(ID))!;
  for (let n = 1; n <= ATTEMPTS; n++) {
    const node = `node-${n}`;
    const attempt = Attempt.create({ number: n, scheduledAt: at(startOf(n) - 1000), startedAt: at(startOf(n)), placement: [RankPlacement.create({ rank: 0, node, gpuIndices: [0] })] });
    rec = await store.commit({ prev: rec, next: { ...rec.job, state: JobState.JOB_STATE_SCHEDULED, attempt: n, attempts: [...rec.job.attempts, attempt] }, reason: 'placed', now: at(startOf(n) - 1000) });
    rec = await store.commit({ prev: rec, next: { ...rec.job, state: JobState.JOB_STATE_RUNNING }, reason: 'running', now: at(startOf(n)) });
    const end = at(startOf(n) + 60 * MIN);
    if (n === ATTEMPTS) {
      rec = await store.commit({ prev: rec, next: { ...rec.job, state: JobState.JOB_STATE_SUCCEEDED, finishedAt: end }, reason: 'done', now: end });
      break;
    }
    const nodeFault = n % 2 === 1;
    const failure = JobFailure.create({ node, failureClass: nodeFault ? FailureClass.FAILURE_CLASS_NODE_FAULT : FailureClass.FAILURE_CLASS_APPLICATION, time: end, reason: `attempt ${n} failed` });
    rec = await store.commit({
      prev: rec,
      next: {
        ...rec.job, state: JobState.JOB_STATE_RECOVERING,
        attempts: rec.job.attempts.map((a) => (a.number === n ? { ...a, finishedAt: end, failure } : a)),
        excludedNodes: nodeFault ? [...rec.job.excludedNodes, node] : rec.job.excludedNodes,
      },
      reason: 'failed', now: end,
    });
    rec = await store.commit({ prev: rec, next: { ...rec.job, state: JobState.JOB_STATE_PENDING, recoveries: rec.job.recoveries + 1 }, reason: 'retry', now: end });
  }
  return rec.job;
}

/** The report of the day after T0, read as the scheduler's report service reads it (no checkpoint service: its figures are left out). */
async function report(store: JobStore): Promise<OperationsReport> {
  const ctx = { redis: redis(), jobs: store, nodes: new NodeStore(redis()) } as unknown as SchedulerContext;
  const source = new ReportSource(ctx, '127.0.0.1:1', undefined, 500);
  try {
    return await source.report(86_400, T0 + 86_400_000);
  } finally {
    source.close();
  }
}

const perAttempt = (r: OperationsReport) => ({ retryChains: r.retryChains, attemptFailures: r.attemptFailures, exclusions: r.exclusions, detection: r.detection });

describe('operations report over compacted attempts', () => {
  it('counts the attempts compacted out of a record from its archive: the figures equal the uncompacted chain\'s', async () => {
    await redis().flushall();
    const whole = await writeChain(new JobStore(redis(), { attemptsKept: 16 }));
    expect(whole.attemptsCompacted).toBe(0);
    const uncompacted = await report(new JobStore(redis(), { attemptsKept: 16 }));

    await redis().flushall();
    const store = new JobStore(redis(), { attemptsKept: 2 });
    const kept = await writeChain(store);
    expect(kept.attemptsCompacted).toBe(ATTEMPTS - 2);
    expect(kept.attempts.map((a) => a.number)).toEqual([ATTEMPTS - 1, ATTEMPTS]);
    const compacted = await report(store);

    expect(perAttempt(compacted)).toEqual(perAttempt(uncompacted));
    expect(compacted.limits).toEqual(uncompacted.limits);
    // What they are: 6 retries, 1 to 6 minutes apart; 3 node faults, each blaming its node, and 3 application failures.
    expect(compacted.retryChains).toMatchObject({ chains: 1, attempts: ATTEMPTS, succeeded: 1, retries: ATTEMPTS - 1 });
    expect(compacted.retryChains!.retryIntervalMedianSeconds).toBeCloseTo(3.5 * 60);
    expect(compacted.retryChains!.retryIntervalP25Seconds).toBeCloseTo(2.25 * 60);
    expect(compacted.retryChains!.retryIntervalP75Seconds).toBeCloseTo(4.75 * 60);
    expect(compacted.attemptFailures).toEqual([
      { failureClass: FailureClass.FAILURE_CLASS_NODE_FAULT, attempts: 3 },
      { failureClass: FailureClass.FAILURE_CLASS_APPLICATION, attempts: 3 },
    ]);
    expect(compacted.exclusions).toMatchObject({ blames: 3, nodes: 3 });
  });

  it('names in the limits the compacted attempts an archive does not hold', async () => {
    await redis().flushall();
    const store = new JobStore(redis(), { attemptsKept: 2 });
    await writeChain(store);
    // As for a job compacted before archives existed: the record counts 5 dropped, the archive holds the newest 2.
    await redis().ltrim(keys.jobAttemptsArchive(ID), -2, -1);
    const r = await report(store);
    expect(r.limits.filter((l) => l.startsWith('attempts:'))).toEqual([
      'attempts: 1 job(s) lack 3 of their oldest attempts (compacted from the record before the attempts archive existed, or beyond its 1000 per job); retry chains count them, but no failure, exclusion or retry interval of theirs is in the figures',
    ]);
    expect(r.retryChains).toMatchObject({ attempts: ATTEMPTS, retries: 3 });
    expect(r.attemptFailures.reduce((s, f) => s + f.attempts, 0)).toBe(3);
  });
});
