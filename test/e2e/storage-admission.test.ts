// Storage admission through the real services: a TestStack (nats-server, redis-server,
// scheduler, gateway, one simulated agent) plus a checkpoint service started here with a
// storage target and the scheduler's address (the controller reads telemetry and health over
// NodeService gRPC; storage-stack.ts). Concurrent SDK writers never hold more leases than the
// pool, and a writer process killed with SIGKILL gives its lease back within its TTL, to the
// next in the queue. The pool's adaptive size and its shrink on a health verdict are in
// storage-admission-control.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobState } from '@gantry/proto';
import { GantryClient, type StorageClient } from '@gantry/sdk';
import { TestStack } from '../harness/stack.js';
import { killWriterHoldingLease, runConcurrentWriters, startStorageService, type StorageService } from './storage-stack.js';

const TARGET = 'ckpt';
const POOL = 3;
const TTL_MS = 2_000;

let stack: TestStack;
let svc: StorageService;
let client: StorageClient;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  stack = await new TestStack({ agents: 1, env: { 'node-agent': { TELEMETRY_INTERVAL_MS: '1000' } } }).start();
  svc = await startStorageService(stack, [{
    name: TARGET, mountPrefix: '/mnt/checkpoints', serverExport: '10.0.0.11:/checkpoints',
    writeBytesPerSecond: 250e9, readBytesPerSecond: 700e9, leaseTtlMs: TTL_MS,
    write: { initial: POOL, min: POOL, max: POOL }, read: { initial: POOL, min: POOL, max: POOL },
  }]);
  client = svc.client;
}, 120_000);

afterAll(async () => {
  await svc?.stop();
  await stack?.stop();
});

describe('storage admission e2e', () => {
  it('concurrent writers never hold more leases than the pool, and every one gets its turn', async () => {
    const r = await runConcurrentWriters(svc, TARGET, { writers: 12, rounds: 2 });
    expect(r.granted).toBe(24);
    expect(r.peak).toBe(POOL);
    expect(r.peakListed).toBe(POOL);
    expect(r.overLimit).toBe(0);
    expect(r.samples).toBeGreaterThan(5);
    const t = await client.getTarget(TARGET);
    expect(t.writePool).toMatchObject({ leases: 0, waiters: 0, limit: POOL });
    const metrics = await svc.metrics();
    expect(metrics).toMatch(new RegExp(`gantry_storage_pool_size\\{target="${TARGET}",mode="write"[^}]*\\} ${POOL}\n`));
    expect(metrics).toMatch(/gantry_storage_leases\{target="ckpt",mode="write"[^}]*\} 0\n/);
    expect(metrics).toMatch(/gantry_storage_waiters\{target="ckpt",mode="write"[^}]*\} 0\n/);
  }, 120_000);

  it("a killed writer's lease returns within its TTL, to the first waiter", async () => {
    const r = await killWriterHoldingLease(svc, stack, TARGET, POOL, TTL_MS);
    expect(r.leaseId).toBe('w:job-killed:1:0');
    // The writer renews: its lease outlives several TTLs while it runs.
    expect(r.heldPastTtl).toBe(true);
    expect(r.queue).toEqual([['job-next', 0]]);
    expect(r.grantedTo).toBe('job-next');
    expect(r.returnedAfterMs).toBeLessThanOrEqual(TTL_MS + 500);
    expect(r.leasesAfter).toEqual(['w:job-next:1:0', 'w:job-other:1:1', 'w:job-other:1:2']);
    console.log(`killed writer's lease returned after ${r.returnedAfterMs} ms (TTL ${TTL_MS} ms)`);
  }, 120_000);

  it('the controller reads the agents\' NFS telemetry through the scheduler', async () => {
    let nodes = 0;
    for (let i = 0; i < 60 && nodes === 0; i++) {
      nodes = (await client.getTarget(TARGET)).telemetry?.nodes ?? 0;
      if (!nodes) await sleep(250);
    }
    expect(nodes).toBe(1);
    const t = await client.getTarget(TARGET);
    expect(t.writePool!.reason).not.toBe('initial');
    expect(t.degraded).toBe(false);
  }, 60_000);

  it('serves the same calls as JSON over HTTP (the contract for clients without gRPC)', async () => {
    const post = async (path: string, body: unknown) => {
      const r = await fetch(`http://127.0.0.1:${svc.httpPort}/v1/storage/${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
      return { status: r.status, json: (await r.json()) as Record<string, unknown> };
    };
    const holder = { job_id: 'job-py', attempt: 1, rank: 5, node: 'py-node' };
    const got = await post('leases:acquire', { path: '/mnt/checkpoints/job-py/step-10', mode: 'write', holder, ttl_ms: 5000, wait_ms: 1000 });
    expect(got.status).toBe(200);
    expect(got.json).toMatchObject({ granted: true, lease: { id: 'w:job-py:1:5', target: TARGET, mode: 'STORAGE_LEASE_MODE_WRITE' } });
    expect((await post('leases:renew', { target: TARGET, lease_id: 'w:job-py:1:5' })).status).toBe(200);
    expect((await post('leases:release', { target: TARGET, lease_id: 'w:job-py:1:5' })).json).toEqual({ released: 1 });
    const gone = await post('leases:renew', { target: TARGET, lease_id: 'w:job-py:1:5' });
    expect(gone).toMatchObject({ status: 404, json: { code: 'NOT_FOUND' } });
    expect((await post('leases:acquire', { target: 'nope', mode: 'write', holder })).status).toBe(404);
    expect((await post('leases:acquire', { target: TARGET, mode: 'write', holder: {} })).json).toMatchObject({ code: 'INVALID_ARGUMENT' });
    const targets = (await (await fetch(`http://127.0.0.1:${svc.httpPort}/v1/storage/targets`)).json()) as { targets: { name: string; rpcSlots: number }[] };
    expect(targets.targets.map((t) => [t.name, t.rpcSlots])).toEqual([[TARGET, 128]]);
  });

  it("releases a job attempt's leases once the scheduler says the attempt is over (cancel), before the TTL", async () => {
    const gantry = new GantryClient({ address: stack.gatewayAddr });
    try {
      const { job } = await gantry.submitJob({ name: 'storage-writer', nodes: 1, gpusPerNode: 1, command: ['sleep', '300'] });
      let current = await gantry.getJob(job!.id);
      for (let i = 0; i < 120 && current.state !== JobState.JOB_STATE_RUNNING; i++) {
        await sleep(250);
        current = await gantry.getJob(job!.id);
      }
      expect(current.state).toBe(JobState.JOB_STATE_RUNNING);
      const lease = await client.acquire({ target: TARGET, mode: 'write', jobId: job!.id, attempt: current.attempt, rank: 0, ttlMs: 60_000 });
      await sleep(1_200); // a few controller rounds: a running attempt keeps its lease
      expect((await client.getTarget(TARGET)).leases.map((l) => l.id)).toContain(lease.id);
      const cancelledAt = Date.now();
      await gantry.cancelJob(job!.id, 'storage e2e');
      let ids = [lease.id];
      for (let i = 0; i < 40 && ids.includes(lease.id); i++) {
        await sleep(250);
        ids = (await client.getTarget(TARGET)).leases.map((l) => l.id);
      }
      expect(ids).not.toContain(lease.id);
      console.log(`cancelled job's lease released after ${Date.now() - cancelledAt} ms (lease TTL 60 s)`);
    } finally {
      gantry.close();
    }
  }, 90_000);
});
