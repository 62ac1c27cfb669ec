// Fencing epochs across a control-plane restore: agents keep the highest epoch they accepted
// and report it; a scheduler whose epoch counter went back (Redis restored from an older
// backup) raises its epoch above theirs instead of being refused by the fleet for ever. And an
// implausible epoch (a forged command) is refused, so it cannot brick an agent.
import { describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { AgentCommand, AgentCommandReply, JobState, RankAssignment, jobStateName } from '@gantry/proto';
import { MAX_EPOCH_JUMP, decode, subjects } from '@gantry/bus';
import { keys } from '@gantry/store';
import type { TestStack } from '../harness/stack.js';
import { stackPerTest, waitForJob } from '../harness/fixtures.js';

const setup = stackPerTest();

/** Kills the scheduler, lets `meanwhile` change Redis as a restore would, and starts it again. */
async function restartScheduler(stack: TestStack, meanwhile: () => Promise<unknown>): Promise<void> {
  await stack.schedulers[0]!.kill();
  await stack.redis.del(keys.leader, keys.leaderEpoch);
  await meanwhile();
  await stack.schedulers[0]!.start();
}

async function command(stack: TestStack, epoch: number): Promise<AgentCommandReply> {
  const nc = await connect(stack.natsOptions());
  try {
    const cmd = AgentCommand.create({ epoch, command: { $case: 'assign', assign: RankAssignment.create({ jobId: 'j-forged', attempt: 1, rank: 0, command: ['id'] }) } });
    return decode(AgentCommandReply, (await nc.request(subjects.agentCommand('node-0'), stack.bus.signCommand('node-0', cmd), { timeout: 5_000 })).data, 'reply');
  } finally {
    await nc.close();
  }
}

describe('fencing epochs', () => {
  it('a scheduler restored with an older epoch counter raises it above what the agents accepted, and runs jobs', async () => {
    const { stack, client } = await setup({ agents: 1 });
    // The cluster has seen 50 leaderships; the agent accepts epoch 51.
    await restartScheduler(stack, () => stack.redis.set(keys.epochCounter, '50'));
    const { job: before } = await client.submitJob({ nodes: 1, gpusPerNode: 1, command: ['true'] });
    expect(jobStateName((await waitForJob(client, before!.id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED])).state)).toBe('SUCCEEDED');
    expect(Number(await stack.redis.get(keys.leaderEpoch))).toBe(51);

    // A restore from a backup taken before any of that: the counter is back at 0.
    await restartScheduler(stack, () => stack.redis.set(keys.epochCounter, '0'));
    const { job: after } = await client.submitJob({ nodes: 1, gpusPerNode: 1, command: ['true'] });
    expect(jobStateName((await waitForJob(client, after!.id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED])).state)).toBe('SUCCEEDED');
    expect(Number(await stack.redis.get(keys.leaderEpoch))).toBeGreaterThan(51);
    expect(stack.logsOf('scheduler-0')).toContain('raising the epoch floor');
  });

  it('an agent refuses a command with an implausible epoch and keeps obeying the real scheduler', async () => {
    const { stack, client } = await setup({ agents: 1 });
    const forged = await command(stack, 10 ** 12);
    expect(forged).toEqual({ ok: false, message: 'implausible epoch 1000000000000 (last accepted 0)' });
    expect((await command(stack, MAX_EPOCH_JUMP + 1)).message).toMatch(/^implausible epoch/);
    const { job } = await client.submitJob({ nodes: 1, gpusPerNode: 1, command: ['true'] });
    expect(jobStateName((await waitForJob(client, job!.id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED])).state)).toBe('SUCCEEDED');
  });
});
