// End to end through the SDK against real services: gateway -> scheduler -> agents over
// real NATS and Redis, ranks as real processes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GantryClient, GantryError } from '@gantry/sdk';
import { JobState, RankPhase, jobStateName, type Job } from '@gantry/proto';
import { TestStack, eventually, pidAlive } from '../harness/stack.js';
import { waitForJob } from '../harness/fixtures.js';

let stack: TestStack;
let client: GantryClient;

beforeAll(async () => {
  stack = await new TestStack({ agents: 2 }).start();
  client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 10_000 });
});

afterAll(async () => {
  client?.close();
  await stack?.stop();
});

function waitForState(id: string, states: JobState[], timeoutMs = 30_000): Promise<Job> {
  return waitForJob(client, id, states, timeoutMs);
}

async function collectLogs(id: string): Promise<{ rank: number; text: string; stream: number }[]> {
  const lines: { rank: number; text: string; stream: number }[] = [];
  for await (const l of client.streamLogs(id, { follow: true })) lines.push({ rank: l.rank, text: l.line?.text ?? '', stream: l.line?.stream ?? 0 });
  return lines;
}

const ENV_PRINTER = ['sh', '-c', 'for v in MASTER_ADDR MASTER_PORT WORLD_SIZE NODE_RANK LOCAL_WORLD_SIZE CUDA_VISIBLE_DEVICES GANTRY_JOB_ID GANTRY_ATTEMPT; do eval "echo $v=\\$$v"; done; echo done >&2'];

describe('jobs end to end', () => {
  it('runs a 2-node x 8-GPU job to SUCCEEDED, every rank with the launcher environment', async () => {
    const { job } = await client.submitJob({ name: 'env-check', nodes: 2, gpusPerNode: 8, command: ENV_PRINTER });
    const id = job!.id;
    const logs = await collectLogs(id);
    const done = await waitForState(id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED]);
    expect(jobStateName(done.state)).toBe('SUCCEEDED');
    const attempt = done.attempts.at(-1)!;
    expect(attempt.placement.map((p) => p.node).sort()).toEqual(['node-0', 'node-1']);
    for (const rank of [0, 1]) {
      const env = Object.fromEntries(logs.filter((l) => l.rank === rank && l.stream === 1).map((l) => l.text.split('=')).filter((kv) => kv.length === 2));
      expect(env).toMatchObject({
        MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29500', WORLD_SIZE: '16', NODE_RANK: String(rank), LOCAL_WORLD_SIZE: '8',
        CUDA_VISIBLE_DEVICES: '0,1,2,3,4,5,6,7', GANTRY_JOB_ID: id, GANTRY_ATTEMPT: '1',
      });
      expect(logs.some((l) => l.rank === rank && l.stream === 2 && l.text === 'done')).toBe(true);
    }
    expect(attempt.ranks.every((r) => r.phase === RankPhase.RANK_PHASE_EXITED && r.exitCode === 0)).toBe(true);
  });

  it('fails the job naming rank 1 and exit code 3, and stops rank 0', async () => {
    const { job } = await client.submitJob({
      name: 'rank1-fails', nodes: 2, gpusPerNode: 8, stopGraceSeconds: 1,
      command: ['sh', '-c', 'if [ "$NODE_RANK" = 1 ]; then sleep 1; exit 3; fi; exec sleep 300'],
    });
    const done = await waitForState(job!.id, [JobState.JOB_STATE_FAILED, JobState.JOB_STATE_SUCCEEDED]);
    expect(jobStateName(done.state)).toBe('FAILED');
    const failure = done.attempts.at(-1)!.failure!;
    expect(failure.rank).toBe(1);
    expect(failure.exitCode).toBe(3);
    expect(done.reason).toMatch(/node-rank 1 on node-\d exited with code 3/);
    // Rank 0 is stopped: its exit is recorded with SIGTERM and its process is gone.
    const stopped = await eventually('rank 0 recorded as stopped', async () => {
      const j = await client.getJob(job!.id);
      const r0 = j.attempts.at(-1)!.ranks.find((r) => r.rank === 0)!;
      return r0.phase === RankPhase.RANK_PHASE_EXITED ? r0 : undefined;
    });
    expect(stopped.signal).toBe('SIGTERM');
    expect(stopped.pid).toBeGreaterThan(0);
    expect(pidAlive(stopped.pid)).toBe(false);
  });

  it('cancelling a running job leaves no process of it alive', async () => {
    const { job } = await client.submitJob({ name: 'to-cancel', nodes: 2, gpusPerNode: 4, stopGraceSeconds: 1, command: ['sh', '-c', 'trap "" TERM; sleep 300 & sleep 300; wait'] });
    const running = await waitForState(job!.id, [JobState.JOB_STATE_RUNNING]);
    const pids = running.attempts.at(-1)!.ranks.map((r) => r.pid);
    expect(pids.every((p) => p > 0 && pidAlive(p))).toBe(true);
    const cancelled = await client.cancelJob(job!.id, 'test cancel');
    expect(jobStateName(cancelled.state)).toBe('CANCELLED');
    // The ranks ignore SIGTERM, so this also proves the SIGKILL after the grace period.
    await eventually('every rank process group gone', () => pids.every((p) => { try { process.kill(-p, 0); return false; } catch { return true; } }) || undefined, 15_000);
    const after = await eventually('both rank exits recorded', async () => {
      const j = await client.getJob(job!.id);
      return j.attempts.at(-1)!.ranks.every((r) => r.phase === RankPhase.RANK_PHASE_EXITED) ? j : undefined;
    });
    expect(jobStateName(after.state)).toBe('CANCELLED');
    // Their GPUs are free again: a job needing all 16 GPUs can run.
    const { job: next } = await client.submitJob({ nodes: 2, gpusPerNode: 8, command: ['true'] });
    expect(jobStateName((await waitForState(next!.id, [JobState.JOB_STATE_SUCCEEDED])).state)).toBe('SUCCEEDED');
  });

  it('creates one job for the same idempotency key submitted twice', async () => {
    const spec = { name: 'idem', nodes: 1, gpusPerNode: 1, command: ['true'] };
    const a = await client.submitJob(spec, { idempotencyKey: 'same-key-1' });
    const b = await client.submitJob(spec, { idempotencyKey: 'same-key-1' });
    expect(a.created).toBe(true);
    expect(b.created).toBe(false);
    expect(b.job!.id).toBe(a.job!.id);
    const all = [];
    for await (const j of client.listAllJobs({})) if (j.spec?.name === 'idem') all.push(j);
    expect(all).toHaveLength(1);
  });

  it.each([
    [{ nodes: 0, gpusPerNode: 8, command: ['true'] }, 'spec.nodes must be between 1 and 4096, got 0'],
    [{ nodes: 5000, gpusPerNode: 8, command: ['true'] }, 'spec.nodes must be between 1 and 4096, got 5000'],
    [{ nodes: 1, gpusPerNode: 33, command: ['true'] }, 'spec.gpus_per_node must be between 0 and 32, got 33'],
    [{ nodes: 1, gpusPerNode: 1, command: [] }, 'spec.command must not be empty'],
    [{ nodes: 1, gpusPerNode: 1, command: ['true'], env: { MASTER_ADDR: 'x' } }, 'spec.env.MASTER_ADDR is set by Gantry for every rank and cannot be overridden'],
    [{ nodes: 1, gpusPerNode: 1, command: ['true'], workingDir: 'relative/dir' }, 'spec.working_dir must be an absolute path, got "relative/dir"'],
    [{ nodes: 1, gpusPerNode: 1, command: ['true'], priorityClass: 'urgent' }, 'spec.priority_class must be one of critical, high, normal, low, preemptible, got "urgent"'],
    [{ nodes: 1, gpusPerNode: 1, command: ['true'], tenant: 'bad tenant' }, 'spec.tenant must match'],
    [{ nodes: 1, gpusPerNode: 1, command: ['true'], masterPort: 80 }, 'spec.master_port must be between 1024 and 65535, got 80'],
  ])('rejects a malformed submit with INVALID_ARGUMENT: %j', async (spec, message) => {
    const err = await client.submitJob(spec).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(GantryError);
    expect((err as GantryError).codeName).toBe('INVALID_ARGUMENT');
    expect((err as GantryError).details).toContain(message);
  });

  it('answers unknown and malformed ids with NOT_FOUND and INVALID_ARGUMENT', async () => {
    const notFound = await client.getJob('j-doesnotexist').catch((e: GantryError) => e);
    expect((notFound as GantryError).codeName).toBe('NOT_FOUND');
    expect((notFound as GantryError).details).toBe('job j-doesnotexist not found');
    const bad = await client.getJob('../etc').catch((e: GantryError) => e);
    expect((bad as GantryError).codeName).toBe('INVALID_ARGUMENT');
    expect((bad as GantryError).details).toMatch(/^job_id must match/);
    const badNode = await client.getNode('no-such-node').catch((e: GantryError) => e);
    expect((badNode as GantryError).codeName).toBe('NOT_FOUND');
    const badPage = await client.listJobs({ pageSize: 5000 }).catch((e: GantryError) => e);
    expect((badPage as GantryError).details).toBe('page_size must be between 1 and 1000, got 5000');
    const badToken = await client.listJobs({ pageToken: 'zzz' }).catch((e: GantryError) => e);
    expect((badToken as GantryError).codeName).toBe('INVALID_ARGUMENT');
  });

  it('lists nodes READY with their GPUs and topology', async () => {
    const { nodes } = await client.listNodes({});
    expect(nodes.map((n) => n.name)).toEqual(['node-0', 'node-1']);
    for (const n of nodes) {
      expect(n.gpus).toHaveLength(8);
      expect(n.gpus[0]!.model).toBe('NVIDIA H100 80GB HBM3');
      expect(n.topology?.leafSwitch).toBe('leaf-0');
    }
  });
});
