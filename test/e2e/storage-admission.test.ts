// Storage admission through the real services: a TestStack (nats-server, redis-server,
// scheduler, gateway, one simulated agent) plus a checkpoint service started here with a
// storage target and the scheduler's address (the controller reads telemetry and health over
// NodeService gRPC). Concurrent SDK writers never hold more leases than the pool, and a writer
// process killed with SIGKILL gives its lease back within its TTL, to the next in the queue.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GetClusterHealthResponse, JobState } from '@gantry/proto';
import { GantryClient, StorageClient } from '@gantry/sdk';
import { keys } from '@gantry/store';
import { portOpen, serviceCommand } from '../../deploy/local/services.js';
import { freePort } from '../harness/ports.js';
import { ManagedProcess } from '../harness/process.js';
import { TestStack } from '../harness/stack.js';

const REPO_ROOT = join(import.meta.dirname, '../..');
const TARGET = 'ckpt';
const POOL = 3;
const TTL_MS = 2_000;

let stack: TestStack;
let checkpoint: ManagedProcess;
let addr = '';
let metricsPort = 0;
let httpPort = 0;
let client: StorageClient;
const children: ChildProcess[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  stack = await new TestStack({ agents: 1, env: { 'node-agent': { TELEMETRY_INTERVAL_MS: '1000' } } }).start();
  const port = await freePort();
  metricsPort = await freePort();
  httpPort = await freePort();
  addr = `127.0.0.1:${port}`;
  const { command, args, cwd } = serviceCommand('checkpoint');
  checkpoint = new ManagedProcess({
    name: 'checkpoint-storage', command, args, cwd,
    env: {
      NATS_URL: stack.nats.url, REDIS_URL: stack.redisServer.url, LOG_LEVEL: 'debug', METRICS_PORT: String(metricsPort),
      ...stack.busEnv('checkpoint'),
      CHECKPOINT_GRPC_PORT: String(port),
      SCHEDULER_ADDR: stack.schedulerAddrs.join(','),
      ...stack.internalTlsEnv('checkpoint'),
      STORAGE_CONTROL_MS: '500',
      STORAGE_HTTP_PORT: String(httpPort),
      STORAGE_TARGETS: JSON.stringify([{
        name: TARGET, mountPrefix: '/mnt/checkpoints', serverExport: '10.0.0.11:/checkpoints',
        writeBytesPerSecond: 250e9, readBytesPerSecond: 700e9, leaseTtlMs: TTL_MS,
        write: { initial: POOL, min: POOL, max: POOL }, read: { initial: POOL, min: POOL, max: POOL },
      }, {
        name: 'ckpt2', mountPrefix: '/mnt/other', serverExport: '10.0.0.99:/degraded',
        writeBytesPerSecond: 100e9, readBytesPerSecond: 100e9, write: { initial: 8, min: 1, max: 8 },
      }]),
    },
    logFile: join(stack.workDir, 'logs', 'checkpoint-storage.log'),
    ready: () => portOpen(port),
  });
  await checkpoint.start();
  client = new StorageClient({ address: addr, tls: stack.internalClientTls });
}, 120_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  client?.close();
  await checkpoint?.stop('SIGTERM', 5_000);
  await stack?.stop();
});

describe('storage admission e2e', () => {
  it('concurrent writers never hold more leases than the pool, and every one gets its turn', async () => {
    let inside = 0;
    let peak = 0;
    let overServer = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const t = await client.getTarget(TARGET);
        if (t.writePool!.leases > POOL || t.leases.filter((l) => l.mode === t.writePool!.mode).length > POOL) overServer++;
        await sleep(20);
      }
    })();
    const writers = Array.from({ length: 12 }, async (_, w) => {
      const own = new StorageClient({ address: addr, tls: stack.internalClientTls });
      try {
        for (let round = 0; round < 2; round++) {
          await own.withStorageLease({ target: TARGET, mode: 'write', jobId: `job-${w % 4}`, attempt: 1, rank: w * 10 + round, node: `n${w}` }, async () => {
            inside++;
            peak = Math.max(peak, inside);
            await sleep(60 + (w % 5) * 20);
            inside--;
          });
        }
      } finally {
        own.close();
      }
    });
    await Promise.all(writers);
    sampling = false;
    await sampler;
    expect(peak).toBe(POOL);
    expect(overServer).toBe(0);
    const t = await client.getTarget(TARGET);
    expect(t.writePool).toMatchObject({ leases: 0, waiters: 0, limit: POOL });
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`gantry_storage_pool_size\\{target="${TARGET}",mode="write"[^}]*\\} ${POOL}\n`));
    expect(metrics).toMatch(/gantry_storage_leases\{target="ckpt",mode="write"[^}]*\} 0\n/);
    expect(metrics).toMatch(/gantry_storage_waiters\{target="ckpt",mode="write"[^}]*\} 0\n/);
  }, 120_000);

  it("a killed writer's lease returns within its TTL, to the first waiter", async () => {
    // Fill the pool with a renewing writer process and two in-process holders.
    const writer = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'test/e2e/storage-admission.writer.ts'), addr, TARGET, 'job-killed', '0', String(TTL_MS), ...stack.internalClientFlags()], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(writer);
    let out = '';
    writer.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    writer.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    for (let i = 0; i < 300 && !out.includes('LEASED'); i++) await sleep(100);
    expect(out).toContain('LEASED w:job-killed:1:0');
    const held = await Promise.all([1, 2].map((rank) => client.acquire({ target: TARGET, mode: 'write', jobId: 'job-other', attempt: 1, rank, ttlMs: 60_000 })));
    // The writer renews: its lease outlives several TTLs while it runs.
    await sleep(TTL_MS * 2);
    let t = await client.getTarget(TARGET);
    expect(t.leases.map((l) => l.id)).toContain('w:job-killed:1:0');
    // A waiter queues behind the full pool.
    const waiter = client.acquire({ target: TARGET, mode: 'write', jobId: 'job-next', attempt: 1, rank: 0, ttlMs: 60_000 });
    await sleep(300);
    t = await client.getTarget(TARGET);
    expect(t.waiters.map((w) => [w.holder?.jobId, w.position])).toEqual([['job-next', 0]]);
    const killedAt = Date.now();
    writer.kill('SIGKILL');
    const granted = await waiter;
    const after = Date.now() - killedAt;
    expect(granted.holder?.jobId).toBe('job-next');
    expect(after).toBeLessThanOrEqual(TTL_MS + 500);
    t = await client.getTarget(TARGET);
    expect(t.leases.map((l) => l.id).sort()).toEqual(['w:job-next:1:0', 'w:job-other:1:1', 'w:job-other:1:2']);
    for (const l of [...held, granted]) await client.release(l);
    console.log(`killed writer's lease returned after ${after} ms (TTL ${TTL_MS} ms)`);
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
      const r = await fetch(`http://127.0.0.1:${httpPort}/v1/storage/${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
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
    const targets = (await (await fetch(`http://127.0.0.1:${httpPort}/v1/storage/targets`)).json()) as { targets: { name: string; rpcSlots: number }[] };
    expect(targets.targets.map((t) => [t.name, t.rpcSlots])).toEqual([[TARGET, 128], ['ckpt2', 128]]);
  });

  it('shrinks the pool of a target the health detector flags (GetClusterHealth over gRPC)', async () => {
    // Stands in for the detector's verdict: the scheduler serves GetClusterHealth from this key;
    // the checkpoint service reads it through the scheduler's gRPC API like any other.
    const verdict = GetClusterHealthResponse.fromPartial({
      evaluatedAt: new Date(),
      sharedFaults: [{ kind: 'storage', target: '10.0.0.99:/degraded', active: true, since: new Date(), degradedNodes: ['node-0'], totalNodes: 1, signals: ['nfs rtt'] }],
    });
    let t = await client.getTarget('ckpt2');
    expect(t).toMatchObject({ degraded: false, writePool: { limit: 8 } });
    for (let i = 0; i < 40 && !t.degraded; i++) {
      // The detector rewrites the key once a window (60 s): write it again until seen.
      if (i % 8 === 0) await stack.redis.set(keys.healthCluster, JSON.stringify(GetClusterHealthResponse.toJSON(verdict)));
      await sleep(250);
      t = await client.getTarget('ckpt2');
    }
    expect(t.degraded).toBe(true);
    expect(t.writePool!.limit).toBeLessThanOrEqual(2);
    expect(t.writePool!.reason).toMatch(/degraded/);
    expect((await client.getTarget(TARGET)).degraded).toBe(false);
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/gantry_storage_degraded\{target="ckpt2"[^}]*\} 1\n/);
    await stack.redis.del(keys.healthCluster);
  }, 60_000);

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
