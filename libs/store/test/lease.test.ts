// The leader lease and the epoch floor against a real redis-server.
import { beforeEach, describe, expect, it } from 'vitest';
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

describe('LeaderLease.tryAcquire after its lease lapsed', () => {
  beforeEach(async () => {
    await redisOf().del(keys.leader, keys.leaderEpoch, keys.epochCounter);
  });

  it('takes it back with the same epoch when nobody led since; a new epoch when somebody did, or after a release', async () => {
    const a = new LeaderLease(redisOf(), 'a', 5_000);
    const b = new LeaderLease(redisOf(), 'b', 5_000);
    expect(await a.tryAcquire()).toBe(1);
    // a was busy past its TTL: the lease key expired, nobody else campaigned.
    await redisOf().del(keys.leader);
    expect(await a.tryAcquire()).toBe(1);
    expect(await b.tryAcquire()).toBe(0);
    // It lapsed again and b took it: a has lost, and gets a new epoch only after b's lapses.
    await redisOf().del(keys.leader);
    expect(await b.tryAcquire()).toBe(2);
    expect(await a.tryAcquire()).toBe(0);
    await redisOf().del(keys.leader);
    expect(await a.tryAcquire()).toBe(3);
    // A floor raised above the counter while the lease lapsed: a new epoch above it.
    await redisOf().del(keys.leader);
    expect(await b.raiseFloor(10)).toBe(0);
    expect(await a.tryAcquire()).toBe(11);
    // Given back on purpose: the next acquisition is a new leadership.
    await a.release();
    expect(await a.tryAcquire()).toBe(12);
  });

  it('is not taken by another instance that claims the same last epoch', async () => {
    const a = new LeaderLease(redisOf(), 'a', 5_000);
    expect(await a.tryAcquire()).toBe(1);
    await redisOf().del(keys.leader);
    // A second process with a's instance id but no epoch of its own (restarted): a new epoch.
    const restarted = new LeaderLease(redisOf(), 'a', 5_000);
    expect(await restarted.tryAcquire()).toBe(2);
  });
});
