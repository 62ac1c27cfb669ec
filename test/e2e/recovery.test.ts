// Automatic recovery through the real services: faults injected into simulated agents, the
// scheduler attributes them, excludes the faulty node, takes a hot spare, and resumes the
// next attempt from the newest committed checkpoint.
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CheckpointClient, type GantryClient } from '@gantry/sdk';
import { FailureClass, JobState, RecoveryGrade, jobStateName, type Job } from '@gantry/proto';
import { eventually, pidAlive, type TestStack } from '../harness/stack.js';
import { stackPerTest, waitForJob } from '../harness/fixtures.js';
import { gantry, sim } from '../harness/tools.js';
import { FAST_RECOVERY } from '../harness/fast-config.js';

const setup = stackPerTest();

/** Every rank appends "attempt rank node resume-from" when it starts: runs twice show up. */
function markedCommand(marker: string, then: string): string[] {
  return ['sh', '-c', `echo "$GANTRY_ATTEMPT $NODE_RANK $GANTRY_NODE_NAME $GANTRY_RESUME_FROM" >> ${marker}; ${then}`];
}

function markers(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter(Boolean).sort() : [];
}

function injectXid(stack: TestStack, node: string, xid: number, gpu: number): Promise<void> {
  return sim(stack, node, 'inject', 'xid', String(xid), '--gpu', String(gpu));
}

async function commitCheckpoint(stack: TestStack, jobId: string, attempt: number, step: number): Promise<string> {
  const ck = new CheckpointClient({ address: stack.checkpointAddr, timeoutMs: 5_000, tls: stack.internalClientTls });
  try {
    const path = `/checkpoints/${jobId}/step-${step}`;
    const c = await ck.beginCheckpoint({ jobId, attempt, step, path, shardCount: 1 });
    await ck.reportShard(c.id, 0, 1024);
    await ck.commitCheckpoint(c.id);
    return path;
  } finally {
    ck.close();
  }
}

const nodesOf = (j: Job, attempt: number) => j.attempts.find((a) => a.number === attempt)!.placement.map((p) => p.node);

async function history(client: GantryClient, id: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of client.watchJob(id)) out.push(jobStateName(e.toState));
  return out;
}

describe('recovery', () => {
  it('an XID 79 on a job GPU: RECOVERING, the faulty node excluded, a hot spare taken, resumed from the last checkpoint, SUCCEEDED', async () => {
    const { stack, client } = await setup({ agents: 3 });
    await client.setSchedulingConfig({ recovery: FAST_RECOVERY, spares: { pools: [{ count: 1 }] } });
    const marker = `${stack.workDir}/runs.txt`;
    const { job } = await client.submitJob({ nodes: 2, gpusPerNode: 8, stopGraceSeconds: 1, command: markedCommand(marker, 'if [ "$GANTRY_ATTEMPT" = 1 ]; then sleep 300; else sleep 1; fi') });
    const id = job!.id;
    const running = await waitForJob(client, id, [JobState.JOB_STATE_RUNNING]);
    const first = nodesOf(running, 1);
    const spare = ['node-0', 'node-1', 'node-2'].find((n) => !first.includes(n))!;
    const checkpoint = await commitCheckpoint(stack, id, 1, 20);
    const faulty = running.attempts[0]!.placement.find((p) => p.rank === 1)!.node;
    await injectXid(stack, faulty, 79, 3);

    await waitForJob(client, id, [JobState.JOB_STATE_RECOVERING], 10_000);
    const done = await waitForJob(client, id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 40_000);
    expect(jobStateName(done.state)).toBe('SUCCEEDED');
    expect(done.attempt).toBe(2);
    expect(done.recoveries).toBe(1);
    expect(done.excludedNodes).toEqual([faulty]);
    // Blamed for everyone: placement scores the node down, and it is no hot spare for a while.
    const blamed = await client.getNode(faulty);
    expect(blamed.faultsBlamed).toBe(1);
    expect(blamed.lastBlamedAt).toBeDefined();
    const [a1, a2] = done.attempts;
    expect(a1!.failure).toMatchObject({ failureClass: FailureClass.FAILURE_CLASS_NODE_FAULT, node: faulty, rank: 1 });
    expect(a1!.failure!.reason).toBe(`node fault: XID 79 (ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS) on GPU 3 of ${faulty}`);
    expect(a2!.grade).toBe(RecoveryGrade.RECOVERY_GRADE_REPLACE_NODES);
    expect(a2!.resumedFromCheckpoint).toBe(checkpoint);
    // The healthy node kept its rank; the faulty one was replaced by the spare.
    expect(nodesOf(done, 2)).toEqual([first.find((n) => n !== faulty), spare]);
    expect(a2!.gradeReason).toContain(`took hot spare ${spare}`);
    expect(markers(marker)).toEqual([
      `1 0 ${first[0]}`, `1 1 ${first[1]}`, `2 0 ${first.find((n) => n !== faulty)} ${checkpoint}`, `2 1 ${spare} ${checkpoint}`,
    ].sort());
    expect(await history(client, id)).toEqual(['PENDING', 'SCHEDULED', 'RUNNING', 'RECOVERING', 'PENDING', 'SCHEDULED', 'RUNNING', 'SUCCEEDED']);

    const cli = await gantry(stack, 'job', 'attempts', id);
    expect(cli.code).toBe(0);
    expect(cli.stdout).toMatch(new RegExp(`^1 +${first.join(',')} +first .* node-fault +node-rank 1 on ${faulty} +XID 79`, 'm'));
    expect(cli.stdout).toMatch(new RegExp(`^2 +\\S+ +replace-nodes .* ${checkpoint.replace(/[/]/g, '\\/')} `, 'm'));
    const port = /"metricsPort":(\d+)/.exec(stack.logsOf('scheduler-0'))![1];
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/gantry_job_recoveries_total\{class="node-fault",grade="replace-nodes",service="scheduler"\} 1/);
    expect(metrics).toMatch(/gantry_job_recovery_duration_seconds_count\{service="scheduler"\} 1/);
  });

  it('an application error, with retry on application errors, restarts in place on the same nodes', async () => {
    const { stack, client } = await setup({ agents: 2 });
    await client.setSchedulingConfig({ recovery: FAST_RECOVERY });
    const marker = `${stack.workDir}/runs.txt`;
    const { job } = await client.submitJob({
      nodes: 2, gpusPerNode: 4, retry: { maxRecoveries: 2, retryOn: [FailureClass.FAILURE_CLASS_APPLICATION] },
      // Rank 1 fails once rank 0 has started (its marker written): failing at once raced rank 0's
      // start under load, which the stop then overtook (no "1 0" marker).
      command: markedCommand(marker, `if [ "$GANTRY_ATTEMPT" = 1 ] && [ "$NODE_RANK" = 1 ]; then until grep -q '^1 0 ' ${marker}; do sleep 0.05; done; echo "ValueError: bad batch" >&2; exit 3; fi; sleep 1`),
    });
    const done = await waitForJob(client, job!.id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 40_000);
    expect(jobStateName(done.state)).toBe('SUCCEEDED');
    expect(done.attempt).toBe(2);
    expect(nodesOf(done, 2)).toEqual(nodesOf(done, 1));
    expect(done.attempts[1]!.grade).toBe(RecoveryGrade.RECOVERY_GRADE_RESTART_IN_PLACE);
    expect(done.attempts[0]!.failure).toMatchObject({ failureClass: FailureClass.FAILURE_CLASS_APPLICATION, rank: 1, exitCode: 3 });
    expect(done.excludedNodes).toEqual([]);
    expect(markers(marker).map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual(['1 0', '1 1', '2 0', '2 1']);
  });

  it('holds the GPUs of a restart in place through the backoff: a job waiting in the queue does not take them', async () => {
    const { client } = await setup({ agents: 2 });
    await client.setSchedulingConfig({ recovery: { ...FAST_RECOVERY, backoffInitialMs: 2_000 } });
    const { job } = await client.submitJob({
      nodes: 2, gpusPerNode: 8, stopGraceSeconds: 1, retry: { maxRecoveries: 1, retryOn: [FailureClass.FAILURE_CLASS_APPLICATION] },
      command: ['sh', '-c', 'if [ "$GANTRY_ATTEMPT" = 1 ]; then sleep 2; exit 1; fi; sleep 1'],
    });
    await waitForJob(client, job!.id, [JobState.JOB_STATE_RUNNING]);
    const { job: waiting } = await client.submitJob({ nodes: 1, gpusPerNode: 8, command: ['true'] });
    const done = await waitForJob(client, job!.id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 40_000);
    expect(jobStateName(done.state)).toBe('SUCCEEDED');
    expect(done.attempts[1]!.grade).toBe(RecoveryGrade.RECOVERY_GRADE_RESTART_IN_PLACE);
    expect(nodesOf(done, 2)).toEqual(nodesOf(done, 1));
    // The waiting job ran only after the restarted attempt had its GPUs.
    const other = await waitForJob(client, waiting!.id, [JobState.JOB_STATE_SUCCEEDED], 30_000);
    expect(other.attempts[0]!.scheduledAt!.getTime()).toBeGreaterThanOrEqual(done.attempts[1]!.scheduledAt!.getTime());
  });

  it('waits to place the next attempt while the checkpoint service cannot say where it resumes from', async () => {
    const { stack, client } = await setup({ agents: 1 });
    await client.setSchedulingConfig({ recovery: FAST_RECOVERY });
    const { job } = await client.submitJob({
      nodes: 1, gpusPerNode: 2, retry: { maxRecoveries: 1, retryOn: [FailureClass.FAILURE_CLASS_APPLICATION] },
      command: ['sh', '-c', 'if [ "$GANTRY_ATTEMPT" = 1 ]; then sleep 2; exit 1; fi; echo "resumed from $GANTRY_RESUME_FROM"'],
    });
    await waitForJob(client, job!.id, [JobState.JOB_STATE_RUNNING]);
    const checkpoint = await commitCheckpoint(stack, job!.id, 1, 5);
    await stack.checkpoint.kill();
    // Placed without its checkpoint, the attempt would train from scratch: it waits instead.
    await waitForJob(client, job!.id, [JobState.JOB_STATE_PENDING], 20_000);
    await new Promise((r) => setTimeout(r, 3_000));
    expect(jobStateName((await client.getJob(job!.id)).state)).toBe('PENDING');
    await stack.checkpoint.start();
    // The restarted service answers with the committed checkpoint (what the scheduler asks next).
    const ck = new CheckpointClient({ address: stack.checkpointAddr, timeoutMs: 5_000, tls: stack.internalClientTls });
    try {
      expect((await ck.getLatestCheckpoint(job!.id))?.path).toBe(checkpoint);
    } finally {
      ck.close();
    }
    const done = await waitForJob(client, job!.id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 30_000);
    expect(jobStateName(done.state)).toBe('SUCCEEDED');
    expect(done.attempts[1]!.resumedFromCheckpoint).toBe(checkpoint);
  });

  it('an application error is not retried by default: FAILED, naming the rank that failed first', async () => {
    const { client } = await setup({ agents: 2 });
    await client.setSchedulingConfig({ recovery: FAST_RECOVERY });
    const { job } = await client.submitJob({ nodes: 2, gpusPerNode: 4, command: ['sh', '-c', 'if [ "$NODE_RANK" = 1 ]; then exit 3; fi; sleep 300'] });
    const done = await waitForJob(client, job!.id, [JobState.JOB_STATE_FAILED], 30_000);
    expect(done.attempt).toBe(1);
    expect(done.reason).toMatch(/^node-rank 1 on node-\d exited with code 3 \(first of 2 failed ranks\); application failures are not retried by the job's retry policy$/);
  });

  it('runs out of its budget: FAILED, with the whole chain shown', async () => {
    const { stack, client } = await setup({ agents: 2 });
    await client.setSchedulingConfig({ recovery: FAST_RECOVERY });
    const { job } = await client.submitJob({ nodes: 1, gpusPerNode: 2, retry: { maxRecoveries: 2, retryOn: [FailureClass.FAILURE_CLASS_APPLICATION] }, command: ['sh', '-c', 'exit 1'] });
    const done = await waitForJob(client, job!.id, (j) => j.state === JobState.JOB_STATE_FAILED, 40_000);
    expect(done.attempt).toBe(3);
    expect(done.recoveries).toBe(2);
    expect(done.reason).toMatch(/; recovery budget spent \(2 of 2\)$/);
    expect(done.attempts.map((a) => a.failure?.failureClass)).toEqual([1, 2, 3].map(() => FailureClass.FAILURE_CLASS_APPLICATION));
    const cli = await gantry(stack, 'job', 'attempts', job!.id);
    expect(cli.stdout.split('\n').filter((l) => /^\d+ /.test(l))).toHaveLength(3);
    expect(cli.stdout).toContain('FAILED; recoveries used 2 of 2');
  });

  it('a job cancelled while RECOVERING is CANCELLED and leaves no process', async () => {
    const { stack, client } = await setup({ agents: 2 });
    await client.setSchedulingConfig({ recovery: { ...FAST_RECOVERY, settleMs: 3_000 } });
    const { job } = await client.submitJob({ nodes: 2, gpusPerNode: 8, stopGraceSeconds: 1, command: ['sh', '-c', 'sleep 300 & wait'] });
    const running = await waitForJob(client, job!.id, [JobState.JOB_STATE_RUNNING]);
    const pids = running.attempts[0]!.ranks.map((r) => r.pid);
    await injectXid(stack, running.attempts[0]!.placement[1]!.node, 48, 0);
    await waitForJob(client, job!.id, [JobState.JOB_STATE_RECOVERING], 10_000);
    const cancelled = await client.cancelJob(job!.id, 'operator gave up');
    expect(jobStateName(cancelled.state)).toBe('CANCELLED');
    for (const pid of pids) await eventually(`rank process ${pid} gone`, () => !pidAlive(pid) || undefined, 10_000);
    await new Promise((r) => setTimeout(r, 2_000));
    const after = await client.getJob(job!.id);
    expect(jobStateName(after.state)).toBe('CANCELLED');
    expect(after.attempt).toBe(1);
    expect(await stack.redis.keys('gantry:node:*:alloc')).toEqual([]);
  });

  it('a scheduler SIGKILLed during a recovery finishes it exactly once', async () => {
    const { stack, client } = await setup({ agents: 3 });
    await client.setSchedulingConfig({ recovery: FAST_RECOVERY });
    const marker = `${stack.workDir}/runs.txt`;
    const { job } = await client.submitJob({ nodes: 2, gpusPerNode: 8, stopGraceSeconds: 1, command: markedCommand(marker, 'if [ "$GANTRY_ATTEMPT" = 1 ]; then sleep 300; else sleep 2; fi') });
    const running = await waitForJob(client, job!.id, [JobState.JOB_STATE_RUNNING]);
    await injectXid(stack, running.attempts[0]!.placement[0]!.node, 79, 0);
    await waitForJob(client, job!.id, [JobState.JOB_STATE_RECOVERING], 10_000);
    await stack.schedulers[0]!.kill();
    await new Promise((r) => setTimeout(r, 1_000));
    await stack.schedulers[0]!.start();
    const done = await waitForJob(client, job!.id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 60_000);
    expect(jobStateName(done.state)).toBe('SUCCEEDED');
    expect(done.attempt).toBe(2);
    expect(markers(marker).map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual(['1 0', '1 1', '2 0', '2 1']);
    const events = await history(client, job!.id);
    expect(events).toEqual(['PENDING', 'SCHEDULED', 'RUNNING', 'RECOVERING', 'PENDING', 'SCHEDULED', 'RUNNING', 'SUCCEEDED']);
  });

  it('a lost node is a node fault: the job recovers on the other nodes', async () => {
    const { stack, client } = await setup({ agents: 3, heartbeatTimeoutMs: 3_000 });
    await client.setSchedulingConfig({ recovery: FAST_RECOVERY });
    const { job } = await client.submitJob({ nodes: 2, gpusPerNode: 8, stopGraceSeconds: 1, command: ['sh', '-c', 'if [ "$GANTRY_ATTEMPT" = 1 ]; then sleep 300; else sleep 1; fi'] });
    const running = await waitForJob(client, job!.id, [JobState.JOB_STATE_RUNNING]);
    const victim = running.attempts[0]!.placement[1]!.node;
    await stack.agents[Number(victim.split('-')[1])]!.kill();
    const done = await waitForJob(client, job!.id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 40_000);
    expect(jobStateName(done.state)).toBe('SUCCEEDED');
    expect(done.attempts[0]!.failure).toMatchObject({ failureClass: FailureClass.FAILURE_CLASS_NODE_FAULT, node: victim });
    expect(done.attempts[0]!.failure!.reason).toMatch(new RegExp(`^node fault: node ${victim} lost: no heartbeat for \\d+s$`));
    expect(nodesOf(done, 2)).not.toContain(victim);
  });

  it('a GPU gone from the inventory when the agent comes back is a node fault of that node', async () => {
    // A heartbeat timeout well above an agent's restart time on a loaded machine: the node must
    // come back before it is declared lost, so the missing GPU is what the job's failure names.
    const { stack, client } = await setup({ agents: 2, heartbeatTimeoutMs: 15_000 });
    await client.setSchedulingConfig({ recovery: FAST_RECOVERY });
    const { job } = await client.submitJob({ nodes: 1, gpusPerNode: 8, stopGraceSeconds: 1, command: ['sh', '-c', 'if [ "$GANTRY_ATTEMPT" = 1 ]; then sleep 300; else sleep 1; fi'] });
    const running = await waitForJob(client, job!.id, [JobState.JOB_STATE_RUNNING]);
    const node = running.attempts[0]!.placement[0]!.node;
    const agent = stack.agents[Number(node.split('-')[1])]!;
    // The host comes back with one GPU fewer (it fell off the bus while the agent was down).
    await agent.kill();
    agent.opts.env!.SIM_GPUS = '7';
    await agent.start();
    const done = await waitForJob(client, job!.id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 40_000);
    expect(jobStateName(done.state)).toBe('SUCCEEDED');
    expect(done.attempts[0]!.failure).toMatchObject({ failureClass: FailureClass.FAILURE_CLASS_NODE_FAULT, node });
    expect(done.attempts[0]!.failure!.reason).toMatch(new RegExp(`^node fault: GPU 7 \\(.+\\) is gone from ${node}'s inventory$`));
    expect(nodesOf(done, 2)).not.toContain(node);
  });

  it('gantry job retry restarts a FAILED job as a new attempt from its newest checkpoint', async () => {
    const { stack, client } = await setup({ agents: 1 });
    const marker = `${stack.workDir}/runs.txt`;
    const { job } = await client.submitJob({ nodes: 1, gpusPerNode: 2, command: markedCommand(marker, 'if [ "$GANTRY_ATTEMPT" = 1 ]; then sleep 2; exit 1; fi') });
    await waitForJob(client, job!.id, [JobState.JOB_STATE_RUNNING]);
    const checkpoint = await commitCheckpoint(stack, job!.id, 1, 7);
    await waitForJob(client, job!.id, [JobState.JOB_STATE_FAILED], 30_000);
    const cli = await gantry(stack, 'job', 'retry', job!.id, '--reason', 'fixed the data');
    expect(cli).toMatchObject({ code: 0, stderr: '' });
    expect(cli.stdout).toBe(`job ${job!.id} PENDING: attempt 2 will resume from its newest committed checkpoint\n`);
    const done = await waitForJob(client, job!.id, [JobState.JOB_STATE_SUCCEEDED], 30_000);
    expect(done.attempts[1]).toMatchObject({ grade: RecoveryGrade.RECOVERY_GRADE_MANUAL_RETRY, gradeReason: 'fixed the data', resumedFromCheckpoint: checkpoint });
    expect(done.recoveries).toBe(0);
    expect(markers(marker)[1]).toBe(`2 0 node-0 ${checkpoint}`);
    const again = await gantry(stack, 'job', 'retry', job!.id);
    expect(again).toEqual({ code: 1, stdout: '', stderr: `gantry: FAILED_PRECONDITION: job ${job!.id} is SUCCEEDED; only a FAILED job can be retried\n` });
  });
});
