// Ranks whose agent is gone, and the evidence a failed rank leaves, through the real stack.
import { processGroupMembers } from '../harness/process.js';
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { JobState, NodeState, RankPhase, jobStateName, type Job } from '@gantry/proto';
import { eventually } from '../harness/stack.js';
import { stackPerTest, waitForJob } from '../harness/fixtures.js';

const setup = stackPerTest();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


/** The group less the watchdog's one-second `sleep 1`, which is a new process every poll. */
function lastingMembers(pgid: number): number[] {
  return processGroupMembers(pgid).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8') !== 'sleep\u00001\u0000';
    } catch {
      return false;
    }
  }).sort((a, b) => a - b);
}

// The rank forks a child, so "gone" covers the whole group, not just the process the agent started.
const FORKING_RANK = ['sh', '-c', 'sleep 300 & wait'];
// wrapper + watchdog + sh + sleep
const GROUP_SIZE = 4;

describe('orphans', () => {
  it('an agent killed and left dead past the partition grace leaves no rank process behind', async () => {
    const graceMs = 3_000;
    const stopGraceSeconds = 1;
    const { stack, client } = await setup({ agents: 1, env: { 'node-agent': { PARTITION_GRACE_MS: String(graceMs) } } });
    // No recovery: a retried job would record the lost node's rank as lost at once, and this
    // test wants to see the exit the wrapper recorded reach the job after the agent returns.
    const { job } = await client.submitJob({ nodes: 1, gpusPerNode: 8, stopGraceSeconds, retry: { maxRecoveries: 0, retryOn: [] }, command: FORKING_RANK });
    const running = await waitForJob(client, job!.id, (j) => j.state === JobState.JOB_STATE_RUNNING);
    const pgid = running.attempts.at(-1)!.ranks[0]!.pid;
    await eventually('the rank and its forked child', () => processGroupMembers(pgid).length >= GROUP_SIZE || undefined, 10_000);

    await stack.agents[0]!.kill();
    const killedAt = Date.now();
    // Within the grace the ranks run on, as for an agent about to be restarted.
    await sleep(graceMs - 1_000);
    expect(processGroupMembers(pgid).length).toBeGreaterThanOrEqual(GROUP_SIZE);

    await eventually('every process of the rank gone', () => processGroupMembers(pgid).length === 0 || undefined, graceMs + stopGraceSeconds * 1_000 + 10_000);
    // The watchdog polls once a second, so up to a couple of seconds past the grace; a margin for a busy machine.
    expect(Date.now() - killedAt).toBeLessThan(graceMs + stopGraceSeconds * 1_000 + 6_000);

    // The wrapper recorded the status as ever: SIGTERM was enough.
    const rankDir = join(stack.agentStateDir(0), 'ranks', `${job!.id}-${running.attempt}-0`);
    expect(readFileSync(join(rankDir, 'exit'), 'utf8').trim()).toBe('143');
    expect(existsSync(join(rankDir, 'exit.orphaned'))).toBe(true);

    // An agent that comes back later reports how the rank ended, from that record.
    await stack.agents[0]!.start();
    const rank = await eventually('the orphan\'s exit reported', async () => {
      const r = (await client.getJob(job!.id)).attempts.find((a) => a.number === running.attempt)!.ranks[0]!;
      return r.phase === RankPhase.RANK_PHASE_EXITED ? r : undefined;
    }, 30_000);
    expect(rank.signal).toBe('SIGTERM');
    expect(rank.pid).toBe(pgid);
  });

  it('an agent restarted within the partition grace finds its ranks running and re-adopts them', async () => {
    const graceMs = 10_000;
    // Silence within the grace but longer than the watchdog's floor (3 missed beats): only
    // the configured grace keeps the ranks alive. The node must not be declared lost meanwhile.
    const { stack, client } = await setup({ agents: 1, heartbeatTimeoutMs: 30_000, env: { 'node-agent': { PARTITION_GRACE_MS: String(graceMs) } } });
    const { job } = await client.submitJob({ nodes: 1, gpusPerNode: 8, stopGraceSeconds: 1, command: FORKING_RANK });
    const running = await waitForJob(client, job!.id, (j) => j.state === JobState.JOB_STATE_RUNNING);
    const pgid = running.attempts.at(-1)!.ranks[0]!.pid;
    const members = await eventually('the rank and its forked child', () => { const m = lastingMembers(pgid); return m.length === GROUP_SIZE ? m : undefined; }, 10_000);

    await stack.agents[0]!.kill();
    const killedAt = Date.now();
    await sleep(3_000);
    await stack.agents[0]!.start();
    const silenceMs = Date.now() - killedAt;
    expect(silenceMs).toBeLessThan(graceMs - 2_000); // otherwise this test proves nothing

    // Past the point where a watchdog that ignored the restart would have stopped the rank.
    await sleep(Math.max(0, killedAt + graceMs + 3_000 - Date.now()));
    expect(lastingMembers(pgid)).toEqual(members);
    expect(stack.logsOf('agent-node-0')).toContain('re-adopted running rank');
    expect((await client.getNode('node-0')).state).toBe(NodeState.NODE_STATE_READY);
    expect(jobStateName((await client.getJob(job!.id)).state)).toBe('RUNNING');

    // The re-adopted rank is the agent's again: a cancel stops all of it.
    await client.cancelJob(job!.id, 'test over');
    await waitForJob(client, job!.id, [JobState.JOB_STATE_CANCELLED], 20_000);
    await eventually('every process of the rank gone after the cancel', () => processGroupMembers(pgid).length === 0 || undefined, 15_000);
  });
});

describe('failure evidence from the rank', () => {
  it('a rank\'s torchelastic error file, or else its last exception line, becomes the rank\'s error', async () => {
    const { client } = await setup({ agents: 2 });
    // Rank 0 fails as torchrun does (error file); rank 1 only prints a traceback.
    const errorFile = JSON.stringify({ message: { message: 'ValueError: bad batch', extraInfo: { py_callstack: 'Traceback (most recent call last):\n...', timestamp: '1733090000' } } });
    const script = [
      'if [ "$NODE_RANK" = 0 ]; then',
      `  printf '%s' '${errorFile}' > "$TORCHELASTIC_ERROR_FILE"; echo "RuntimeError: not the evidence" >&2; sleep 1; exit 1`,
      'fi',
      'printf "Traceback (most recent call last):\\n  File \\"train.py\\", line 1\\ntorch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1970\\n" >&2',
      'sleep 1; exit 1',
    ].join('\n');
    const { job } = await client.submitJob({ nodes: 2, gpusPerNode: 1, stopGraceSeconds: 1, command: ['sh', '-c', script] });
    const exited = await eventually('both ranks\' exits recorded', async () => {
      const j: Job = await client.getJob(job!.id);
      const ranks = j.attempts.find((a) => a.number === 1)?.ranks ?? [];
      return ranks.length === 2 && ranks.every((r) => r.phase === RankPhase.RANK_PHASE_EXITED) ? ranks : undefined;
    }, 40_000);
    const [r0, r1] = [exited.find((r) => r.rank === 0)!, exited.find((r) => r.rank === 1)!];
    expect(r0.error).toBe('ValueError: bad batch');
    expect(r0.errorTime).toEqual(new Date(1733090000_000));
    // Rank 1 may have exited on its own or been stopped once rank 0 failed: its stderr says the same.
    expect(r1.error).toBe('torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1970');
    expect(r1.errorTime).toEqual(r1.finishedAt);
  });
});
