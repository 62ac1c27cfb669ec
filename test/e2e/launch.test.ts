// How ranks are launched, end to end through the real services (gateway -> scheduler ->
// agents over NATS and Redis, ranks as real processes): a rendezvous port per attempt that two
// jobs packed on one host never share, one process per GPU with torch's environment, the
// submitter's working directory, and what a user sees when something is wrong: messages that
// name the flag, the missing command or directory, every problem at once, a reused
// idempotency key, GPU short names, and a submit retried after a timeout.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GantryClient, GantryError } from '@gantry/sdk';
import { main } from '@gantry/cli';
import { JobState, Launcher, jobStateName, type Job } from '@gantry/proto';
import { keys } from '@gantry/store';
import { TestStack, eventually } from '../harness/stack.js';
import { stackPerTest, waitForJob } from '../harness/fixtures.js';

const ENDED = [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED, JobState.JOB_STATE_CANCELLED];

/** Runs `gantry` in-process against `addr`, from the directory `cwd`. */
async function gantry(addr: string, cwd: string, ...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(['--addr', addr, ...argv], { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) }, env: {}, cwd });
  return { code, stdout, stderr };
}

const jobId = (submitOut: string) => /job (j-\S+) submitted/.exec(submitOut)?.[1] ?? '';

describe('launching ranks', () => {
  let stack: TestStack;
  let client: GantryClient;

  beforeAll(async () => {
    // Two 16-GPU hosts: hosts bigger than 8 GPUs exist.
    stack = await new TestStack({ agents: 2, gpusPerAgent: 16 }).start();
    client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 10_000 });
  });

  afterAll(async () => {
    client?.close();
    await stack?.stop();
  });

  const wait = (id: string, timeoutMs = 30_000) => waitForJob(client, id, ENDED, timeoutMs);

  it('gives two small jobs packed on one host different MASTER_PORTs, each bound while the other runs, and frees them', async () => {
    // Each node rank 0 binds its MASTER_PORT and holds it until both have bound theirs (or
    // gives up after 10s: with one port for both, the other never binds).
    const dir = mkdtempSync(join(tmpdir(), 'gantry-ports-'));
    const bind = [
      "const fs=require('fs'),p=+process.env.MASTER_PORT,d=process.argv[1];setTimeout(()=>process.exit(3),10000).unref();",
      "require('net').createServer().listen(p,'127.0.0.1',function(){fs.writeFileSync(d+'/'+p,'');console.log('bound '+p);",
      "const t=setInterval(()=>{if(fs.readdirSync(d).length>=2){clearInterval(t);this.close()}},100)})",
      ".on('error',e=>{console.error(e.message);process.exit(1)})",
    ].join('');
    const spec = { nodes: 1, gpusPerNode: 1, excludeNodes: ['node-1'], stopGraceSeconds: 1, command: [process.execPath, '-e', bind, dir] };
    const [a, b] = await Promise.all([client.submitJob({ ...spec, name: 'port-a' }), client.submitJob({ ...spec, name: 'port-b' })]);
    const done = await Promise.all([wait(a.job!.id), wait(b.job!.id)]);
    for (const j of done) expect(jobStateName(j.state), j.reason).toBe('SUCCEEDED');
    const ports = done.map((j) => j.attempts.at(-1)!.masterPort);
    expect(done.map((j) => j.attempts.at(-1)!.placement[0]!.node)).toEqual(['node-0', 'node-0']);
    expect(new Set(ports).size).toBe(2);
    for (const p of ports) expect(p).toBeGreaterThanOrEqual(29500);
    // Released with node rank 0's GPUs: nothing stays claimed, and the next job gets the lowest port again.
    expect(await stack.redis.hgetall(keys.nodePorts('node-0'))).toEqual({});
    const { job } = await client.submitJob({ ...spec, name: 'port-c', command: ['sh', '-c', 'echo "port=$MASTER_PORT"'] });
    expect((await wait(job!.id)).attempts.at(-1)!.masterPort).toBe(Math.min(...ports));
  });

  it('runs one process per GPU with RANK, LOCAL_RANK, WORLD_SIZE and one GPU each, like srun or torchrun\'s workers', async () => {
    // What `python train.py` needs from torch.distributed's env:// rendezvous, and nothing of torchrun's.
    const script = [
      'for v in RANK LOCAL_RANK WORLD_SIZE LOCAL_WORLD_SIZE NODE_RANK MASTER_ADDR MASTER_PORT CUDA_VISIBLE_DEVICES; do',
      '  eval "x=\\${$v?environment variable $v expected, but not set}"; printf "%s=%s " "$v" "$x"; done; echo;',
      '[ -z "$PET_NPROC_PER_NODE" ] || { echo "torchrun variables set" >&2; exit 9; }',
    ].join(' ');
    const { job } = await client.submitJob({ name: 'per-gpu', nodes: 2, gpusPerNode: 2, launcher: Launcher.LAUNCHER_PER_GPU, command: ['sh', '-c', script] });
    const done = await wait(job!.id);
    expect(jobStateName(done.state), done.reason).toBe('SUCCEEDED');
    const lines: { nodeRank: number; local?: number; env: Record<string, string> }[] = [];
    for await (const l of client.streamLogs(job!.id)) {
      lines.push({ nodeRank: l.rank, local: l.line?.localRank, env: Object.fromEntries((l.line?.text ?? '').trim().split(' ').map((kv) => kv.split('=') as [string, string])) });
    }
    const port = String(done.attempts.at(-1)!.masterPort);
    const byRank = lines.sort((x, y) => Number(x.env.RANK) - Number(y.env.RANK));
    expect(byRank.map((l) => [l.nodeRank, l.local, l.env.RANK, l.env.LOCAL_RANK, l.env.WORLD_SIZE, l.env.LOCAL_WORLD_SIZE, l.env.NODE_RANK, l.env.MASTER_PORT])).toEqual([
      [0, 0, '0', '0', '4', '2', '0', port],
      [0, 1, '1', '1', '4', '2', '0', port],
      [1, 0, '2', '0', '4', '2', '1', port],
      [1, 1, '3', '1', '4', '2', '1', port],
    ]);
    const placement = done.attempts.at(-1)!.placement;
    for (const l of byRank) expect(l.env.CUDA_VISIBLE_DEVICES).toBe(String(placement[l.nodeRank]!.gpuIndices[Number(l.env.LOCAL_RANK)]));
    expect(new Set(byRank.map((l) => l.env.MASTER_ADDR)).size).toBe(1);
  });

  it('per GPU, fails the job naming the process that failed first, and stops its siblings', async () => {
    const { job } = await client.submitJob({
      name: 'per-gpu-fails', nodes: 1, gpusPerNode: 3, launcher: Launcher.LAUNCHER_PER_GPU, stopGraceSeconds: 1,
      command: ['sh', '-c', 'if [ "$LOCAL_RANK" = 2 ]; then sleep 1; echo "RuntimeError: shard 2 is corrupt" >&2; exit 4; fi; exec sleep 300'],
    });
    const done = await wait(job!.id);
    expect(jobStateName(done.state)).toBe('FAILED');
    const rank = done.attempts.at(-1)!.ranks[0]!;
    expect(rank).toMatchObject({ exitCode: 4, error: 'local-rank 2: RuntimeError: shard 2 is corrupt' });
    expect(done.reason).toContain('local-rank 2: RuntimeError: shard 2 is corrupt');
  });

  it('starts ranks in the submitter\'s directory, says so in `job status`, and shows the command with its quoting', async () => {
    const project = mkdtempSync(join(tmpdir(), 'gantry-project-'));
    writeFileSync(join(project, 'train.sh'), 'echo "trained in $(pwd)"\n');
    const sub = await gantry(stack.gatewayAddr, project, 'job', 'submit', '--name', 'in-cwd', '--gpus-per-node', '1', '--wait', '--', 'sh', '-c', 'sh train.sh && echo "it\'s done"');
    expect(sub.code, sub.stdout + sub.stderr).toBe(0);
    const id = jobId(sub.stdout);
    const logs = await gantry(stack.gatewayAddr, project, 'job', 'logs', id);
    expect(logs.stdout).toBe(`[node-rank 0] trained in ${project}\n[node-rank 0] it's done\n`);
    const status = await gantry(stack.gatewayAddr, project, 'job', 'status', id);
    expect(status.stdout).toContain(`Workdir:    ${project}\n`);
    expect(status.stdout).toContain(`Command:    sh -c 'sh train.sh && echo "it'\\''s done"'\n`);
    expect(status.stdout).toContain('Launcher:   per-node (one process per node with 1 GPU)\n');
    expect(status.stdout).toMatch(/ {2}Rendezvous: +127\.0\.0\.1:\d+ \(MASTER_ADDR:MASTER_PORT\)\n/);
    expect(status.stdout).toContain('  NODE-RANK  NODE');
  });

  it('fails a rank whose working directory or command is missing with a message naming it', async () => {
    const here = mkdtempSync(join(tmpdir(), 'gantry-here-'));
    const noDir = await gantry(stack.gatewayAddr, here, 'job', 'submit', '--gpus-per-node', '1', '--workdir', '/no/such/dir', '--follow', '--', 'true');
    expect(noDir.code).toBe(1);
    expect(noDir.stderr).toMatch(/^job j-\S+ FAILED: node-rank 0 on node-\d exited with code 127: working directory \/no\/such\/dir does not exist on node-\d/m);
    const noCmd = await gantry(stack.gatewayAddr, here, 'job', 'submit', '--gpus-per-node', '1', '--follow', '--', 'torchrun-not-installed', 'train.py');
    expect(noCmd.code).toBe(1);
    expect(noCmd.stderr).toMatch(/^\[node-rank 0\] gantry: cannot start torchrun-not-installed: command not found on node-\d \(PATH=.+\)$/m);
    expect(noCmd.stderr).toMatch(/^job j-\S+ FAILED: node-rank 0 on node-\d exited with code 127: cannot start torchrun-not-installed: command not found on node-\d; /m);
    expect(noCmd.stderr).not.toContain('gantry-rank');
  });

  it('reports every problem of a submit at once, naming the flags', async () => {
    const r = await gantry(stack.gatewayAddr, tmpdir(), 'job', 'submit', '--nodes', '5000', '--gpus-per-node', '40', '--priority', 'urgent', '--env', 'RANK=3', '--', 'true');
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')).toHaveLength(2); // one line
    expect(r.stderr).toContain('gantry: INVALID_ARGUMENT: --nodes must be between 1 and 4096, got 5000; --gpus-per-node must be between 0 and 32, got 40; ');
    expect(r.stderr).toContain('--env RANK is set by Gantry for every rank and cannot be overridden');
    expect(r.stderr).toContain('--priority must be one of critical, high, normal, low, preemptible, got "urgent"');
    expect(r.stderr).not.toContain('spec.');
  });

  it('refuses an idempotency key reused with another spec, naming the job it created', async () => {
    const spec = { name: 'idem', nodes: 1, gpusPerNode: 1, command: ['true'] };
    const first = await client.submitJob(spec, { idempotencyKey: 'launch-key-1' });
    expect((await client.submitJob(spec, { idempotencyKey: 'launch-key-1' })).job!.id).toBe(first.job!.id);
    const err = await client.submitJob({ ...spec, command: ['false'] }, { idempotencyKey: 'launch-key-1' }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(GantryError);
    expect((err as GantryError).codeName).toBe('ALREADY_EXISTS');
    expect((err as GantryError).details).toContain(`already created job ${first.job!.id} with a different spec`);
  });

  it('matches `--gpu-type H100` to the hosts\' "NVIDIA H100 80GB HBM3", and runs on a whole 16-GPU host', async () => {
    const sub = await gantry(stack.gatewayAddr, tmpdir(), 'job', 'submit', '--gpu-type', 'H100', '--gpus-per-node', '16', '--wait', '--', 'sh', '-c', 'echo "$CUDA_VISIBLE_DEVICES"');
    expect(sub.code, sub.stdout + sub.stderr).toBe(0);
    const j = await client.getJob(jobId(sub.stdout));
    expect(j.spec!.gpuTypes).toContain('NVIDIA H100 80GB HBM3');
    expect(j.attempts.at(-1)!.placement[0]!.gpuIndices).toHaveLength(16);
  });

  it('takes a submit without --gpus-per-node as every GPU of the node', async () => {
    const sub = await gantry(stack.gatewayAddr, tmpdir(), '-o', 'json', 'job', 'submit', '--nodes', '1', '--', 'sleep', '60');
    expect(sub.code, sub.stderr).toBe(0);
    const job = (JSON.parse(sub.stdout) as { job: { id: string } }).job;
    const j: Job = await client.getJob(job.id);
    expect(j.spec!.gpusPerNode).toBe(0);
    const status = await gantry(stack.gatewayAddr, tmpdir(), 'job', 'status', job.id);
    expect(status.stdout).toContain('Resources:  1 node x all GPUs\n');
    await client.cancelJob(job.id, 'test done');
  });

  it('explains a job that no registered node can ever hold', async () => {
    const { job } = await client.submitJob({ name: 'too-big', nodes: 1, gpusPerNode: 32, command: ['true'] });
    const r = await eventually('an explanation', async () => {
      const out = await gantry(stack.gatewayAddr, tmpdir(), 'job', 'explain', job!.id);
      return /evaluated \d+\w* ago/.test(out.stdout) ? out : undefined;
    });
    expect(r.stdout).toContain('can never fit as the cluster stands: 0 nodes pass its filters, it needs 1');
    expect(r.stdout).toContain('nodes: 2 nodes: node has 16 GPUs');
    await client.cancelJob(job!.id, 'test done');
  });

  it('explains a never-fitting job queued behind other blocked jobs as never fitting', async () => {
    // Blocked jobs ahead of it use up the pass's reservation tries.
    const blockers = await Promise.all(Array.from({ length: 10 }, (_, i) => client.submitJob({ name: `blocker-${i}`, nodes: 2, gpusPerNode: 16, command: ['sleep', '60'] })));
    const { job } = await client.submitJob({ name: 'three-nodes', nodes: 3, gpusPerNode: 1, command: ['true'] });
    const r = await eventually('an explanation', async () => {
      const out = await gantry(stack.gatewayAddr, tmpdir(), 'job', 'explain', job!.id);
      return /evaluated \d+\w* ago/.test(out.stdout) ? out : undefined;
    });
    expect(r.stdout).toContain('can never fit as the cluster stands: 2 nodes pass its filters, it needs 3');
    for (const b of [...blockers.map((x) => x.job!), job!]) await client.cancelJob(b.id, 'test done');
  });

  it('runs a job submitted without --gpus-per-node on every GPU of its node', async () => {
    const sub = await gantry(stack.gatewayAddr, tmpdir(), 'job', 'submit', '--nodes', '1', '--wait', '--', 'sh', '-c', 'echo "$CUDA_VISIBLE_DEVICES"');
    expect(sub.code, sub.stdout + sub.stderr).toBe(0);
    const j = await client.getJob(jobId(sub.stdout));
    expect(j.spec!.gpusPerNode).toBe(0);
    expect(j.attempts.at(-1)!.placement[0]!.gpuIndices).toHaveLength(16);
  });
});

describe('a submit that times out', () => {
  const start = stackPerTest();

  it('is retried with the same idempotency key and creates one job', async () => {
    const { stack } = await start({ agents: 1 });
    const client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 700, retry: { maxAttempts: 20, initialBackoffMs: 100, maxBackoffMs: 300 } });
    try {
      // The scheduler (and behind it Redis) stops answering for a while: the first attempts
      // time out although the gateway has passed them on, and they create the job on resume.
      stack.schedulers[0]!.pause();
      const resume = setTimeout(() => stack.schedulers[0]!.resume(), 2_000);
      const res = await client.submitJob({ name: 'slow-submit', nodes: 1, gpusPerNode: 1, command: ['true'] }).finally(() => clearTimeout(resume));
      stack.schedulers[0]!.resume();
      expect(res.created).toBe(true);
      const same: string[] = [];
      for await (const j of client.listAllJobs({})) if (j.spec?.name === 'slow-submit') same.push(j.id);
      expect(same).toEqual([res.job!.id]);
    } finally {
      client.close();
    }
  });
});
