// Scheduler high availability: two replicas, the leader frozen mid-job (SIGSTOP), the standby
// takes over within the lease, and the old leader, woken up, can no longer write or command.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { GantryClient } from '@gantry/sdk';
import { AgentCommand, AgentCommandReply, Job, JobState, RankAssignment } from '@gantry/proto';
import { decode, subjects } from '@gantry/bus';
import { FencedError, JobStore, keys } from '@gantry/store';
import { TestStack, eventually } from '../harness/stack.js';
import { waitForJob } from '../harness/fixtures.js';

let stack: TestStack;
let client: GantryClient;

beforeAll(async () => {
  stack = await new TestStack({ agents: 2, schedulers: 2, leaseTtlMs: 2_000 }).start();
  client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 4_000, retry: { maxAttempts: 30 } });
});

afterAll(async () => {
  client?.close();
  await stack?.stop();
});

function finished(id: string): Promise<Job> {
  return waitForJob(client, id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 40_000);
}

describe('scheduler failover', () => {
  it('a standby takes over from a frozen leader; the woken old leader is fenced', async () => {
    expect(await stack.redis.get(keys.leader)).toBe('scheduler-0');
    const oldEpoch = Number(await stack.redis.get(keys.leaderEpoch));
    const { job } = await client.submitJob({ nodes: 2, gpusPerNode: 8, command: ['sh', '-c', 'sleep 3'] });
    await eventually('RUNNING', async () => ((await client.getJob(job!.id)).state === JobState.JOB_STATE_RUNNING ? true : undefined));

    const frozenAt = Date.now();
    stack.schedulers[0]!.pause();
    await eventually('scheduler-1 leads', async () => ((await stack.redis.get(keys.leader)) === 'scheduler-1' ? true : undefined), 10_000, 50);
    // Within the lease TTL plus one renewal period (TTL/3) and scheduling slack.
    expect(Date.now() - frozenAt).toBeLessThan(2_000 + 2_500);
    const newEpoch = Number(await stack.redis.get(keys.leaderEpoch));
    expect(newEpoch).toBeGreaterThan(oldEpoch);

    // The running job finishes under the new leader, exactly once, and new work is scheduled.
    const a = await finished(job!.id);
    expect(a.state).toBe(JobState.JOB_STATE_SUCCEEDED);
    // Rank reports the frozen leader had pulled but not acknowledged reach the new leader
    // within seconds (short ack wait and pull expiry), not after a 30 s redelivery timeout.
    expect(Date.now() - frozenAt).toBeLessThan(12_000);
    expect(a.attempt).toBe(1);
    const { job: b } = await client.submitJob({ nodes: 1, gpusPerNode: 4, command: ['true'] });
    expect((await finished(b!.id)).state).toBe(JobState.JOB_STATE_SUCCEEDED);

    // Wake the old leader: it must notice it lost the lease and not act.
    stack.schedulers[0]!.resume();
    await eventually('old leader notices', () => (stack.logsOf('scheduler-0').includes('lost leadership') ? true : undefined), 10_000);
    expect(await stack.redis.get(keys.leader)).toBe('scheduler-1');

    // Its epoch no longer passes the fence on any write ...
    const store = new JobStore(stack.redis);
    const rec = (await store.get(b!.id))!;
    await expect(store.commit({ prev: rec, next: rec.job, reason: 'stale write', epoch: oldEpoch })).rejects.toBeInstanceOf(FencedError);
    // ... and agents refuse its commands.
    const nc = await connect(stack.natsOptions());
    try {
      const cmd = AgentCommand.create({ epoch: oldEpoch, command: { $case: 'assign', assign: RankAssignment.create({ jobId: 'j-stale', attempt: 1, rank: 0, command: ['true'] }) } });
      const reply = decode(AgentCommandReply, (await nc.request(subjects.agentCommand('node-0'), stack.bus.signCommand('node-0', cmd), { timeout: 5_000 })).data, 'reply');
      expect(reply.ok).toBe(false);
      expect(reply.message).toMatch(/stale epoch/);
    } finally {
      await nc.close();
    }
  });
});
