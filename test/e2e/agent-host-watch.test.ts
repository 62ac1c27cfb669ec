// The agent watching its host across its own restarts and while GPUs disappear, through the
// real services: XIDs logged while the agent is down are reported once it is back (its kmsg
// cursor), nothing twice; a GPU that leaves the inventory (periodic fingerprint) shrinks the
// node's GPU list and sends the job that held it to recovery.
import { describe, expect, it } from 'vitest';
import type { GantryClient } from '@gantry/sdk';
import { FailureClass, JobState, jobStateName } from '@gantry/proto';
import { eventually, type TestStack } from '../harness/stack.js';
import { stackPerTest, waitForJob } from '../harness/fixtures.js';
import { sim } from '../harness/tools.js';
import { FAST_RECOVERY } from '../harness/fast-config.js';

const setup = stackPerTest();

const AGENT_ENV = { 'node-agent': { INVENTORY_INTERVAL_MS: '1000' } };

async function xidsOf(client: GantryClient, node: string): Promise<number[]> {
  const { events } = await client.listNodeEvents(node, { limit: 100 });
  return events.flatMap((e) => (e.event?.$case === 'xid' ? [e.event.xid.xid] : []));
}

/** Restarts agent `i` (killed, as by a crash); returns where its log for the new process begins. */
async function restart(stack: TestStack, i: number, meanwhile: () => Promise<void> = async () => undefined): Promise<number> {
  const agent = stack.agents[i]!;
  await agent.kill();
  await meanwhile();
  const from = stack.logsOf(`agent-${stack.nodeName(i)}`).length;
  await agent.start();
  return from;
}

/**
 * XIDs the agent process started at log offset `from` reported, from its /metrics (a re-report
 * shows here even when JetStream drops the duplicate by its message id).
 */
async function reportedByAgent(stack: TestStack, i: number, from: number): Promise<Record<string, number>> {
  const port = await eventually('the restarted agent metrics port', () => /"metricsPort":(\d+)/.exec(stack.logsOf(`agent-${stack.nodeName(i)}`).slice(from))?.[1], 15_000);
  const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of body.matchAll(/^gantry_xid_events_total\{([^}]*)\} (\d+)/gm)) {
    const xid = /xid="(\d+)"/.exec(m[1]!)?.[1];
    if (xid) out[xid] = (out[xid] ?? 0) + Number(m[2]);
  }
  return out;
}

describe('agent restarts', () => {
  it('an XID logged while the agent is down is reported once after it starts; nothing already reported is reported again', async () => {
    const { stack, client } = await setup({ agents: 1, env: AGENT_ENV });
    await sim(stack, 0, 'inject', 'xid', '13', '--gpu', '1');
    await eventually('XID 13 reported', async () => ((await xidsOf(client, 'node-0')).includes(13) ? true : undefined), 15_000);

    const first = await restart(stack, 0, () => sim(stack, 0, 'inject', 'xid', '31', '--gpu', '2'));
    await eventually('XID 31 from the backlog', async () => ((await xidsOf(client, 'node-0')).includes(31) ? true : undefined), 15_000);
    // A moment for anything else the restarted agent might (wrongly) send.
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await xidsOf(client, 'node-0')).sort()).toEqual([13, 31]);
    expect(await reportedByAgent(stack, 0, first)).toEqual({ 31: 1 });
    const { events } = await client.listNodeEvents('node-0', { limit: 100 });
    const x31 = events.find((e) => e.event?.$case === 'xid' && e.event.xid.xid === 31);
    expect(x31?.event?.$case === 'xid' && x31.event.xid.gpuIndex).toBe(2);
    expect(stack.logsOf('agent-node-0').slice(first)).toContain('reading the kernel log after the last record handled');

    // An Xid 79: the GPU falls off the bus and leaves the node's inventory, and stays gone
    // (this boot) when the agent restarts, which reports nothing again.
    await sim(stack, 0, 'inject', 'xid', '79', '--gpu', '5');
    const node = await eventually('GPU 5 gone from node-0', async () => {
      const n = await client.getNode('node-0');
      return n.gpus.length === 7 ? n : undefined;
    }, 15_000);
    expect(node.gpus.map((g) => g.index)).toEqual([0, 1, 2, 3, 4, 6, 7]);
    const second = await restart(stack, 0);
    await eventually('the restarted agent registered', () => stack.logsOf('agent-node-0').slice(second).includes('"msg":"registered"') || undefined, 15_000);
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await client.getNode('node-0')).gpus.map((g) => g.index)).toEqual([0, 1, 2, 3, 4, 6, 7]);
    expect(await reportedByAgent(stack, 0, second)).toEqual({});
    expect((await xidsOf(client, 'node-0')).sort((a, b) => a - b)).toEqual([13, 31, 79]);

    // A reboot while the agent is down: sequence numbers restart, the GPU is back. The new
    // boot's XID is reported although its number is below the old cursor; the old ones are not.
    const third = await restart(stack, 0, async () => {
      await sim(stack, 0, 'reboot');
      await sim(stack, 0, 'inject', 'xid', '13', '--gpu', '6');
    });
    await eventually('GPU 5 back on node-0', async () => ((await client.getNode('node-0')).gpus.length === 8 ? true : undefined), 15_000);
    expect(await eventually('the new boot XID reported', async () => {
      const r = await reportedByAgent(stack, 0, third);
      return r['13'] ? r : undefined;
    }, 15_000)).toEqual({ 13: 1 });
    expect(stack.logsOf('agent-node-0').slice(third)).toContain('reading the kernel log from the oldest record of this boot');
    const log = await client.listNodeEvents('node-0', { limit: 100 });
    const reasons = log.events.flatMap((e) => (e.event?.$case === 'transition' ? [e.event.transition.reason] : []));
    expect(reasons.some((r) => /^GPU 5 \(GPU-.+\) is back in node-0's inventory$/.test(r))).toBe(true);
    expect(reasons.some((r) => /^GPU 5 \(GPU-.+\) is gone from node-0's inventory$/.test(r))).toBe(true);
  });
});

describe('GPU inventory', () => {
  it('a GPU that leaves the inventory while a job uses it: the node GPU list shrinks, the job recovers elsewhere as a node fault', async () => {
    const { stack, client } = await setup({ agents: 2, env: AGENT_ENV });
    await client.setSchedulingConfig({ recovery: FAST_RECOVERY });
    const { job } = await client.submitJob({ nodes: 1, gpusPerNode: 8, stopGraceSeconds: 1, command: ['sh', '-c', 'if [ "$GANTRY_ATTEMPT" = 1 ]; then sleep 300; else sleep 1; fi'] });
    const running = await waitForJob(client, job!.id, [JobState.JOB_STATE_RUNNING]);
    const node = running.attempts[0]!.placement[0]!.node;
    const i = Number(node.split('-')[1]);
    const before = await client.getNode(node);
    const uuid = before.gpus.find((g) => g.index === 3)!.uuid;
    // Off the bus with no XID the agent could read: only the periodic fingerprint sees it.
    await sim(stack, i, 'inject', 'gpu-lost', '--gpu', '3');

    await waitForJob(client, job!.id, [JobState.JOB_STATE_RECOVERING], 15_000);
    const after = await client.getNode(node);
    expect(after.gpus.map((g) => g.index)).toEqual([0, 1, 2, 4, 5, 6, 7]);
    const done = await waitForJob(client, job!.id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 40_000);
    expect(jobStateName(done.state)).toBe('SUCCEEDED');
    expect(done.attempts[0]!.failure).toMatchObject({ failureClass: FailureClass.FAILURE_CLASS_NODE_FAULT, node });
    expect(done.attempts[0]!.failure!.reason).toBe(`node fault: GPU 3 (${uuid}) is gone from ${node}'s inventory`);
    // Blamed and excluded; with 7 GPUs left an 8-GPU attempt could not go back to it anyway.
    expect(done.excludedNodes).toEqual([node]);
    expect(done.attempts[1]!.placement.map((p) => p.node)).not.toContain(node);
    const { events } = await client.listNodeEvents(node, { limit: 50 });
    const reasons = events.flatMap((e) => (e.event?.$case === 'transition' ? [e.event.transition.reason] : []));
    expect(reasons).toContain(`GPU 3 (${uuid}) is gone from ${node}'s inventory`);
    expect(await xidsOf(client, node)).toEqual([]);
  });
});
