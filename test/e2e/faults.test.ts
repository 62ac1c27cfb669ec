// Faults of the control plane and of hosts, through the real services.
import { describe, expect, it } from 'vitest';
import { FailureClass, JobState, NodeState, RankPhase, jobStateName } from '@gantry/proto';
import { eventually, pidAlive } from '../harness/stack.js';
import { stackPerTest, waitForJob } from '../harness/fixtures.js';

const setup = stackPerTest();

describe('faults', () => {
  it('a scheduler killed mid-job and restarted finishes the job exactly once', async () => {
    const { stack, client } = await setup({ agents: 2 });
    // Each rank appends one line per run to a shared file: a rank started twice shows up.
    const marker = `${stack.workDir}/runs.txt`;
    const { job } = await client.submitJob({ nodes: 2, gpusPerNode: 8, command: ['sh', '-c', `echo "$NODE_RANK $GANTRY_ATTEMPT" >> ${marker}; sleep 4`] });
    const id = job!.id;
    await waitForJob(client, id, (j) => j.state === JobState.JOB_STATE_RUNNING);
    await stack.schedulers[0]!.kill();
    await new Promise((r) => setTimeout(r, 1_000));
    await stack.schedulers[0]!.start();
    const done = await waitForJob(client, id, (j) => j.state === JobState.JOB_STATE_SUCCEEDED || j.state === JobState.JOB_STATE_FAILED, 40_000);
    expect(jobStateName(done.state)).toBe('SUCCEEDED');
    expect(done.attempt).toBe(1);
    const { readFileSync } = await import('node:fs');
    expect(readFileSync(marker, 'utf8').trim().split('\n').sort()).toEqual(['0 1', '1 1']);
    // Exactly one terminal event in the job's history.
    const events = [];
    for await (const e of client.watchJob(id)) events.push(jobStateName(e.toState));
    expect(events).toEqual(['PENDING', 'SCHEDULED', 'RUNNING', 'SUCCEEDED']);
  });

  it('a job submitted while the scheduler is down runs once it is back', async () => {
    const { stack, client } = await setup({ agents: 1 });
    await stack.schedulers[0]!.kill();
    const submitting = client.submitJob({ nodes: 1, gpusPerNode: 2, command: ['true'] }, { idempotencyKey: 'while-down' });
    await new Promise((r) => setTimeout(r, 1_500));
    await stack.schedulers[0]!.start();
    const { job } = await submitting;
    const done = await waitForJob(client, job!.id, (j) => j.state === JobState.JOB_STATE_SUCCEEDED, 40_000);
    expect(done.attempt).toBe(1);
  });

  it('an agent killed mid-job makes its node LOST and, with no recovery budget, the job FAILED naming the node', async () => {
    const { stack, client } = await setup({ agents: 2, heartbeatTimeoutMs: 3_000 });
    await client.setSchedulingConfig({ recovery: { settleMs: 1_000 } });
    const { job } = await client.submitJob({ nodes: 2, gpusPerNode: 8, stopGraceSeconds: 1, retry: { maxRecoveries: 0, retryOn: [] }, command: ['sleep', '300'] });
    const running = await waitForJob(client, job!.id, (j) => j.state === JobState.JOB_STATE_RUNNING);
    const victim = running.attempts.at(-1)!.placement.find((p) => p.rank === 1)!.node;
    const survivor = running.attempts.at(-1)!.ranks.find((r) => r.rank === 0)!;
    const killedAt = Date.now();
    await stack.agents[Number(victim.split('-')[1])]!.kill();
    await waitForJob(client, job!.id, (j) => j.state === JobState.JOB_STATE_RECOVERING, 20_000);
    // The rank on the surviving node is stopped at once, before attribution.
    await eventually('surviving rank stopped', () => !pidAlive(survivor.pid) || undefined, 10_000);
    const failed = await waitForJob(client, job!.id, (j) => j.state === JobState.JOB_STATE_FAILED, 20_000);
    const took = Date.now() - killedAt;
    // Heartbeat timeout, then the settle window, with margin for a loaded machine.
    expect(took).toBeLessThan(3_000 + 1_000 + 3_000);
    expect(failed.reason).toMatch(new RegExp(`^node fault: node ${victim} lost: no heartbeat for \\d+s; recovery budget spent \\(0 of 0\\)$`));
    expect(failed.attempts.at(-1)!.failure).toMatchObject({ node: victim, failureClass: FailureClass.FAILURE_CLASS_NODE_FAULT });
    expect(failed.excludedNodes).toEqual([victim]);
    expect((await client.getNode(victim)).state).toBe(NodeState.NODE_STATE_LOST);
  });

  it('a restarted agent re-adopts its running ranks and reports their exit', async () => {
    const { stack, client } = await setup({ agents: 1 });
    const { job } = await client.submitJob({ nodes: 1, gpusPerNode: 8, command: ['sh', '-c', 'sleep 3; echo finished; exit 7'] });
    const running = await waitForJob(client, job!.id, (j) => j.state === JobState.JOB_STATE_RUNNING);
    const pid = running.attempts.at(-1)!.ranks[0]!.pid;
    await stack.agents[0]!.kill();
    expect(pidAlive(pid)).toBe(true);
    await stack.agents[0]!.start();
    const done = await waitForJob(client, job!.id, (j) => j.state === JobState.JOB_STATE_FAILED, 30_000);
    const rank = done.attempts.at(-1)!.ranks[0]!;
    expect(rank.phase).toBe(RankPhase.RANK_PHASE_EXITED);
    expect(rank.exitCode).toBe(7);
    expect(rank.pid).toBe(pid);
    const lines = [];
    for await (const l of client.streamLogs(job!.id)) lines.push(l.line?.text);
    expect(lines).toEqual(['finished']);
  });
});

describe('partitions', () => {
  it('cut off from NATS past the grace period, an agent stops its ranks; on reconnect it reconciles and reports each exit once', async () => {
    const { stack, client } = await setup({ agents: 1, heartbeatTimeoutMs: 3_000, env: { 'node-agent': { PARTITION_GRACE_MS: '2000' } } });
    const { job } = await client.submitJob({ nodes: 1, gpusPerNode: 8, stopGraceSeconds: 1, retry: { maxRecoveries: 0, retryOn: [] }, command: ['sleep', '300'] });
    const running = await waitForJob(client, job!.id, (j) => j.state === JobState.JOB_STATE_RUNNING);
    const pid = running.attempts.at(-1)!.ranks[0]!.pid;
    await stack.nats.stop();
    // The scheduler (on Redis) declares the silent node lost and fails the job ...
    const failed = await waitForJob(client, job!.id, (j) => j.state === JobState.JOB_STATE_FAILED, 15_000);
    expect(failed.reason).toMatch(/node node-0 lost/);
    // ... and the agent, past its grace period, stops the rank on its own.
    await eventually('rank stopped by the partitioned agent', () => !pidAlive(pid) || undefined, 15_000);
    await stack.nats.start();
    await eventually('node READY again', async () => ((await client.getNode('node-0')).state === NodeState.NODE_STATE_READY ? true : undefined), 30_000);
    const rank = await eventually('rank exit reported after reconnect', async () => {
      const r = (await client.getJob(job!.id)).attempts.at(-1)!.ranks[0]!;
      return r.phase === RankPhase.RANK_PHASE_EXITED ? r : undefined;
    }, 30_000);
    expect(rank.signal).toBe('SIGTERM');
    const events = [];
    for await (const e of client.watchJob(job!.id)) events.push(jobStateName(e.toState));
    expect(events).toEqual(['PENDING', 'SCHEDULED', 'RUNNING', 'RECOVERING', 'FAILED']);
    // The GPUs are free again for new work.
    const { job: next } = await client.submitJob({ nodes: 1, gpusPerNode: 8, command: ['true'] });
    await waitForJob(client, next!.id, (j) => j.state === JobState.JOB_STATE_SUCCEEDED, 30_000);
  });
});

describe('rank output on the host disk', () => {
  it('is bounded once shipped, with every line still delivered in order', async () => {
    const { stack, client } = await setup({ agents: 1, env: { 'node-agent': { RANK_LOG_MAX_BYTES: '4096' } } });
    // ~20 KB of output, then a quiet moment in which the agent may empty the shipped file.
    const { job } = await client.submitJob({ nodes: 1, gpusPerNode: 1, command: ['sh', '-c', 'i=1; while [ $i -le 2000 ]; do echo "line-$i"; i=$((i+1)); done; sleep 3'] });
    const done = await waitForJob(client, job!.id, [JobState.JOB_STATE_SUCCEEDED], 30_000);
    const lines: string[] = [];
    for await (const l of client.streamLogs(job!.id)) lines.push(l.line?.text ?? '');
    expect(lines).toEqual(Array.from({ length: 2000 }, (_, i) => `line-${i + 1}`));
    const { statSync } = await import('node:fs');
    const file = `${stack.agentStateDir(0)}/ranks/${job!.id}-${done.attempt}-0/stdout.log`;
    expect(statSync(file).size).toBeLessThan(4096);
    expect(stack.logsOf('agent-node-0')).toContain('rank log shipped and truncated on the host');
  });
});
