// StorageLeaseStore against a real redis-server: the Lua scripts are the behaviour under test.
import { describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { useRedis } from './redis-fixture.js';
import { StorageLeaseStore, parseStorageLeaseId, storageLeaseId } from '../src/storage-leases.js';

const redisOf = useRedis();
let seq = 0;
const newTarget = () => `t${process.pid}-${++seq}`;
const h = (jobId: string, rank: number, attempt = 1) => ({ jobId, attempt, rank });


describe('StorageLeaseStore', () => {
  it('lease ids round-trip', () => {
    const id = storageLeaseId('write', { jobId: 'j-a:b', attempt: 3, rank: 7 });
    expect(id).toBe('w:j-a:b:3:7');
    expect(parseStorageLeaseId(id)).toEqual({ mode: 'write', jobId: 'j-a:b', attempt: 3, rank: 7 });
  });

  it('grants up to the limit, queues the rest FIFO, and hands a freed slot to the first waiter', async () => {
    let now = 1_000_000;
    const store = new StorageLeaseStore(redisOf(), { clock: () => now });
    const t = newTarget();
    const a = await store.acquire(t, 'write', h('A', 0), 10_000, 2);
    const b = await store.acquire(t, 'write', h('A', 1), 10_000, 2);
    expect([a.granted, b.granted]).toEqual([true, true]);
    const c = await store.acquire(t, 'write', h('B', 0), 10_000, 2);
    const d = await store.acquire(t, 'write', h('C', 0), 10_000, 2);
    expect(c).toMatchObject({ granted: false, position: 0, limit: 2, leases: 2 });
    expect(d).toMatchObject({ granted: false, position: 1 });
    // The later waiter asking again does not jump the queue when one slot frees.
    expect(await store.release(t, 'write', a.id)).toBe(true);
    expect((await store.acquire(t, 'write', h('C', 0), 10_000, 2)).granted).toBe(false);
    expect((await store.acquire(t, 'write', h('B', 0), 10_000, 2)).granted).toBe(true);
    now += 1;
    const state = await store.state(t, 'write');
    expect(state.limit).toBe(2);
    expect(state.leases.map((l) => l.id).sort()).toEqual(['w:A:1:1', 'w:B:1:0']);
    expect(state.waiters.map((w) => [w.id, w.position])).toEqual([['w:C:1:0', 0]]);
  });

  it('expires a lease that is not renewed, and renews one that is', async () => {
    let now = 2_000_000;
    const store = new StorageLeaseStore(redisOf(), { clock: () => now });
    const t = newTarget();
    const a = await store.acquire(t, 'read', h('A', 0), 1_000, 1);
    expect(a.granted).toBe(true);
    now += 800;
    expect(await store.renew(t, 'read', a.id, 1_000)).toBe(now + 1_000);
    expect((await store.acquire(t, 'read', h('B', 0), 1_000, 1)).granted).toBe(false);
    now += 1_001; // A stopped renewing (killed)
    expect(await store.renew(t, 'read', a.id, 1_000)).toBeUndefined();
    expect((await store.acquire(t, 'read', h('B', 0), 1_000, 1)).granted).toBe(true);
  });

  it('drops a waiter that stopped asking, and a newer attempt drops the older attempt', async () => {
    let now = 3_000_000;
    const store = new StorageLeaseStore(redisOf(), { clock: () => now, waiterTtlMs: 500 });
    const t = newTarget();
    await store.acquire(t, 'write', h('A', 0, 1), 60_000, 1);
    await store.acquire(t, 'write', h('B', 0), 60_000, 1);
    now += 600;
    const c = await store.acquire(t, 'write', h('C', 0), 60_000, 1);
    expect(c.position).toBe(0); // B gave up asking
    // A's attempt 2 starts: attempt 1's lease is dropped, attempt 2 queues behind C.
    const a2 = await store.acquire(t, 'write', h('A', 0, 2), 60_000, 1);
    expect(a2).toMatchObject({ granted: false, position: 1, leases: 0 });
    expect((await store.acquire(t, 'write', h('C', 0), 60_000, 1)).granted).toBe(true);
    expect(await store.releaseAttempt(t, 'write', 'A', 2)).toBe(1);
    expect((await store.state(t, 'write')).waiters).toEqual([]);
  });

  it('holds at most perNode leases per node: a waiter whose node holds its share keeps its place while the next waiter on another node goes', async () => {
    let now = 4_000_000;
    const store = new StorageLeaseStore(redisOf(), { clock: () => now });
    const t = newTarget();
    const on = (jobId: string, rank: number, node?: string) => ({ ...h(jobId, rank), ...(node ? { node } : {}) });
    const ask = (jobId: string, rank: number, node?: string) => store.acquire(t, 'write', on(jobId, rank, node), 10_000, 4, 1);
    expect((await ask('A', 0, 'n1')).granted).toBe(true);
    // n1 holds its one lease: A1 waits although three slots are free, and keeps the head of the queue.
    expect(await ask('A', 1, 'n1')).toMatchObject({ granted: false, position: 0, leases: 1 });
    expect(await ask('B', 0, 'n2')).toMatchObject({ granted: true, leases: 2 });
    expect(await ask('A', 2, 'n1')).toMatchObject({ granted: false, position: 1 });
    // A holder that names no node is not capped.
    expect((await ask('C', 0)).granted).toBe(true);
    expect(await store.grantable(t, 'write', 4, 1)).toEqual([]);
    // Without the cap the same queue would let A1 through: the cap is what holds it.
    expect(await store.grantable(t, 'write', 4, 0)).toEqual(['w:A:1:1']);
    // n1's lease ends: its first waiter is next (FIFO within the node), the one behind it still waits.
    expect(await store.release(t, 'write', 'w:A:1:0')).toBe(true);
    expect(await store.grantable(t, 'write', 4, 1)).toEqual(['w:A:1:1']);
    expect((await ask('A', 2, 'n1')).granted).toBe(false);
    expect((await ask('A', 1, 'n1')).granted).toBe(true);
    now += 1;
    const st = await store.state(t, 'write');
    expect(st.leases.map((l) => [l.id, l.holder.node]).sort()).toEqual([['w:A:1:1', 'n1'], ['w:B:1:0', 'n2'], ['w:C:1:0', undefined]]);
    expect(st.waiters.map((w) => [w.id, w.holder.node])).toEqual([['w:A:1:2', 'n1']]);
    // An expired lease frees its node's share too.
    now += 10_001;
    expect((await ask('A', 2, 'n1')).granted).toBe(true);
    const nodes = await redisOf().hgetall(`gantry:storage:${t}:write:nodes`);
    expect(nodes).toEqual({ 'w:A:1:2': 'n1' });
  });

  it('never holds more leases than the limit under concurrent acquires from many clients', async () => {
    const t = newTarget();
    const limit = 7;
    const clients = Array.from({ length: 8 }, () => new Redis(redisOf.url(), { maxRetriesPerRequest: 1 }));
    const stores = clients.map((c) => new StorageLeaseStore(c, { waiterTtlMs: 60_000 }));
    let inside = 0;
    let peak = 0;
    let violations = 0;
    const worker = async (w: number) => {
      const store = stores[w % stores.length]!;
      for (let round = 0; round < 3; round++) {
        const holder = h(`job-${w % 5}`, w * 10 + round);
        for (;;) {
          const r = await store.acquire(t, 'write', holder, 10_000, limit);
          if (r.granted) break;
          await new Promise((res) => setTimeout(res, 1 + (w % 3)));
        }
        inside++;
        peak = Math.max(peak, inside);
        const held = (await store.state(t, 'write')).leases.length;
        if (held > limit) violations++;
        await new Promise((res) => setTimeout(res, 2));
        inside--;
        await store.release(t, 'write', storageLeaseId('write', holder));
      }
    };
    try {
      await Promise.all(Array.from({ length: 40 }, (_, w) => worker(w)));
    } finally {
      await Promise.all(clients.map((c) => c.quit()));
    }
    expect(violations).toBe(0);
    expect(peak).toBeLessThanOrEqual(limit);
    expect(peak).toBe(limit);
    expect((await new StorageLeaseStore(redisOf()).state(t, 'write')).leases).toEqual([]);
  });
});
