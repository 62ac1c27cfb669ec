// The bus under authorisation (issue 12), against the real nats-server of the test stack: each
// agent's NATS user can speak only for its own node (the server refuses the rest), what gets
// through with a valid user but a lying payload is dropped by the scheduler, and agents run
// only commands the scheduler signed for them. The rest of the e2e suite runs under the same
// authorisation, which shows every allowed action still works.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AgentCommand, AgentCommandReply, JobState, NodeHeartbeat, NodeState, RankAssignment, RankEvent, RankPhase, SignedAgentCommand, jobStateName } from '@gantry/proto';
import { agentInboxPrefix, decode, encode, signCommand, subjects } from '@gantry/bus';
import { natsAuthenticator } from '@gantry/service-kit/connections';
import { NodeStore } from '@gantry/store';
import { GantryClient } from '@gantry/sdk';
import { TestStack, eventually } from '../harness/stack.js';
import { waitForJob } from '../harness/fixtures.js';

let stack: TestStack;
let client: GantryClient;
const open: NatsConnection[] = [];

beforeAll(async () => {
  stack = await new TestStack({ agents: 2 }).start();
  client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 5_000, retry: { maxAttempts: 20 } });
});
afterAll(async () => {
  await Promise.all(open.map((nc) => nc.close()));
  client?.close();
  await stack?.stop();
});

/** A connection as node's agent (its own NKEY user and inbox), recording the server's permission errors. */
async function asAgent(node: string): Promise<{ nc: NatsConnection; violations: string[] }> {
  const nc = await connect({ servers: stack.nats.url, authenticator: natsAuthenticator(stack.bus.seedFile({ kind: 'agent', node })), inboxPrefix: agentInboxPrefix(node), name: `test as ${node}` });
  open.push(nc);
  const violations: string[] = [];
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'error') violations.push(s.error.message);
  })();
  return { nc, violations };
}

async function asOperator(): Promise<NatsConnection> {
  const nc = await connect(stack.natsOptions());
  open.push(nc);
  return nc;
}

/** `gantry_agent_messages_dropped_total` of the scheduler, by kind and reason. */
async function dropped(kind: string, reason: string): Promise<number> {
  const port = /"metricsPort":(\d+)/.exec(stack.logsOf('scheduler-0'))?.[1];
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('gantry_agent_messages_dropped_total{') && l.includes(`kind="${kind}"`) && l.includes(`reason="${reason}"`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

/** A job running one long rank, and the node it was placed on. */
async function runningJob(): Promise<{ id: string; node: string }> {
  const { job } = await client.submitJob({ nodes: 1, gpusPerNode: 1, command: ['sleep', '120'] });
  const running = await waitForJob(client, job!.id, [JobState.JOB_STATE_RUNNING], 45_000);
  return { id: running.id, node: running.attempts.at(-1)!.placement[0]!.node };
}

const other = (node: string) => (node === stack.nodeName(0) ? stack.nodeName(1) : stack.nodeName(0));

describe('NATS authorisation', () => {
  it('refuses a client without credentials', async () => {
    await expect(connect({ servers: stack.nats.url, maxReconnectAttempts: 0, reconnect: false })).rejects.toThrow(/Authorization Violation/);
  });

  it('refuses an agent publishing for another node, reading its commands or another inbox', async () => {
    const { nc, violations } = await asAgent('node-0');
    const hb = encode(NodeHeartbeat, NodeHeartbeat.create({ node: 'node-1', seq: 1, time: new Date() }));
    nc.publish(subjects.agentHeartbeat('node-1'), hb);
    await expect(nc.request(subjects.agentRegister('node-1'), hb, { timeout: 2_000 })).rejects.toThrow(/Permissions Violation for Publish to "gantry\.v1\.agent\.register\.node-1"/);
    // JetStream publishes are requests too: the rank event never reaches the stream.
    await expect(nc.request(subjects.rankEvent('node-1'), encode(RankEvent, RankEvent.create({ node: 'node-1' })), { timeout: 2_000 })).rejects.toThrow(/Permissions Violation/);
    await expect(nc.request(subjects.agentCommand('node-1'), new Uint8Array(), { timeout: 2_000 })).rejects.toThrow(/Permissions Violation/);
    await expect(nc.request(subjects.logs('j-x', 1, 0, 'node-1'), new Uint8Array(), { timeout: 2_000 })).rejects.toThrow(/Permissions Violation/);
    await expect(nc.request(subjects.checkpointReport('node-1', 'j-x'), new Uint8Array(), { timeout: 2_000 })).rejects.toThrow(/Permissions Violation/);
    const subErrors: string[] = [];
    for (const subject of [subjects.agentCommand('node-1'), '_INBOX.>', `${agentInboxPrefix('node-1')}.>`, subjects.agentHeartbeatAll]) {
      const sub = nc.subscribe(subject);
      subErrors.push(String(await sub.closed));
    }
    expect(subErrors.every((e) => /Permissions Violation for Subscription/.test(e))).toBe(true);
    await eventually('the heartbeat violation', () => violations.some((v) => v.includes('Publish to "gantry.v1.agent.heartbeat.node-1"')), 5_000);
    // Its own subjects are allowed: the heartbeat goes through (and the agent process itself works, below).
    nc.publish(subjects.agentHeartbeat('node-0'), encode(NodeHeartbeat, NodeHeartbeat.create({ node: 'node-0', seq: 1, time: new Date(), instanceId: 'not-the-agent' })));
    await nc.flush();
    expect(violations.filter((v) => v.includes('heartbeat.node-0'))).toEqual([]);
  });

  it('lets only the scheduler send commands: another service user is refused too', async () => {
    for (const kind of ['gateway', 'checkpoint'] as const) {
      const nc = await connect({ servers: stack.nats.url, authenticator: natsAuthenticator(stack.bus.seedFile({ kind })) });
      open.push(nc);
      await expect(nc.request(subjects.agentCommand('node-0'), new Uint8Array(), { timeout: 2_000 })).rejects.toThrow(/Permissions Violation/);
    }
  });
});

describe('the scheduler believes the subject, the registered instance and the placement', () => {
  it('drops a heartbeat whose payload names another node, and one from another agent instance', async () => {
    const { nc } = await asAgent('node-0');
    const before = await dropped('heartbeat', 'node-mismatch');
    nc.publish(subjects.agentHeartbeat('node-0'), encode(NodeHeartbeat, NodeHeartbeat.create({ node: 'node-1', seq: 1, time: new Date() })));
    await eventually('the node-mismatch drop counted', async () => (await dropped('heartbeat', 'node-mismatch')) > before, 15_000);
    expect(stack.logsOf('scheduler-0')).toMatch(/"kind":"heartbeat","reason":"node-mismatch","sender":"node-0","claimed":"node-1"/);
    // The earlier heartbeat on node-0's own subject came from an instance that never registered.
    expect(await dropped('heartbeat', 'instance-mismatch')).toBeGreaterThanOrEqual(1);
  });

  it('drops a rank event for a rank not placed on the reporting node: the job keeps running', async () => {
    const job = await runningJob();
    const liar = other(job.node);
    const { nc } = await asAgent(liar);
    // With the liar's own registered instance id (a compromised host knows it): only the placement stops it.
    const instanceId = (await new NodeStore(stack.redis).instances(liar))!.current;
    const exit = RankEvent.create({ eventId: `forged-${job.id}`, node: liar, jobId: job.id, attempt: 1, rank: 0, phase: RankPhase.RANK_PHASE_EXITED, exitCode: 1, time: new Date(), instanceId });
    const before = await dropped('rank-event', 'rank-not-placed');
    // Published on its own subject (allowed): JetStream stores it; the scheduler must not apply it.
    const ack = JSON.parse(new TextDecoder().decode((await nc.request(subjects.rankEvent(liar), encode(RankEvent, exit), { timeout: 5_000 })).data)) as { stream?: string };
    expect(ack.stream).toBe('GANTRY_AGENT_EVENTS');
    await eventually('the rank-not-placed drop counted', async () => (await dropped('rank-event', 'rank-not-placed')) > before, 15_000);
    // And one naming the real node, on the liar's subject: a node mismatch.
    const before2 = await dropped('rank-event', 'node-mismatch');
    await nc.request(subjects.rankEvent(liar), encode(RankEvent, { ...exit, eventId: `forged2-${job.id}`, node: job.node }), { timeout: 5_000 });
    await eventually('the node-mismatch drop counted', async () => (await dropped('rank-event', 'node-mismatch')) > before2, 15_000);
    expect(jobStateName((await client.getJob(job.id)).state)).toBe('RUNNING');
    await client.cancelJob(job.id, 'test over');
  });

  it('a dead agent\'s node is not kept READY by heartbeats another agent sends for it', async () => {
    const victim = 1;
    const name = stack.nodeName(victim);
    await stack.agents[victim]!.stop();
    const { nc } = await asAgent('node-0');
    const timer = setInterval(() => {
      nc.publish(subjects.agentHeartbeat('node-0'), encode(NodeHeartbeat, NodeHeartbeat.create({ node: name, seq: 1, time: new Date() })));
    }, 300);
    try {
      await eventually(`${name} LOST`, async () => (await new NodeStore(stack.redis).get(name))?.node.state === NodeState.NODE_STATE_LOST, 30_000);
    } finally {
      clearInterval(timer);
      await stack.agents[victim]!.start();
    }
  });
});

describe('signed commands', () => {
  it('an agent refuses unsigned, forged and misaddressed commands, and runs none of them', async () => {
    const marker = join(mkdtempSync(join(tmpdir(), 'gantry-forged-')), 'ran');
    const cmd = AgentCommand.create({ epoch: 1, command: { $case: 'assign', assign: RankAssignment.create({ jobId: 'j-forged', attempt: 1, rank: 0, command: ['touch', marker] }) } });
    // The operator user may publish anything: it stands for a leaked credential or a misconfigured server.
    const nc = await asOperator();
    const send = async (data: Uint8Array) => decode(AgentCommandReply, (await nc.request(subjects.agentCommand('node-0'), data, { timeout: 5_000 })).data, 'reply');
    expect(await send(encode(AgentCommand, cmd))).toEqual({ ok: false, message: 'unsigned command refused' });
    const stranger = generateKeyPairSync('ed25519').privateKey;
    expect(await send(signCommand(stranger, 'node-0', cmd))).toEqual({ ok: false, message: 'command signature does not verify with any trusted scheduler key' });
    expect(await send(stack.bus.signCommand('node-1', cmd))).toEqual({ ok: false, message: 'command signed for node "node-1", not node-0' });
    // A real signature over a tampered command.
    const signed = decode(SignedAgentCommand, stack.bus.signCommand('node-0', cmd), 'signed');
    const command = Buffer.from(signed.command);
    command.writeUInt8(command.readUInt8(command.length - 1) ^ 0x01, command.length - 1);
    expect(await send(encode(SignedAgentCommand, { ...signed, command }))).toEqual({ ok: false, message: 'command signature does not verify with any trusted scheduler key' });
    expect((await send(new Uint8Array(64).fill(0xff))).ok).toBe(false);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(existsSync(marker)).toBe(false);
    expect(stack.logsOf('agent-node-0')).toMatch(/"reason":"unsigned".*"refused a command"|refused a command.*"reason":"unsigned"/);
  });

  it('the scheduler\'s own signed commands run: a job succeeds and its output is read back through the per-node log subjects', async () => {
    const { job } = await client.submitJob({ nodes: 2, gpusPerNode: 1, command: ['echo', 'hello'] });
    const done = await waitForJob(client, job!.id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 60_000);
    expect(jobStateName(done.state)).toBe('SUCCEEDED');
    const lines: string[] = [];
    for await (const r of client.streamLogs(job!.id)) if (r.line) lines.push(`${r.rank} ${r.node} ${r.line.text.trim()}`);
    const placed = done.attempts.at(-1)!.placement;
    expect(lines.sort()).toEqual([0, 1].map((rank) => `${rank} ${placed.find((p) => p.rank === rank)!.node} hello`));
  });
});
