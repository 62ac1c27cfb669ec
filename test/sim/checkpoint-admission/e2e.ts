// The second half of `pnpm bench:checkpoint`: the issue's end-to-end checks, run through the
// real services (a TestStack: nats-server, redis-server, scheduler, gateway, checkpoint service,
// one simulated agent; plus a checkpoint service with a storage target, as the storage e2e
// tests start it, test/e2e/storage-stack.ts):
//   1. N concurrent SDK writers against a write pool of K: the most leases held at once, as the
//      writers counted and as the service listed them, never above K;
//   2. a writer process holding a lease killed with SIGKILL: the time until the next in the
//      queue is granted its lease, against the lease TTL;
//   3. a DCP checkpoint written by a job that loses one storage file after its commit: the
//      agent's discovery marks it CORRUPT and GetLatestCheckpoint offers the one before it.
// Prints the figures, then PASS/FAIL lines; exits 1 on any FAIL.
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { CheckpointFormat, CheckpointState, JobState, type Checkpoint } from '@gantry/proto';
import { CheckpointClient, GantryClient } from '@gantry/sdk';
import { REPO_ROOT } from '../../../deploy/local/services.js';
import { eventually, TestStack } from '../../harness/stack.js';
import { waitForJob } from '../../harness/fixtures.js';
import { killWriterHoldingLease, runConcurrentWriters, startStorageService, type StorageService } from '../../e2e/storage-stack.js';

const WRITERS = Number(process.env.BENCH_E2E_WRITERS ?? 12);
const POOL = Number(process.env.BENCH_E2E_POOL ?? 3);
const TTL_MS = 2_000;
const TARGET = 'bench-ckpt';
/** A real DCP save's file list (.metadata names the three storage files). */
const DCP = join(REPO_ROOT, 'libs/checkpoint-layouts/test/fixtures/layouts/pytorch_dcp/ckpt');
const LOST = '__1_0.distcp';
/** From the lease's expiry to the waiter's grant: its next ask (every 100 ms at the head of the queue) and a Redis round trip. */
const WAITER_POLL_SLACK_MS = 250;

const load = () => loadavg().map((l) => l.toFixed(2)).join(', ');
const started = Date.now();
const verdicts: { pass: boolean; line: string }[] = [];
const verdict = (pass: boolean, what: string) => verdicts.push({ pass, line: `${pass ? 'PASS' : 'FAIL'}  end-to-end: ${what}` });

console.log(`\ncheckpoint admission through the real services (load average ${load()})`);
let stack: TestStack | undefined;
let svc: StorageService | undefined;
const gantry: { client?: GantryClient; ck?: CheckpointClient } = {};
try {
  stack = await new TestStack({ agents: 1, env: { 'node-agent': { TELEMETRY_INTERVAL_MS: '1000', CHECKPOINT_POLL_MS: '250' } } }).start();
  svc = await startStorageService(stack, [{
    name: TARGET, mountPrefix: '/mnt/checkpoints', serverExport: '10.0.0.11:/checkpoints',
    writeBytesPerSecond: 250e9, readBytesPerSecond: 700e9, leaseTtlMs: TTL_MS,
    write: { initial: POOL, min: POOL, max: POOL }, read: { initial: POOL, min: POOL, max: POOL },
  }], { name: 'checkpoint-bench' });
  console.log(`  stack up in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  const w = await runConcurrentWriters(svc, TARGET, { writers: WRITERS, rounds: 2 });
  console.log(`  ${WRITERS} SDK writers x 2 leases on a write pool of ${POOL}: ${w.granted} leases granted; at most ${w.peak} held at once (the writers' count), ${w.peakListed} listed by the service (${w.samples} reads, ${w.overLimit} above the limit)`);
  verdict(w.granted === WRITERS * 2 && w.peak <= POOL && w.peakListed <= POOL && w.overLimit === 0, `peak concurrent leases ${Math.max(w.peak, w.peakListed)} <= pool ${POOL} (${w.granted} of ${WRITERS * 2} granted)`);

  const k = await killWriterHoldingLease(svc, stack, TARGET, POOL, TTL_MS);
  const expires = k.expiresAfterMs ?? NaN;
  console.log(`  a writer process holding ${k.leaseId} (renewing every TTL/3, ${k.heldPastTtl ? 'still held' : 'LOST'} after 2 TTLs) killed with SIGKILL: its lease expired ${expires} ms after the kill (last renewal + TTL ${TTL_MS} ms); ${k.grantedTo} (first in the queue) granted it ${k.returnedAfterMs} ms after the kill`);
  // The waiter at the head of the queue asks again every 100 ms (POLL_MS in storage-service.ts).
  verdict(k.heldPastTtl && k.grantedTo === 'job-next' && expires <= TTL_MS && k.returnedAfterMs <= expires + WAITER_POLL_SLACK_MS,
    `killed writer's lease expired ${expires} ms after the kill (<= TTL ${TTL_MS} ms) and went to the next writer ${k.returnedAfterMs - expires} ms later (<= ${WAITER_POLL_SLACK_MS} ms)`);

  gantry.client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 5_000, retry: { maxAttempts: 20 } });
  gantry.ck = new CheckpointClient({ address: stack.checkpointAddr, timeoutMs: 5_000, tls: stack.internalClientTls });
  const dir = join(stack.workDir, 'ckpt');
  // DCP's order: the storage files, then .metadata; step-20 then loses a storage file and the job keeps running.
  const script = [
    `for s in 10 20; do mkdir -p "$GANTRY_CHECKPOINT_DIR/step-$s"; cp ${DCP}/__* "$GANTRY_CHECKPOINT_DIR/step-$s/"; cp ${DCP}/.metadata "$GANTRY_CHECKPOINT_DIR/step-$s/"; sleep 2; done`,
    `rm "$GANTRY_CHECKPOINT_DIR/step-20/${LOST}"`,
    'sleep 300',
  ].join('\n');
  const { job } = await gantry.client.submitJob({
    name: 'bench-dcp', nodes: 1, gpusPerNode: 1, stopGraceSeconds: 1, command: ['sh', '-c', script],
    checkpoint: { dir, format: CheckpointFormat.CHECKPOINT_FORMAT_DCP, storageTarget: '', retention: undefined },
  });
  const id = job!.id;
  const ck = gantry.ck;
  const step = (n: number, list: Checkpoint[]) => list.find((c) => c.step === n);
  let committed20 = false;
  const bad = await eventually('step-20 CORRUPT', async () => {
    const list = await ck.listCheckpoints(id);
    if (step(20, list)?.state === CheckpointState.CHECKPOINT_STATE_COMMITTED) committed20 = true;
    return step(20, list)?.state === CheckpointState.CHECKPOINT_STATE_CORRUPT ? step(20, list) : undefined;
  }, 45_000, 100);
  const latest = await ck.getLatestCheckpoint(id);
  const good = step(10, await ck.listCheckpoints(id));
  console.log(`  DCP step-20, ${LOST} removed after its commit (${committed20 || bad!.reason.includes('after commit') ? 'COMMITTED first' : 'never seen COMMITTED'}): ${CheckpointState[bad!.state]} (${bad!.reason}); step-10 ${good ? CheckpointState[good.state] : 'missing'}; GetLatestCheckpoint: ${latest ? `step-${latest.step} ${latest.path}` : 'none'}`);
  verdict(latest?.step === 10 && latest.path === join(dir, 'step-10') && bad!.reason.includes(LOST), `the DCP checkpoint with ${LOST} removed is CORRUPT and GetLatestCheckpoint offers step-10, not it`);
  await gantry.client.cancelJob(id, 'bench done');
  await waitForJob(gantry.client, id, [JobState.JOB_STATE_CANCELLED], 30_000).catch(() => undefined);
} catch (err) {
  verdict(false, `the run did not finish: ${(err as Error).message}`);
} finally {
  gantry.client?.close();
  gantry.ck?.close();
  await svc?.stop().catch(() => undefined);
  await stack?.stop().catch(() => undefined);
}
for (const v of verdicts) console.log(v.line);
const pass = verdicts.length === 3 && verdicts.every((v) => v.pass);
console.log(`\n${pass ? 'PASS' : 'FAIL'}: end-to-end through the real services; ${((Date.now() - started) / 1000).toFixed(1)} s wall, load average ${load()}`);
process.exitCode = pass ? 0 : 1;
