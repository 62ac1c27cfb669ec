// What the storage admission e2e tests and the second half of `pnpm bench:checkpoint`
// (test/sim/checkpoint-admission/e2e.ts) share, so both measure the same thing the same way:
//   - a checkpoint service started beside a TestStack with storage targets and the
//     scheduler's address (its controller reads the agents' telemetry and the cluster health
//     over NodeService gRPC; the stack's own checkpoint service has no SCHEDULER_ADDR);
//   - concurrent SDK writers, with the most leases held at once as the writers saw it and as
//     the service reported it;
//   - a writer process holding a lease killed with SIGKILL, and how long its lease takes to
//     reach the next in the queue.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { StorageClient } from '@gantry/sdk';
import type { StorageLease, StorageTarget } from '@gantry/proto';
import { portOpen, REPO_ROOT, serviceCommand } from '../../deploy/local/services.js';
import { freePort } from '../harness/ports.js';
import { ManagedProcess } from '../harness/process.js';
import type { TestStack } from '../harness/stack.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface StorageService {
  process: ManagedProcess;
  addr: string;
  metricsPort: number;
  httpPort: number;
  /** A client of its StorageService (with the stack's client certificate under internal mTLS). */
  client: StorageClient;
  /** Another client (each concurrent writer has its own connection, as separate ranks would). */
  newClient(): StorageClient;
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

/** Starts a checkpoint service with `targets` (STORAGE_TARGETS) whose controller steps every `controlMs`. */
export async function startStorageService(stack: TestStack, targets: unknown[], { name = 'checkpoint-storage', controlMs = 500, env = {} }: { name?: string; controlMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<StorageService> {
  const [port, metricsPort, httpPort] = [await freePort(), await freePort(), await freePort()];
  const addr = `127.0.0.1:${port}`;
  const { command, args, cwd } = serviceCommand('checkpoint');
  const proc = new ManagedProcess({
    name, command, args, cwd,
    env: {
      NATS_URL: stack.nats.url, REDIS_URL: stack.redisServer.url, LOG_LEVEL: 'debug', METRICS_PORT: String(metricsPort),
      ...stack.busEnv('checkpoint'),
      CHECKPOINT_GRPC_PORT: String(port),
      SCHEDULER_ADDR: stack.schedulerAddrs.join(','),
      ...stack.internalTlsEnv('checkpoint'),
      STORAGE_CONTROL_MS: String(controlMs),
      STORAGE_HTTP_PORT: String(httpPort),
      STORAGE_TARGETS: JSON.stringify(targets),
      ...env,
    },
    logFile: join(stack.workDir, 'logs', `${name}.log`),
    ready: () => portOpen(port),
  });
  await proc.start();
  const newClient = () => new StorageClient({ address: addr, tls: stack.internalClientTls });
  const client = newClient();
  return {
    process: proc, addr, metricsPort, httpPort, client, newClient,
    metrics: async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text(),
    async stop() {
      client.close();
      await proc.stop('SIGTERM', 5_000);
    },
  };
}

export interface WritersResult {
  /** Most writers inside their lease at once, as the writers counted. */
  peak: number;
  /** Most write leases the service listed at once, over `samples` reads of the target while they ran. */
  peakListed: number;
  samples: number;
  /** Reads in which the service listed more write leases than its limit. */
  overLimit: number;
  /** Leases taken (writers x rounds when every writer got its turns). */
  granted: number;
}

/**
 * `writers` SDK clients (4 jobs, one node each) take a write lease on `target` `rounds` times
 * each, hold it for a short "write" and give it back; the target is read every 20 ms meanwhile.
 */
export async function runConcurrentWriters(svc: StorageService, target: string, { writers = 12, rounds = 2 }: { writers?: number; rounds?: number } = {}): Promise<WritersResult> {
  let inside = 0;
  const r: WritersResult = { peak: 0, peakListed: 0, samples: 0, overLimit: 0, granted: 0 };
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const t: StorageTarget = await svc.client.getTarget(target);
      const held = t.leases.filter((l) => l.mode === t.writePool!.mode).length;
      r.samples++;
      r.peakListed = Math.max(r.peakListed, held, t.writePool!.leases);
      if (t.writePool!.leases > t.writePool!.limit || held > t.writePool!.limit) r.overLimit++;
      await sleep(20);
    }
  })();
  try {
    await Promise.all(Array.from({ length: writers }, async (_, w) => {
      const own = svc.newClient();
      try {
        for (let round = 0; round < rounds; round++) {
          await own.withStorageLease({ target, mode: 'write', jobId: `job-${w % 4}`, attempt: 1, rank: w * 10 + round, node: `n${w}` }, async () => {
            r.granted++;
            inside++;
            r.peak = Math.max(r.peak, inside);
            await sleep(60 + (w % 5) * 20);
            inside--;
          });
        }
      } finally {
        own.close();
      }
    }));
  } finally {
    sampling = false;
    await sampler;
  }
  return r;
}

export interface KilledWriterResult {
  /** The killed writer's lease id. */
  leaseId: string;
  /** Whether its lease was still listed after 2 TTLs (it renews while it runs). */
  heldPastTtl: boolean;
  /** The queue before the kill: [job, position] per waiter. */
  queue: [string, number][];
  /** From the SIGKILL to the waiter's grant. */
  returnedAfterMs: number;
  /** From the SIGKILL to the killed lease's expiry (its last renewal + TTL), as listed right after the kill; undefined if it was gone already. */
  expiresAfterMs: number | undefined;
  /** Who got it. */
  grantedTo: string;
  /** Lease ids held right after the grant. */
  leasesAfter: string[];
}

/**
 * Fills the `pool` of `target` with a writer process (test/e2e/storage-admission.writer.ts,
 * renewing through the SDK) and in-process holders, queues one waiter, kills the writer with
 * SIGKILL and times the waiter's grant. Every lease it took is given back before it returns.
 */
export async function killWriterHoldingLease(svc: StorageService, stack: TestStack, target: string, pool: number, ttlMs: number): Promise<KilledWriterResult> {
  const writer = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'test/e2e/storage-admission.writer.ts'), svc.addr, target, 'job-killed', '0', String(ttlMs), ...stack.internalClientFlags()], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const held: StorageLease[] = [];
  try {
    let out = '';
    writer.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    writer.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    for (let i = 0; i < 300 && !out.includes('LEASED'); i++) await sleep(100);
    const leaseId = /LEASED (\S+)/.exec(out)?.[1];
    if (!leaseId) throw new Error(`the writer took no lease in 30 s: ${out.slice(-500)}`);
    held.push(...await Promise.all(Array.from({ length: pool - 1 }, (_, i) => svc.client.acquire({ target, mode: 'write', jobId: 'job-other', attempt: 1, rank: i + 1, ttlMs: 60_000 }))));
    await sleep(ttlMs * 2);
    const heldPastTtl = (await svc.client.getTarget(target)).leases.some((l) => l.id === leaseId);
    const waiter = svc.client.acquire({ target, mode: 'write', jobId: 'job-next', attempt: 1, rank: 0, ttlMs: 60_000 });
    let queue: [string, number][] = [];
    for (let i = 0; i < 50 && queue.length === 0; i++) {
      await sleep(100);
      queue = (await svc.client.getTarget(target)).waiters.map((w) => [w.holder?.jobId ?? '', w.position]);
    }
    const killedAt = Date.now();
    writer.kill('SIGKILL');
    const expiresAt = (await svc.client.getTarget(target)).leases.find((l) => l.id === leaseId)?.expiresAt;
    const granted = await waiter;
    const returnedAfterMs = Date.now() - killedAt;
    held.push(granted);
    const leasesAfter = (await svc.client.getTarget(target)).leases.map((l) => l.id).sort();
    return { leaseId, heldPastTtl, queue, returnedAfterMs, expiresAfterMs: expiresAt && expiresAt.getTime() - killedAt, grantedTo: granted.holder?.jobId ?? '', leasesAfter };
  } finally {
    if (writer.exitCode === null) writer.kill('SIGKILL');
    for (const l of held) await svc.client.release(l).catch(() => undefined);
  }
}
