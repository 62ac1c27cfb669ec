// The leader lease and the epoch floor against a real redis-server.
import { describe, expect, it } from 'vitest';
import { useRedis } from './redis-fixture.js';
import { LeaderLease } from '../src/lease.js';
import { keys } from '../src/keys.js';

const redisOf = useRedis();

describe('LeaderLease.raiseFloor', () => {
  it('puts the counter at the floor and gives the leader a new epoch above it; a lower floor changes nothing', async () => {
    const a = new LeaderLease(redisOf(), 'a', 5_000);
    const b = new LeaderLease(redisOf(), 'b', 5_000);
    expect(await a.tryAcquire()).toBe(1);
    // A standby raises the counter but holds no epoch.
    expect(await b.raiseFloor(40)).toBe(0);
    expect(await redisOf().get(keys.epochCounter)).toBe('40');
    // The leader takes one above the floor at once, and keeps it on renewal.
    expect(await a.raiseFloor(51)).toBe(52);
    expect(await a.tryAcquire()).toBe(52);
    expect(await redisOf().get(keys.leaderEpoch)).toBe('52');
    expect(await a.raiseFloor(30)).toBe(52);
    expect(await redisOf().get(keys.epochCounter)).toBe('52');
  });
});
