// The outbox backlog the relay-lag metrics read, against a real redis-server.
import { describe, expect, it } from 'vitest';
import { Outbox } from '../src/outbox.js';
import { keys } from '../src/keys.js';
import { useRedis } from './redis-fixture.js';

const redisOf = useRedis();

describe('Outbox.backlog', () => {
  it('counts the entries after the cursor and ages the oldest by its stream id', async () => {
    const redis = redisOf();
    const outbox = new Outbox(redis);
    expect(await outbox.backlog()).toEqual({ pending: 0, oldestAgeSec: 0 });
    const t0 = Date.now();
    for (let i = 1; i <= 3; i++) await redis.xadd(keys.outbox, `${t0 - 60_000 + i}-0`, 'subject', 's', 'id', `e${i}`, 'data', 'x');
    const all = await outbox.backlog(t0);
    expect(all.pending).toBe(3);
    expect(all.oldestAgeSec).toBeCloseTo(59.999, 2);
    // The relay published the first two: the cursor's own entry stays, trimmed before it.
    await outbox.advance(`${t0 - 60_000 + 2}-0`);
    expect(await outbox.backlog(t0)).toEqual({ pending: 1, oldestAgeSec: (60_000 - 3) / 1000 });
    await outbox.advance(`${t0 - 60_000 + 3}-0`);
    expect(await outbox.backlog(t0)).toEqual({ pending: 0, oldestAgeSec: 0 });
  });
});

describe('Outbox.next', () => {
  it('marks the entries up to the given one relayed and reads the next ones in the same step', async () => {
    const redis = redisOf();
    await redis.del(keys.outbox, keys.outboxCursor);
    const outbox = new Outbox(redis);
    const ids: string[] = [];
    for (let i = 1; i <= 5; i++) ids.push(await redis.xadd(keys.outbox, '*', 'subject', `s.${i}`, 'id', `e${i}`, 'data', Buffer.from([0xff, i])) as string);
    const first = await outbox.next(3);
    expect(first.map((e) => [e.subject, e.id, [...e.data]])).toEqual([['s.1', 'e1', [0xff, 1]], ['s.2', 'e2', [0xff, 2]], ['s.3', 'e3', [0xff, 3]]]);
    // Nothing is marked until the next read says so: a relay that dies here publishes them again.
    expect(await redis.get(keys.outboxCursor)).toBeNull();
    const second = await outbox.next(3, first[2]!.streamId);
    expect(second.map((e) => e.id)).toEqual(['e4', 'e5']);
    expect(await redis.get(keys.outboxCursor)).toBe(ids[2]);
    expect(await redis.xlen(keys.outbox)).toBe(3); // the cursor's own entry stays
    expect(await outbox.next(3, ids[4])).toEqual([]);
    expect(await outbox.backlog()).toEqual({ pending: 0, oldestAgeSec: 0 });
    // A relay that led before marks an older entry (its pass was in flight while another one
    // relayed further): the cursor stays, and nothing after it goes out again.
    expect(await outbox.next(3, ids[2])).toEqual([]);
    expect(await redis.get(keys.outboxCursor)).toBe(ids[4]);
    // Same millisecond, lower sequence: older too.
    const [ms, seq] = ids[4]!.split('-') as [string, string];
    if (Number(seq) > 0) expect(await outbox.next(3, `${ms}-${Number(seq) - 1}`)).toEqual([]);
    expect(await redis.get(keys.outboxCursor)).toBe(ids[4]);
  });
});
