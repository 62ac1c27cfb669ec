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
