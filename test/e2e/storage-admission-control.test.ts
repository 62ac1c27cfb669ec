// The storage pool's size set by the controller from what the real services report (issue 11):
// two simulated agents send their NFS client telemetry (/proc/self/mountstats of the sim's
// 10.0.0.11:/checkpoints mount) to the real scheduler; a checkpoint service with the target
// reads it, and the cluster health, over the scheduler's NodeService gRPC (storage-stack.ts).
//   - Growth: holders that only the pool's limit holds back make the controller grow it, a
//     step per control interval (at most doubling), up to its max; `gantry storage show` names
//     the cause and the telemetry behind it (the controller takes no step without it).
//   - The degraded shrink: an NFS stall injected into both agents' checkpoint mount is found by
//     the scheduler's health detector as a shared storage fault on that target, and the
//     controller cuts the pool to its degraded cap with the reason "degraded".
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StorageLease } from '@gantry/proto';
import { GantryClient } from '@gantry/sdk';
import { eventually, TestStack } from '../harness/stack.js';
import { FAST_HEALTH } from '../harness/fast-config.js';
import { gantry, sim } from '../harness/tools.js';
import { startStorageService, type StorageService } from './storage-stack.js';

const TARGET = 'ckpt';
const EXPORT = '10.0.0.11:/checkpoints';
const MAX = 4;
const HOLDERS = 6;

let stack: TestStack;
let client: GantryClient;
let svc: StorageService;

beforeAll(async () => {
  stack = await new TestStack({ agents: 2, env: { 'node-agent': { TELEMETRY_INTERVAL_MS: '1000' } } }).start();
  client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 5_000, retry: { maxAttempts: 20 } });
  // One-second windows; two nodes are enough for a shared fault here (the default asks three).
  await client.setHealthConfig({ ...FAST_HEALTH, shared: { minNodes: 2 } });
  svc = await startStorageService(stack, [{
    name: TARGET, mountPrefix: '/mnt/checkpoints', serverExport: EXPORT,
    writeBytesPerSecond: 250e9, readBytesPerSecond: 700e9, leaseTtlMs: 30_000,
    write: { initial: 1, min: 1, max: MAX }, read: { initial: 2, min: 1, max: 8 },
  }], { controlMs: 500 });
}, 120_000);

afterAll(async () => {
  client?.close();
  await svc?.stop();
  await stack?.stop();
});

describe('storage pool sized by the controller from the real services', () => {
  it('grows with holders held back by the limit, on the telemetry of both agents', async () => {
    const storage = svc.client;
    // An agent's first batch has no rates (they need a previous reading): a quick start could
    // find both agents with one batch each. The sim's checkpoint mount writes a little between
    // saves: once rates come, those are bytes the controller sees.
    const first = await eventually('telemetry of both agents, with rates', async () => {
      const t = await storage.getTarget(TARGET);
      return t.telemetry?.nodes === 2 && t.telemetry.writeBytesPerSecond > 0 ? t : undefined;
    }, 30_000);
    expect(first.writePool).toMatchObject({ limit: 1, leases: 0 });
    expect(first.telemetry!.writeBytesPerSecond).toBeGreaterThan(0);

    const limits: number[] = [];
    const holders = Array.from({ length: HOLDERS }, (_, i) =>
      storage.acquire({ target: TARGET, mode: 'write', jobId: 'grow', attempt: 1, rank: i, node: `w${i}`, ttlMs: 30_000 }));
    // Awaited below; a failed test must not leave them as unhandled rejections when the client closes.
    for (const h of holders) h.catch(() => undefined);
    const grown = await eventually(`the write pool grown to its max ${MAX}`, async () => {
      const t = await storage.getTarget(TARGET);
      if (limits.at(-1) !== t.writePool!.limit) limits.push(t.writePool!.limit);
      return t.writePool!.limit === MAX && t.writePool!.leases === MAX ? t : undefined;
    }, 20_000, 50);
    // A step per interval, never more than doubling: 1 -> 2 -> 4 (a step may fall between two reads).
    expect(limits[0]).toBe(1);
    for (let i = 1; i < limits.length; i++) {
      expect(limits[i]!).toBeGreaterThan(limits[i - 1]!);
      expect(limits[i]!).toBeLessThanOrEqual(limits[i - 1]! * 2);
    }
    expect(grown.writePool!.waiters).toBe(HOLDERS - MAX);
    // The step that took it to the max (or a later one at the max) names the holders it saw waiting.
    const why = /^increase: (\d+) waiting on nodes under their cap, [\d.]+ of 250 GB\/s$/.exec(grown.writePool!.reason);
    expect(why, grown.writePool!.reason).not.toBeNull();
    expect(Number(why![1])).toBeGreaterThanOrEqual(HOLDERS - MAX);
    expect(Number(why![1])).toBeLessThan(HOLDERS);
    expect(grown.telemetry!.nodes).toBe(2);

    const show = await gantry(stack, 'storage', 'show', TARGET, '--checkpoint-addr', svc.addr, ...stack.internalClientFlags());
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(new RegExp(`^ {2}write +${MAX}/${MAX} leased \\(min 1, max ${MAX}, 1 per node\\), ${HOLDERS - MAX} waiting; increase: \\d+ waiting on nodes under their cap`, 'm'));
    expect(show.stdout).toMatch(/^ {2}telemetry +2 nodes, backlog [\d.]+, RTT [\d.]+ ms/m);
    const metrics = await svc.metrics();
    expect(metrics).toMatch(new RegExp(`gantry_storage_pool_size\\{target="${TARGET}",mode="write"[^}]*\\} ${MAX}\n`));

    // Everyone gets a turn as the leases come back; the pool is left at its max for the next test.
    const granted: StorageLease[] = [];
    for (const h of holders.slice(0, MAX)) granted.push(await h);
    for (const l of granted) await storage.release(l);
    for (const h of holders.slice(MAX)) await storage.release(await h);
    expect((await storage.getTarget(TARGET)).writePool).toMatchObject({ leases: 0, waiters: 0 });
  }, 90_000);

  it('an NFS stall on both agents\' checkpoint mount: a shared storage fault on the target, and the pool shrinks (degraded)', async () => {
    const storage = svc.client;
    // Baselines from quiet windows first (two 1 s buckets per node), as the health tests do.
    await eventually('both nodes evaluated', async () => ((await client.getClusterHealth()).nodesEvaluated === 2 ? true : undefined), 20_000);
    await new Promise((r) => setTimeout(r, 3_000));
    const before = await storage.getTarget(TARGET);
    expect(before.degraded).toBe(false);
    expect(before.writePool!.limit).toBe(MAX);

    for (const node of [0, 1]) await sim(stack, node, 'inject', 'nfs-stall', '--mount', '/mnt/checkpoints', '--duration', '600');
    const fault = await eventually('a shared storage fault on the checkpoint export', async () =>
      (await client.getClusterHealth()).sharedFaults.find((f) => f.kind === 'storage' && f.target === EXPORT && f.active), 30_000);
    expect(fault.degradedNodes).toEqual(['node-0', 'node-1']);
    expect(fault.totalNodes).toBe(2);

    const shrunk = await eventually('the pool shrunk on the verdict', async () => {
      const t = await storage.getTarget(TARGET);
      return t.degraded && t.writePool!.limit === 1 ? t : undefined;
    }, 15_000);
    // The degraded cap is a quarter of the max (DEFAULT_AIMD.degradedShare).
    expect(shrunk.writePool!.reason).toBe('decrease: target degraded (health), cap 1');
    const show = await gantry(stack, 'storage', 'show', TARGET, '--checkpoint-addr', svc.addr, ...stack.internalClientFlags());
    expect(show.stdout).toContain(`${TARGET}  /mnt/checkpoints  (${EXPORT})  DEGRADED (health: shared storage fault)`);
    expect(show.stdout).toMatch(/^ {2}write +0\/1 leased .*; decrease: target degraded \(health\), cap 1$/m);
    expect(await svc.metrics()).toMatch(new RegExp(`gantry_storage_degraded\\{target="${TARGET}"[^}]*\\} 1\n`));
  }, 90_000);
});
