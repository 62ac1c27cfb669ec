// Storage admission from training code through the real services (issue 11): a Python rank
// (python/gantry_ckpt.py, the machine's python3) asks its agent's per-job endpoint "may I write
// now?" with `with gantry_ckpt.admitted("write")`; the agent forwards it to the checkpoint
// service's gRPC StorageService (GANTRY_CHECKPOINT_ADDR); the lease shows in the service and in
// `gantry storage show` while the block runs, and is gone once the rank said "I am done". A
// second rank of another job waits its turn in the FIFO queue (pool of 1), and a restart-style
// read lease is taken the same way. The stack's checkpoint service has the storage target whose
// mount prefix holds the jobs' checkpoint directories; its agent has the service's address.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointFormat, JobState, StorageLeaseMode, jobStateName } from '@gantry/proto';
import { GantryClient, StorageClient } from '@gantry/sdk';
import { REPO_ROOT } from '../../deploy/local/services.js';
import { eventually, TestStack } from '../harness/stack.js';
import { waitForJob } from '../harness/fixtures.js';
import { gantry } from '../harness/tools.js';

const TARGET = 'py-ckpt';
const NAMED = 'py-named';

let stack: TestStack;
let client: GantryClient;
let storage: StorageClient;
let addr = '';
// The storage target's mount prefix: the jobs' checkpoint directories lie under it.
const nfs = mkdtempSync(join(tmpdir(), 'gantry-py-nfs-'));

beforeAll(async () => {
  // Internal mTLS as the harness sets it (default on): the agent dials StorageService with its certificate.
  const s: TestStack = new TestStack({
    agents: 1,
    // The agent learns the checkpoint service's address (known once the stack picked its port).
    agentEnv: (): NodeJS.ProcessEnv => ({ GANTRY_CHECKPOINT_ADDR: s.checkpointAddr }),
    env: {
      checkpoint: {
        STORAGE_TARGETS: JSON.stringify([{
          name: TARGET, mountPrefix: nfs, serverExport: '10.0.0.12:/ckpt',
          writeBytesPerSecond: 250e9, readBytesPerSecond: 700e9, leaseTtlMs: 3_000,
          write: { initial: 1, min: 1, max: 1 }, read: { initial: 4, min: 1, max: 4 },
        }, {
          // Named by a job's checkpoint.storage_target; its prefix does not hold the job's directory.
          name: NAMED, mountPrefix: '/mnt/named-elsewhere', serverExport: '10.0.0.13:/named',
          writeBytesPerSecond: 250e9, readBytesPerSecond: 700e9, leaseTtlMs: 3_000,
          write: { initial: 1, min: 1, max: 1 }, read: { initial: 1, min: 1, max: 1 },
        }]),
      },
    },
  });
  stack = await s.start();
  addr = stack.checkpointAddr;
  client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 5_000, retry: { maxAttempts: 20 } });
  storage = new StorageClient({ address: addr, ...(stack.internalClientTls && { tls: stack.internalClientTls }) });
}, 120_000);

afterAll(async () => {
  storage?.close();
  client?.close();
  await stack?.stop();
  rmSync(nfs, { recursive: true, force: true });
});

/** A rank that takes a `mode` lease, records it, holds it until `go` exists, then gives it back. */
function rankScript(mode: 'write' | 'read', out: string, go: string): string {
  return [
    'import os, sys, time',
    `sys.path.insert(0, ${JSON.stringify(join(REPO_ROOT, 'python'))})`,
    'import gantry_ckpt as g',
    'waits = []',
    `with g.admitted(${JSON.stringify(mode)}, timeout=90, on_wait=waits.append) as lease:`,
    `    open(${JSON.stringify(out)}, "w").write("held %s %s waited=%d\\n" % (lease.id, lease.target, len(waits)))`,
    `    while not os.path.exists(${JSON.stringify(go)}):`,
    '        time.sleep(0.1)',
    '    assert not lease.lost.is_set()',
    `open(${JSON.stringify(out)}, "a").write("released\\n")`,
  ].join('\n');
}

const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : '');

describe('storage admission from Python through the agent', () => {
  it('a rank acquires a write lease with gantry_ckpt.admitted, the service and gantry storage show list it, a second job waits its turn, and release hands it over', async () => {
    const jobs: { id: string; out: string; go: string }[] = [];
    for (const name of ['a', 'b']) {
      const out = join(stack.workDir, `py-${name}.out`);
      const go = join(stack.workDir, `py-${name}.go`);
      const { job } = await client.submitJob({
        name: `py-lease-${name}`, nodes: 1, gpusPerNode: 1, command: ['python3', '-c', rankScript('write', out, go)],
        // A proxy in the job's environment (a dead port) must not carry the loopback calls and their token.
        env: { http_proxy: 'http://127.0.0.1:9', HTTP_PROXY: 'http://127.0.0.1:9' },
        checkpoint: { dir: join(nfs, name), format: CheckpointFormat.CHECKPOINT_FORMAT_UNSPECIFIED, storageTarget: '', retention: undefined },
      });
      jobs.push({ id: job!.id, out, go });
      // b is submitted once a holds the lease, so the queue order is known
      if (name === 'a') await eventually('job a holds the lease', () => read(out).startsWith('held') || undefined, 60_000);
    }
    const [a, b] = jobs as [typeof jobs[0], typeof jobs[0]];
    expect(read(a.out)).toBe(`held w:${a.id}:1:0 ${TARGET} waited=0\n`);

    // The service shows a's lease (holder from the agent: job, attempt, rank, node) and b waiting.
    const t = await eventually('b waiting', async () => {
      const got = await storage.getTarget(TARGET);
      return got.waiters.length === 1 ? got : undefined;
    }, 30_000);
    expect(t.leases.map((l) => ({ id: l.id, mode: l.mode, job: l.holder?.jobId, node: l.holder?.node }))).toEqual([{ id: `w:${a.id}:1:0`, mode: StorageLeaseMode.STORAGE_LEASE_MODE_WRITE, job: a.id, node: 'node-0' }]);
    expect(t.waiters[0]!.holder?.jobId).toBe(b.id);
    const show = await gantry(stack, 'storage', 'show', TARGET, '--checkpoint-addr', addr, ...stack.internalClientFlags());
    expect(show.code).toBe(0);
    expect(show.stdout).toContain(`w:${a.id}:1:0`);
    expect(show.stdout).toMatch(/write\s+1\/1 leased/);
    expect(read(b.out)).toBe('');

    // "I am done": a releases, b gets the lease without waiting for a TTL.
    writeFileSync(a.go, '');
    await eventually('b holds the lease', () => read(b.out).startsWith('held') || undefined, 30_000);
    // a writes "released" once its release call returns, which can be after b was granted.
    await eventually('a records its release', () => read(a.out).endsWith('released\n') || undefined, 30_000);
    expect(read(a.out)).toBe(`held w:${a.id}:1:0 ${TARGET} waited=0\nreleased\n`);
    // b's acquire waited at the service (wait_ms) and was granted by the same call
    expect(read(b.out)).toMatch(new RegExp(`^held w:${b.id}:1:0 ${TARGET} waited=\\d+\\n$`));
    const during = await storage.getTarget(TARGET);
    expect(during.leases.map((l) => l.holder?.jobId)).toEqual([b.id]);
    writeFileSync(b.go, '');
    for (const j of jobs) expect(jobStateName((await waitForJob(client, j.id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 60_000)).state)).toBe('SUCCEEDED');
    expect(read(b.out)).toContain('released\n');
    const after = await storage.getTarget(TARGET);
    expect(after.leases).toEqual([]);
    expect(after.waiters).toEqual([]);
  });

  it('a resuming rank takes a read lease the same way; bad input gets a clear error', async () => {
    const out = join(stack.workDir, 'py-read.out');
    const go = join(stack.workDir, 'py-read.go');
    const errs = join(stack.workDir, 'py-errs.out');
    const py = [
      rankScript('read', out, go),
      'import json, urllib.request',
      'def post(route, body):',
      '    req = urllib.request.Request(os.environ["GANTRY_CKPT_URL"] + route, data=json.dumps(body).encode(), method="POST", headers={"Authorization": "Bearer " + os.environ["GANTRY_CKPT_TOKEN"]})',
      '    try:',
      '        urllib.request.urlopen(req)',
      '        return "200"',
      '    except urllib.error.HTTPError as e:',
      '        return "%d %s" % (e.code, json.loads(e.read())["error"])',
      'res = [post("/v1/storage/acquire", {"mode": "append"}), post("/v1/storage/release", {"lease_id": "w:someone-else:1:0"})]',
      `open(${JSON.stringify(errs)}, "w").write("\\n".join(res))`,
    ].join('\n');
    const { job } = await client.submitJob({
      name: 'py-lease-read', nodes: 1, gpusPerNode: 1, command: ['python3', '-c', py],
      checkpoint: { dir: join(nfs, 'r'), format: CheckpointFormat.CHECKPOINT_FORMAT_UNSPECIFIED, storageTarget: '', retention: undefined },
    });
    const id = job!.id;
    await eventually('read lease held', () => read(out).startsWith('held') || undefined, 60_000);
    expect(read(out)).toBe(`held r:${id}:1:0 ${TARGET} waited=0\n`);
    const t = await storage.getTarget(TARGET);
    expect(t.readPool!.leases).toBe(1);
    expect(t.leases.map((l) => [l.id, l.mode])).toEqual([[`r:${id}:1:0`, StorageLeaseMode.STORAGE_LEASE_MODE_READ]]);
    writeFileSync(go, '');
    expect(jobStateName((await waitForJob(client, id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 60_000)).state)).toBe('SUCCEEDED');
    expect(read(errs)).toBe(`400 mode must be "write" or "read"\n403 lease w:someone-else:1:0 does not belong to job ${id} attempt 1`);
    expect((await storage.getTarget(TARGET)).readPool!.leases).toBe(0);
  });

  it("a job that names its storage target takes its leases there, not on the target whose prefix holds its directory", async () => {
    const out = join(stack.workDir, 'py-named.out');
    const go = join(stack.workDir, 'py-named.go');
    const { job } = await client.submitJob({
      name: 'py-lease-named', nodes: 1, gpusPerNode: 1, command: ['python3', '-c', rankScript('write', out, go)],
      checkpoint: { dir: join(nfs, 'n'), format: CheckpointFormat.CHECKPOINT_FORMAT_UNSPECIFIED, storageTarget: NAMED, retention: undefined },
    });
    const id = job!.id;
    await eventually('write lease on the named target', () => read(out).startsWith('held') || undefined, 60_000);
    expect(read(out)).toBe(`held w:${id}:1:0 ${NAMED} waited=0\n`);
    expect((await storage.getTarget(NAMED)).writePool!.leases).toBe(1);
    expect((await storage.getTarget(TARGET)).writePool!.leases).toBe(0);
    writeFileSync(go, '');
    expect(jobStateName((await waitForJob(client, id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 60_000)).state)).toBe('SUCCEEDED');
  });
});
