// Storage admission for training code that does not ask (issue 11): a job with
// checkpoint.admit_flushes gets the agent's libgantry-admit.so preloaded into its ranks, and
// the plain Python below (open/write/close, os.fsync, and a C stdio fopen/fwrite/fclose through
// libc) has each flush of a file in GANTRY_CHECKPOINT_DIR wait for a write lease from the real
// checkpoint service, through the agent's per-job endpoint. Shown through the real stack:
//   - while an outside holder has the target's only write lease, the job's closes do not
//     return, and the service lists its ranks as waiters; a job without the opt-in finishes its
//     closes meanwhile and never asks;
//   - once the lease is given back, the ranks' flushes are admitted one at a time (the shim's
//     held intervals, CLOCK_MONOTONIC like Python's time.monotonic, never overlap across ranks);
//   - a flush whose agent cannot be reached (stopped, or a port nobody listens on), or refuses,
//     goes ahead with one line on stderr, and the job finishes;
//   - a job asking for it on an agent without the shim fails with that reason; one whose
//     directory no storage target holds is refused at submit.
// node-0's agent has the shim (built here with pnpm build:admit when dist/ lacks it or it is
// older than its source); node-1's has none.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobState, Launcher, jobStateName } from '@gantry/proto';
import { GantryClient, StorageClient, checkpointSpec, type JobSpecInput } from '@gantry/sdk';
import { REPO_ROOT } from '../../deploy/local/services.js';
import { eventually, TestStack } from '../harness/stack.js';
import { waitForJob } from '../harness/fixtures.js';
import { gantry } from '../harness/tools.js';

const TARGET = 'flush-nfs';
const SHIM = join(REPO_ROOT, 'dist', 'libgantry-admit.so');
const SOURCE = join(REPO_ROOT, 'services/node-agent/native/gantry-admit.c');

let stack: TestStack;
let client: GantryClient;
let storage: StorageClient;
// The storage target's mount prefix: the jobs' checkpoint directories lie under it.
const nfs = mkdtempSync(join(tmpdir(), 'gantry-flush-nfs-'));

beforeAll(async () => {
  if (!existsSync(SHIM) || statSync(SHIM).mtimeMs < statSync(SOURCE).mtimeMs) {
    const b = spawnSync('pnpm', ['-s', 'build:admit'], { cwd: REPO_ROOT, encoding: 'utf8' });
    if (b.status !== 0) throw new Error(`pnpm build:admit failed: ${b.stderr}`);
  }
  const s: TestStack = new TestStack({
    agents: 2,
    agentEnv: (i): NodeJS.ProcessEnv => ({ GANTRY_CHECKPOINT_ADDR: s.checkpointAddr, ...(i === 0 && { GANTRY_ADMIT_SHIM: SHIM }) }),
    env: {
      checkpoint: {
        STORAGE_TARGETS: JSON.stringify([{
          name: TARGET, mountPrefix: nfs, serverExport: '10.0.0.21:/ckpt',
          writeBytesPerSecond: 250e9, readBytesPerSecond: 700e9, leaseTtlMs: 3_000,
          write: { initial: 1, min: 1, max: 1 }, read: { initial: 1, min: 1, max: 1 },
        }]),
      },
    },
  });
  stack = await s.start();
  client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 5_000, retry: { maxAttempts: 20 } });
  storage = new StorageClient({ address: stack.checkpointAddr, ...(stack.internalClientTls && { tls: stack.internalClientTls }) });
}, 120_000);

afterAll(async () => {
  storage?.close();
  client?.close();
  await stack?.stop();
  rmSync(nfs, { recursive: true, force: true });
});

/**
 * Unmodified training code: writes three 1 MiB files into its checkpoint directory and records
 * (outside it) Python's monotonic time around each flush.
 */
function writerScript(times: string): string {
  return [
    'import ctypes, os, time',
    'rank = os.environ.get("RANK", "0")',
    'd = os.environ["GANTRY_CHECKPOINT_DIR"]',
    'os.makedirs(d, exist_ok=True)',
    `out = open(os.path.join(${JSON.stringify(times)}, "%s-%s" % (os.environ["GANTRY_JOB_ID"], rank)), "w", buffering=1)`,
    'out.write("preload %s\\n" % os.environ.get("LD_PRELOAD", "-"))',
    'data = os.urandom(1 << 20)',
    'def timed(name, fn):',
    '    out.write("start %s %.6f\\n" % (name, time.monotonic()))',
    '    fn()',
    '    out.write("end %s %.6f\\n" % (name, time.monotonic()))',
    'f = open(os.path.join(d, "r%s-plain.bin" % rank), "wb")',
    'f.write(data)',
    'timed("plain", f.close)',
    'f = open(os.path.join(d, "r%s-fsync.bin" % rank), "wb")',
    'f.write(data)',
    'f.flush()',
    'timed("fsync", lambda: os.fsync(f.fileno()))',
    'timed("fsync-close", f.close)',
    // C stdio, as torch.save and std::ofstream write: glibc's fclose does not go through close().
    'libc = ctypes.CDLL(None)',
    'libc.fopen.restype = ctypes.c_void_p',
    'libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]',
    'libc.fwrite.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p]',
    'libc.fclose.argtypes = [ctypes.c_void_p]',
    'fp = libc.fopen(os.path.join(d, "r%s-stdio.bin" % rank).encode(), b"wb")',
    'assert libc.fwrite(data, 1, len(data), fp) == len(data)',
    'timed("stdio", lambda: libc.fclose(fp))',
    'out.write("done\\n")',
  ].join('\n');
}

/** One node (node-0 unless said), one process per GPU; GANTRY_ADMIT_LOG=1 has the shim log each admitted flush. */
function job(name: string, dir: string, command: string[], opts: { admit: boolean; node?: 'node-0' | 'node-1'; gpus?: number }): JobSpecInput {
  return {
    name, nodes: 1, gpusPerNode: opts.gpus ?? 1, command, launcher: Launcher.LAUNCHER_PER_GPU,
    excludeNodes: [opts.node === 'node-1' ? 'node-0' : 'node-1'],
    env: { GANTRY_ADMIT_LOG: '1' },
    checkpoint: checkpointSpec({ dir, admitFlushes: opts.admit }),
  };
}

const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : '');
/** A rank's stderr as its agent keeps it (per GPU: one folder per local process). */
const stderrOf = (agent: number, jobId: string, local: number) => read(join(stack.agentStateDir(agent), 'ranks', `${jobId}-1-0`, `local-${local}`, 'stderr.log'));

interface Held { kind: string; path: string; lease: string; t0: number; t1: number }
function admittedLines(text: string): Held[] {
  return [...text.matchAll(/gantry-admit\[\d+\]: (\w+) (\S+) admitted as (\S+) \(waited [\d.]+s\) held ([\d.]+)-([\d.]+)/g)]
    .map((m) => ({ kind: m[1]!, path: m[2]!, lease: m[3]!, t0: Number(m[4]), t1: Number(m[5]) }));
}
function times(file: string): Map<string, { start: number; end?: number }> {
  const out = new Map<string, { start: number; end?: number }>();
  for (const [, what, name, t] of read(file).matchAll(/^(start|end) (\S+) ([\d.]+)$/gm)) {
    if (what === 'start') out.set(name!, { start: Number(t) });
    else out.get(name!)!.end = Number(t);
  }
  return out;
}

describe('admitted checkpoint flushes for unmodified training code (LD_PRELOAD shim)', () => {
  it('holds each rank\'s close/fsync/fclose until the storage pool admits it, one at a time; a job without the opt-in takes no lease', async () => {
    const timesDir = join(stack.workDir, 'flush-times');
    mkdirSync(timesDir, { recursive: true });
    // The target's only write lease, taken from outside: every admitted flush must wait for it.
    const blocker = await storage.acquire({ target: TARGET, mode: 'write', jobId: 'outside-writer', attempt: 1, rank: 0, ttlMs: 60_000 });

    const a = (await client.submitJob(job('flush-admitted', join(nfs, 'a'), ['python3', '-c', writerScript(timesDir)], { admit: true, gpus: 3 }))).job!.id;
    const startedA = () => [0, 1, 2].every((r) => times(join(timesDir, `${a}-${r}`)).has('plain'));
    await eventually('every rank of the admitted job is in its first close', () => startedA() || undefined, 60_000);
    // Its ranks wait in the service's queue, under their own lease ids.
    const waiting = await eventually('the ranks queue for the write lease', async () => {
      const t = await storage.getTarget(TARGET);
      return t.waiters.length === 3 ? t : undefined;
    }, 20_000);
    expect(waiting.waiters.map((w) => `${w.holder?.jobId}:${w.holder?.rank}:${w.holder?.node}`).sort()).toEqual([0, 1, 2].map((r) => `${a}:${r}:node-0`));
    expect(waiting.leases.map((l) => l.holder?.jobId)).toEqual(['outside-writer']);
    const show = await gantry(stack, 'storage', 'show', TARGET, '--checkpoint-addr', stack.checkpointAddr, ...stack.internalClientFlags());
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/write\s+1\/1 leased .*, 3 waiting/);
    for (const r of [0, 1, 2]) expect(show.stdout).toMatch(new RegExp(`\\s${a}\\s+1\\s+${r}\\s+write`));

    // The same code without the opt-in: not preloaded, never waits, finishes while the pool is full.
    const b = (await client.submitJob(job('flush-plain', join(nfs, 'b'), ['python3', '-c', writerScript(timesDir)], { admit: false }))).job!.id;
    expect(jobStateName((await waitForJob(client, b, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 60_000)).state)).toBe('SUCCEEDED');
    expect(read(join(timesDir, `${b}-0`))).toMatch(/^preload -\n[\s\S]*done\n$/);
    expect(stderrOf(0, b, 0)).not.toContain('gantry-admit');
    const still = await storage.getTarget(TARGET);
    expect(still.waiters.map((w) => w.holder?.jobId).sort()).toEqual([a, a, a]);
    // Nothing of the admitted job got through its first close meanwhile.
    for (const r of [0, 1, 2]) expect(times(join(timesDir, `${a}-${r}`)).get('plain')?.end).toBeUndefined();
    const status = await gantry(stack, 'job', 'status', a);
    expect(status.stdout).toContain(`Checkpoint: ${join(nfs, 'a')} (auto, flushes admitted (close/fsync wait for a storage lease))`);

    // "I am done": the ranks' flushes go through, each under its own lease.
    expect(await storage.release(blocker)).toBe(true);
    expect(jobStateName((await waitForJob(client, a, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 60_000)).state)).toBe('SUCCEEDED');

    const held: (Held & { rank: number })[] = [];
    for (const r of [0, 1, 2]) {
      expect(read(join(timesDir, `${a}-${r}`))).toMatch(new RegExp(`^preload ${SHIM.replace(/[.]/g, '\\.')}\\n[\\s\\S]*done\\n$`));
      const lines = admittedLines(stderrOf(0, a, r));
      const dir = join(nfs, 'a');
      expect(lines.map((l) => `${l.kind} ${l.path} ${l.lease}`)).toEqual([
        `close ${dir}/r${r}-plain.bin w:${a}:1:${r}`,
        `fsync ${dir}/r${r}-fsync.bin w:${a}:1:${r}`,
        `close ${dir}/r${r}-fsync.bin w:${a}:1:${r}`,
        `fclose ${dir}/r${r}-stdio.bin w:${a}:1:${r}`,
      ]);
      // Each lease was held inside the call the code made (the flush itself ran under it).
      const t = times(join(timesDir, `${a}-${r}`));
      ['plain', 'fsync', 'fsync-close', 'stdio'].forEach((name, i) => {
        const call = t.get(name)!;
        expect(lines[i]!.t0).toBeGreaterThanOrEqual(call.start);
        expect(lines[i]!.t1).toBeLessThanOrEqual(call.end!);
      });
      for (const name of ['plain', 'fsync', 'stdio']) expect(statSync(join(dir, `r${r}-${name}.bin`)).size).toBe(1 << 20);
      held.push(...lines.map((l) => ({ ...l, rank: r })));
    }
    // A pool of one: no two ranks' flushes ran at once.
    held.sort((x, y) => x.t0 - y.t0);
    for (let i = 1; i < held.length; i++) {
      if (held[i]!.rank !== held[i - 1]!.rank) expect(held[i]!.t0, `${held[i - 1]!.lease} ${held[i - 1]!.kind} and ${held[i]!.lease} ${held[i]!.kind} overlap`).toBeGreaterThanOrEqual(held[i - 1]!.t1);
    }
    const after = await storage.getTarget(TARGET);
    expect(after.leases).toEqual([]);
    expect(after.waiters).toEqual([]);
  }, 40_000);

  it('an agent that cannot be reached or refuses costs one line on stderr, and the job still finishes', async () => {
    // The rank's own children see a dead endpoint (a port nobody listens on) and a wrong token.
    const py = [
      'import os, socket, subprocess, sys',
      's = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()',
      'd = os.environ["GANTRY_CHECKPOINT_DIR"]',
      'os.makedirs(d, exist_ok=True)',
      'write = "import os, sys\\nfor i in range(3):\\n    f = open(os.path.join(sys.argv[1], sys.argv[2] + str(i)), \'wb\'); f.write(b\'x\' * 4096); f.close()"',
      'subprocess.run([sys.executable, "-c", write, d, "dead"], env=dict(os.environ, GANTRY_CKPT_URL="http://127.0.0.1:%d" % port), check=True)',
      'subprocess.run([sys.executable, "-c", write, d, "badtoken"], env=dict(os.environ, GANTRY_CKPT_TOKEN="0" * 64), check=True)',
      'subprocess.run([sys.executable, "-c", write, d, "ok"], check=True)',
      // Threads of one process flush at once under the rank's one lease.
      'threads = "import os, sys, threading\\ndef w(t):\\n    for i in range(5):\\n        f = open(os.path.join(sys.argv[1], \'t%d-%d\' % (t, i)), \'wb\'); f.write(b\'y\' * 4096); f.close()\\nts = [threading.Thread(target=w, args=(t,)) for t in range(4)]\\n[t.start() for t in ts]\\n[t.join() for t in ts]"',
      'subprocess.run([sys.executable, "-c", threads, d], check=True)',
    ].join('\n');
    const t0 = Date.now();
    const id = (await client.submitJob(job('flush-unreachable', join(nfs, 'u'), ['python3', '-c', py], { admit: true }))).job!.id;
    expect(jobStateName((await waitForJob(client, id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 60_000)).state)).toBe('SUCCEEDED');
    expect(Date.now() - t0).toBeLessThan(30_000);
    for (const f of ['dead0', 'dead1', 'dead2', 'badtoken0', 'badtoken1', 'badtoken2', 'ok0', 'ok1', 'ok2']) expect(statSync(join(nfs, 'u', f)).size).toBe(4096);
    const err = stderrOf(0, id, 0);
    // One line per process and outage, not one per file.
    expect(err.match(/agent unreachable at 127\.0\.0\.1:\d+: Connection refused; checkpoint flushes go ahead unadmitted until it answers again/g)).toHaveLength(1);
    expect(err.match(/the agent refused a storage lease \(HTTP 401: unknown token \(revoked when the job left this node\)\); checkpoint flushes go ahead unadmitted/g)).toHaveLength(1);
    const admitted = admittedLines(err);
    expect(admitted.slice(0, 3).map((l) => l.path.split('/').pop())).toEqual(['ok0', 'ok1', 'ok2']);
    const threaded = admitted.slice(3);
    expect(threaded.map((l) => l.path.split('/').pop()).sort()).toEqual([0, 1, 2, 3].flatMap((t) => [0, 1, 2, 3, 4].map((i) => `t${t}-${i}`)).sort());
    expect(new Set(threaded.map((l) => l.lease))).toEqual(new Set([`w:${id}:1:0`]));
    for (let t = 0; t < 4; t++) for (let i = 0; i < 5; i++) expect(statSync(join(nfs, 'u', `t${t}-${i}`)).size).toBe(4096);
  }, 40_000);

  it('flushes made while the agent is down go ahead unadmitted, and the job finishes once it is back', async () => {
    const ready = join(stack.workDir, 'down.ready');
    const go = join(stack.workDir, 'down.go');
    const done = join(stack.workDir, 'down.done');
    const py = [
      'import os, time',
      'd = os.environ["GANTRY_CHECKPOINT_DIR"]',
      'os.makedirs(d, exist_ok=True)',
      `open(${JSON.stringify(ready)}, "w").close()`,
      `while not os.path.exists(${JSON.stringify(go)}):`,
      '    time.sleep(0.05)',
      'for i in range(3):',
      '    f = open(os.path.join(d, "down%d" % i), "wb"); f.write(b"z" * 4096); f.close()',
      `open(${JSON.stringify(done)}, "w").close()`,
    ].join('\n');
    const id = (await client.submitJob(job('flush-agent-down', join(nfs, 'down'), ['python3', '-c', py], { admit: true }))).job!.id;
    await eventually('the rank runs', () => existsSync(ready) || undefined, 60_000);
    // The agent stops (its ranks keep running), and with it the endpoint the shim calls.
    await stack.agents[0]!.stop();
    try {
      writeFileSync(go, '');
      await eventually('the rank flushed without its agent', () => existsSync(done) || undefined, 20_000);
    } finally {
      await stack.agents[0]!.start();
    }
    expect(jobStateName((await waitForJob(client, id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 60_000)).state)).toBe('SUCCEEDED');
    for (const i of [0, 1, 2]) expect(statSync(join(nfs, 'down', `down${i}`)).size).toBe(4096);
    const err = stderrOf(0, id, 0);
    expect(err.match(/agent unreachable at 127\.0\.0\.1:\d+: Connection refused; checkpoint flushes go ahead unadmitted/g)).toHaveLength(1);
    expect(admittedLines(err)).toEqual([]);
  }, 40_000);

  it('refuses a job whose agent has no shim (the reason reaches the job) and one whose directory no storage target holds (at submit)', async () => {
    const id = (await client.submitJob(job('flush-no-shim', join(nfs, 'n'), ['true'], { admit: true, node: 'node-1' }))).job!.id;
    const done = await waitForJob(client, id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 60_000);
    expect(jobStateName(done.state)).toBe('FAILED');
    expect(done.reason).toContain('the job asks for admitted checkpoint flushes (checkpoint.admit_flushes) but this agent has no flush admission shim: build it with pnpm build:admit and set admitShim in agent.yaml (GANTRY_ADMIT_SHIM)');

    const outside = await gantry(stack, 'job', 'submit', '--checkpoint-dir', '/elsewhere/ckpt', '--checkpoint-admit-flushes', '--', 'true');
    expect(outside.code).not.toBe(0);
    expect(outside.stderr).toContain(`--checkpoint-admit-flushes needs a storage target: no configured target's mount prefix (${nfs}) holds --checkpoint-dir "/elsewhere/ckpt"; name one in --checkpoint-storage`);
    const named = await gantry(stack, 'job', 'submit', '--checkpoint-dir', join(nfs, 'x'), '--checkpoint-storage', 'nope', '--checkpoint-admit-flushes', '--', 'true');
    expect(named.code).not.toBe(0);
    expect(named.stderr).toContain(`--checkpoint-admit-flushes needs a configured storage target: --checkpoint-storage "nope" is not one (configured: ${TARGET})`);
  }, 40_000);
});
