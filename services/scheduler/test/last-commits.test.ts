// The scheduler's last-commit lookups (preemption order) against a real checkpoint service,
// real Redis and NATS, over gRPC: answers are cached for their TTL, and when the service stops,
// never answers or was never there, a lookup still returns at once (the last answers it got,
// else nothing), warns once, and does not ask again until the retry interval has passed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { pino } from 'pino';
import { Attempt, Job, JobSpec, RankPlacement } from '@gantry/proto';
import { CheckpointClient } from '@gantry/sdk';
import { startNats, startRedis, type Server } from '../../../test/harness/infra.js';
import { eventually } from '../../../test/harness/stack.js';
import { startCheckpointService, type CheckpointServiceHandle } from '../../checkpoint/src/server.js';
import { ResumeSource } from '../src/recovery/resume.js';
import { LastCommitTimes, preemptionCandidates, type LastCommitSource } from '../src/last-commits.js';
import { resolveConfig } from '../src/placement/index.js';

let redis: Server;
let nats: Server;
let service: CheckpointServiceHandle | undefined;
let port = 0;
let jobSeq = 0;
const newJob = () => `lc-${process.pid}-${++jobSeq}`;

async function startService(): Promise<void> {
  service = await startCheckpointService({
    REDIS_URL: redis.url, NATS_URL: nats.url, CHECKPOINT_GRPC_PORT: String(port), METRICS_PORT: '0', BIND_HOST: '127.0.0.1', LOG_LEVEL: 'silent',
  });
  port = service.port;
}

async function commit(jobId: string, step: number): Promise<number> {
  const ck = new CheckpointClient({ address: `127.0.0.1:${port}`, timeoutMs: 5_000 });
  try {
    const c = await ck.beginCheckpoint({ jobId, attempt: 1, step, path: `/ckpt/${jobId}/${step}`, shardCount: 1 });
    await ck.reportShard(c.id, 0, 1);
    return (await ck.commitCheckpoint(c.id)).committedAt!.getTime();
  } finally {
    ck.close();
  }
}

/** A logger whose lines the test reads. */
function capturedLog(): { log: pino.Logger; lines: { level: number; msg: string }[] } {
  const lines: { level: number; msg: string }[] = [];
  return { lines, log: pino({ level: 'info' }, { write: (s: string) => { lines.push(JSON.parse(s) as { level: number; msg: string }); } }) };
}

/** The ResumeSource, recording which ids each call asked for (the service still answers). */
function counted(source: ResumeSource): LastCommitSource & { calls: string[][] } {
  const calls: string[][] = [];
  return { calls, lastCommits: (ids, timeoutMs) => { calls.push([...ids]); return source.lastCommits(ids, timeoutMs); } };
}

const WARN = 40;
const TTL = 2_000;
const RETRY = 5_000;

beforeAll(async () => {
  [redis, nats] = await Promise.all([startRedis(), startNats()]);
  await startService();
}, 60_000);

afterAll(async () => {
  await service?.stop();
  await redis?.stop();
  await nats?.stop();
});

describe('LastCommitTimes through the checkpoint service', () => {
  it('answers from ListLastCommits, asks only for stale ids, and falls back to the last answers while the service is down', async () => {
    const [a, b, none] = [newJob(), newJob(), newJob()];
    const aAt = await commit(a, 10);
    const resume = new ResumeSource(`127.0.0.1:${port}`);
    const source = counted(resume);
    const { log, lines } = capturedLog();
    let t = 1_000_000;
    const times = new LastCommitTimes(source, log, { now: () => t, ttlMs: TTL, retryAfterMs: RETRY, timeoutMs: 1_000 });
    try {
      expect(await times.get([a, b, none])).toEqual(new Map([[a, aAt]]));
      // Within the TTL the cached answers stand: b's new commit is not seen yet, nothing is asked.
      const bAt = await commit(b, 10);
      t += TTL / 2;
      expect(await times.get([a, b])).toEqual(new Map([[a, aAt]]));
      expect(source.calls).toEqual([[a, b, none]]);
      // A new id is asked for alone.
      const c = newJob();
      expect(await times.get([a, c])).toEqual(new Map([[a, aAt]]));
      expect(source.calls.at(-1)).toEqual([c]);
      t += TTL;
      expect(await times.get([a, b])).toEqual(new Map([[a, aAt], [b, bAt]]));

      // The service goes away: the lookup still returns, with the last answers, and warns once.
      await service!.stop();
      service = undefined;
      t += TTL;
      const started = Date.now();
      expect(await times.get([a, b, none])).toEqual(new Map([[a, aAt], [b, bAt]]));
      expect(Date.now() - started).toBeLessThan(1_500);
      const warnings = () => lines.filter((l) => l.level === WARN && l.msg.includes('cannot learn last checkpoint commits'));
      expect(warnings()).toHaveLength(1);
      // Within the retry interval it is not asked at all.
      const asked = source.calls.length;
      t += TTL;
      expect(await times.get([a, b])).toEqual(new Map([[a, aAt], [b, bAt]]));
      expect(source.calls).toHaveLength(asked);

      // Back on the same port, it is asked again once the retry interval has passed.
      await startService();
      // grpc-js shares a channel's connection between clients of one address: the first calls
      // may still meet the reconnect backoff of the one that failed.
      const aNewer = await eventually('the restarted service', () => commit(a, 20).catch(() => undefined), 20_000);
      t += RETRY;
      expect(await times.get([a, b])).toEqual(new Map([[a, aNewer], [b, bAt]]));
      expect(source.calls).toHaveLength(asked + 1);
      expect(lines.some((l) => l.msg.includes('answers last checkpoint commits again'))).toBe(true);
      expect(warnings()).toHaveLength(1);
    } finally {
      resume.close();
    }
  });

  it('a service that accepts connections and never answers costs one deadline, then nothing until the retry', async () => {
    const sockets: Socket[] = [];
    const silent: NetServer = createServer((s) => { sockets.push(s); });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const addr = silent.address() as { port: number };
    const resume = new ResumeSource(`127.0.0.1:${addr.port}`);
    const source = counted(resume);
    const { log, lines } = capturedLog();
    const times = new LastCommitTimes(source, log, { timeoutMs: 300, retryAfterMs: 60_000 });
    try {
      let started = Date.now();
      expect(await times.get(['j-1', 'j-2'])).toEqual(new Map());
      const waited = Date.now() - started;
      expect(waited).toBeGreaterThanOrEqual(250);
      expect(waited).toBeLessThan(1_500);
      expect(lines.filter((l) => l.level === WARN)).toHaveLength(1);
      started = Date.now();
      expect(await times.get(['j-1', 'j-2'])).toEqual(new Map());
      expect(Date.now() - started).toBeLessThan(100);
      expect(source.calls).toHaveLength(1);
    } finally {
      resume.close();
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  it('a checkpoint service that was never there: unknown times, no error', async () => {
    const resume = new ResumeSource('127.0.0.1:1');
    const { log, lines } = capturedLog();
    try {
      expect(await new LastCommitTimes(resume, log).get(['j-1'])).toEqual(new Map());
      expect(lines.filter((l) => l.level === WARN)).toHaveLength(1);
    } finally {
      resume.close();
    }
  });
});

describe('preemptionCandidates', () => {
  const now = 10_000_000;
  const job = (id: string, priorityClass: string, over: { tenant?: string; preemptedAt?: number; scheduledAt?: number; timeLimitSeconds?: number } = {}) => Job.fromPartial({
    id,
    attempt: 1,
    spec: JobSpec.fromPartial({ priorityClass, tenant: over.tenant ?? 'default', nodes: 1, gpusPerNode: 8, timeLimitSeconds: over.timeLimitSeconds ?? 0 }),
    preemptedAt: over.preemptedAt === undefined ? undefined : new Date(over.preemptedAt),
    attempts: [Attempt.fromPartial({ number: 1, scheduledAt: new Date(over.scheduledAt ?? now - 60_000), placement: [RankPlacement.fromPartial({ rank: 0, node: 'n0', gpuIndices: [0, 1, 2, 3, 4, 5, 6, 7] })] })],
  });
  const running = [job('low', 'low'), job('normal', 'normal'), job('high', 'high')];

  it('none when nothing waits or preemption is off', () => {
    expect(preemptionCandidates(running, [], resolveConfig(undefined), now)).toEqual([]);
    expect(preemptionCandidates(running, [job('p', 'critical')], resolveConfig({ preemption: { enabled: false } }), now)).toEqual([]);
  });

  it('the jobs below the highest waiting priority, except those preempted within the window or near completion', () => {
    const config = resolveConfig({ preemption: { windowSec: 60, nearCompletionFraction: 0.9 } });
    expect(preemptionCandidates(running, [job('p', 'low'), job('q', 'high')], config, now)).toEqual(['low', 'normal']);
    const protectedJobs = [
      job('recently-preempted', 'low', { preemptedAt: now - 30_000 }),
      job('preempted-long-ago', 'low', { preemptedAt: now - 120_000 }),
      job('near-done', 'low', { timeLimitSeconds: 100, scheduledAt: now - 95_000 }),
    ];
    expect(preemptionCandidates(protectedJobs, [job('p', 'high')], config, now)).toEqual(['preempted-long-ago']);
  });

  it('with reclaim of any priority, also the jobs of tenants in a cohort', () => {
    const tenants = { lender: { weight: 1, nominalGpus: 8, cohort: 'c' }, solo: { weight: 1 } };
    const jobs = [job('in-cohort', 'high', { tenant: 'lender' }), job('alone', 'high', { tenant: 'solo' })];
    expect(preemptionCandidates(jobs, [job('p', 'normal')], resolveConfig({ tenants }), now)).toEqual(['in-cohort']);
    expect(preemptionCandidates(jobs, [job('p', 'normal')], resolveConfig({ tenants, preemption: { reclaimWithinCohort: 'lower-priority' } }), now)).toEqual([]);
  });
});
