// Redis with a replica and Sentinel, as the services connect to it (service-kit connectRedis
// with REDIS_SENTINELS): commits that matter and new leader epochs wait for the replica (WAIT),
// a commit the replica did not confirm fails instead of returning, a confirmed one survives a
// kill -9 of the primary, and the same connection writes to the promoted replica afterwards.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Job, JobSpec, JobState } from '@gantry/proto';
import { JobStore, LeaderLease, ReplicationError, keys, replicationStats } from '@gantry/store';
import { commonEnv, connectRedis, createLogger, loadConfig, redisTarget } from '@gantry/service-kit';
import type { Redis } from 'ioredis';
import { startRedisHa, type RedisHa } from '../harness/infra.js';
import { eventually } from '../harness/stack.js';

const WAIT_MS = 2_000;
let ha: RedisHa;
let redis: Redis;

beforeAll(async () => {
  ha = await startRedisHa();
  // 2 s: on a loaded 2-core CI machine a healthy replica's acknowledgement took over 500 ms.
  const config = loadConfig(commonEnv, { ...ha.env(), REDIS_WAIT_TIMEOUT_MS: String(WAIT_MS) });
  redis = connectRedis(redisTarget(config), createLogger('test', 'silent'));
}, 60_000);

afterAll(async () => {
  redis?.disconnect();
  await ha?.stop();
});

const spec = JobSpec.fromPartial({ nodes: 1, gpusPerNode: 1, command: ['true'], tenant: 't' });

describe('Redis through Sentinel', () => {
  it('waits for the replica after a commit, and fails a commit the replica does not confirm', async () => {
    // The replica must have finished its first sync before a write can be confirmed by it.
    await ha.healthy(30_000);
    const jobs = new JobStore(redis);
    const waits = replicationStats.waits;
    await jobs.submit(Job.create({ id: 'j-ok', spec }), '');
    expect(replicationStats.waits).toBe(waits + 1);

    const replica = ha.servers.find((s) => s !== undefined && s.port !== ha.servers[0]!.port)!;
    await replica.kill();
    try {
      const started = Date.now();
      await expect(jobs.submit(Job.create({ id: 'j-unconfirmed', spec }), '')).rejects.toBeInstanceOf(ReplicationError);
      expect(Date.now() - started).toBeGreaterThanOrEqual(WAIT_MS - 50);
      // A new leader epoch is not handed out unconfirmed either.
      await expect(new LeaderLease(redis, 'sched-a', 5_000).tryAcquire()).rejects.toBeInstanceOf(ReplicationError);
    } finally {
      await ha.restartAsReplica(replica);
      await ha.healthy(30_000);
    }
    // Once the replica is back the retry of the same transition goes through (the lease: same epoch, now confirmed).
    const lease = new LeaderLease(redis, 'sched-a', 5_000);
    const epoch = await lease.tryAcquire();
    expect(epoch).toBeGreaterThan(0);
    expect(Number(await redis.get(keys.leaderEpoch))).toBe(epoch);
  });

  it('a connection that ioredis ends on its own during a failover connects again; quit() still ends it', async () => {
    // ioredis's failover detector calls connector.disconnect() on +switch-master; when that lands
    // while the client is still resolving the primary through the sentinels, the connect fails
    // with "Connection is closed." and the client ends for good (a CI run lost Redis this way).
    // The same call, made while the connection is resolving, reproduces it deterministically.
    const config = loadConfig(commonEnv, { ...ha.env(), REDIS_WAIT_TIMEOUT_MS: String(WAIT_MS) });
    const conn = connectRedis(redisTarget(config), createLogger('test', 'silent'));
    const ended = new Promise<void>((r) => conn.once('end', () => r()));
    expect(conn.status).toBe('connecting');
    (conn as unknown as { connector: { disconnect(): void } }).connector.disconnect();
    await ended;
    expect(await eventually('the ended connection back', () => conn.ping().catch(() => undefined), 10_000)).toBe('PONG');
    await conn.quit();
    await new Promise((r) => setTimeout(r, 300));
    expect(conn.status).toBe('end');
  });

  it('a confirmed commit survives kill -9 of the primary; the same connection then writes to the promoted replica', async () => {
    const jobs = new JobStore(redis);
    await jobs.submit(Job.create({ id: 'j-before-failover', spec }), '');
    const epochBefore = Number(await redis.get(keys.leaderEpoch));
    const old = await ha.primary();
    const killedAt = Date.now();
    await old.kill();
    await eventually('a new primary', async () => { const p = await ha.primary().catch(() => undefined); return p && p !== old ? p : undefined; }, 20_000);
    const promotedMs = Date.now() - killedAt;
    // Bring the old primary back as a replica so commits can be confirmed again.
    await ha.restartAsReplica(old);
    const rec = await eventually('the job on the new primary', () => jobs.get('j-before-failover'), 20_000);
    expect(rec.job.state).toBe(JobState.JOB_STATE_PENDING);
    expect(Number(await redis.get(keys.leaderEpoch))).toBe(epochBefore);
    await eventually('a write on the new primary', async () => (await jobs.submit(Job.create({ id: 'j-after-failover', spec }), '').then(() => true, () => undefined)), 30_000, 250);
    // It really went to the primary the sentinels name now (usually the promoted replica; on a
    // loaded machine they may fail over once more, so the primary is asked, not assumed).
    const { Redis: RedisClient } = await import('ioredis');
    const now = await ha.primary();
    const direct = new RedisClient(now.port, '127.0.0.1');
    try {
      expect(await direct.hget(keys.job('j-after-failover'), 'rev')).toBe('1');
      expect(await direct.info('replication')).toMatch(/role:master/);
    } finally {
      direct.disconnect();
    }
    console.log(`redis failover: promoted ${promotedMs} ms after kill -9; total waits ${replicationStats.waits}, shortfalls ${replicationStats.shortfalls}`);
  });
});
