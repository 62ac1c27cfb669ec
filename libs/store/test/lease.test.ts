// The leader lease and the epoch floor against a real redis-server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startRedis, type Server } from '../../../test/harness/infra.js';
import { LeaderLease } from '../src/lease.js';
import { keys } from '../src/keys.js';

let server: Server;
let redis: Redis;

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
}, 60_000);

afterAll(async () => {
  await redis?.quit();
  await server?.stop();
});

describe('LeaderLease.raiseFloor', () => {
  it('puts the counter at the floor and gives the leader a new epoch above it; a lower floor changes nothing', async () => {
    const a = new LeaderLease(redis, 'a', 5_000);
    const b = new LeaderLease(redis, 'b', 5_000);
    expect(await a.tryAcquire()).toBe(1);
    // A standby raises the counter but holds no epoch.
    expect(await b.raiseFloor(40)).toBe(0);
    expect(await redis.get(keys.epochCounter)).toBe('40');
    // The leader takes one above the floor at once, and keeps it on renewal.
    expect(await a.raiseFloor(51)).toBe(52);
    expect(await a.tryAcquire()).toBe(52);
    expect(await redis.get(keys.leaderEpoch)).toBe('52');
    expect(await a.raiseFloor(30)).toBe(52);
    expect(await redis.get(keys.epochCounter)).toBe('52');
  });
});
