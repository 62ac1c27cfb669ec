// AgentCommander against a real NATS server, with an agent's side that verifies each command's
// signature and acknowledges it: commands arrive signed for their node; a command sent again
// within the resend interval is held back unless forced, and goes out again once the interval
// has passed, however many other commands went out in between. Commands asked for in the same
// turn share one batch signature (at most MAX_COMMAND_BATCH each); a lone one is signed alone,
// in the form agents older than batching verify. An agent's refusal, an agent that does not
// answer within the reply timeout and a closed connection each answer false.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync, verify } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { NatsConnection } from '@nats-io/transport-node';
import { AgentCommandReply, RankAssignment, SignedAgentCommand } from '@gantry/proto';
import { encode, subjects, verifyCommand } from '@gantry/bus';
import { connectNats } from '@gantry/service-kit';
import { startNats, type NatsServer } from '../../../../test/harness/infra.js';
import { AgentCommander, MAX_COMMAND_BATCH } from '../../src/agents/commands.js';

const log = pino({ level: 'silent' });
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
let server: NatsServer;
let nc: NatsConnection;
/** Verified commands the agent side received, as "jobId:rank". */
const received: string[] = [];
/** What the batch nodes' side received: node, job and how it was signed. */
const batched: { node: string; jobId: string; signature: string; pathLevels: number; payload: Uint8Array }[] = [];
const BATCH_NODES = ['node-b0', 'node-b1', 'node-b2', 'node-b3', 'node-b4'];

beforeAll(async () => {
  server = await startNats(mkdtempSync(join(tmpdir(), 'gantry-commander-')));
  nc = await connectNats(server.url, 'commander-test', log);
  nc.subscribe(subjects.agentCommand('node-a'), {
    callback: (_err, msg) => {
      const cmd = verifyCommand([publicKey], 'node-a', msg.data);
      if (cmd.command?.$case === 'assign') received.push(`${cmd.command.assign.jobId}:${cmd.command.assign.rank}`);
      msg.respond(encode(AgentCommandReply, AgentCommandReply.create({ ok: true })));
    },
  });
  nc.subscribe(subjects.agentCommand('node-refuses'), {
    callback: (_err, msg) => {
      msg.respond(encode(AgentCommandReply, AgentCommandReply.create({ ok: false, message: 'stale epoch' })));
    },
  });
  // Receives and never answers.
  nc.subscribe(subjects.agentCommand('node-silent'), { callback: () => undefined });
  for (const node of BATCH_NODES) {
    nc.subscribe(subjects.agentCommand(node), {
      callback: (_err, msg) => {
        let ok = true;
        try {
          const cmd = verifyCommand([publicKey], node, msg.data);
          const signed = SignedAgentCommand.decode(msg.data);
          batched.push({ node, jobId: cmd.command?.$case === 'assign' ? cmd.command.assign.jobId : '?', signature: signed.signature.toString('hex'), pathLevels: signed.batchPath.length / 32, payload: msg.data });
        } catch {
          ok = false;
        }
        msg.respond(encode(AgentCommandReply, AgentCommandReply.create({ ok })));
      },
    });
  }
  await nc.flush();
}, 60_000);

afterAll(async () => {
  await nc?.drain();
  await server?.stop();
});

const assignment = (jobId: string, rank = 0) => RankAssignment.create({ jobId, attempt: 1, rank, command: ['true'] });

describe('AgentCommander', () => {
  it('sends signed commands, holds back a repeat within the resend interval unless forced, and sends it again after', async () => {
    const commander = new AgentCommander(nc, log, 300, () => 7, privateKey);
    expect(await commander.assign('node-a', assignment('j-1'))).toBe(true);
    expect(await commander.assign('node-a', assignment('j-1'))).toBe(false); // held back
    expect(await commander.assign('node-a', assignment('j-1'), true)).toBe(true); // forced
    // Many other commands in between: the repeat is still judged by its own last send.
    for (let i = 0; i < 50; i++) expect(await commander.assign('node-a', assignment('j-other', i))).toBe(true);
    expect(await commander.assign('node-a', assignment('j-1'))).toBe(false);
    await new Promise((r) => setTimeout(r, 350));
    expect(await commander.assign('node-a', assignment('j-1'))).toBe(true);
    expect(received.filter((r) => r === 'j-1:0')).toHaveLength(3);
  });

  it('sends nothing without a leader epoch, and answers false for a node no agent listens on', async () => {
    expect(await new AgentCommander(nc, log, 300, () => 0, privateKey).assign('node-a', assignment('j-2'))).toBe(false);
    expect(await new AgentCommander(nc, log, 300, () => 7, privateKey).assign('node-nobody', assignment('j-2'))).toBe(false);
    expect(received).not.toContain('j-2:0');
  });

  it('signs the commands of one turn as batches of at most MAX_COMMAND_BATCH, each verified on its own node and acknowledged', async () => {
    batched.length = 0;
    const commander = new AgentCommander(nc, log, 300, () => 7, privateKey);
    const n = MAX_COMMAND_BATCH + 3;
    const acks = await Promise.all(Array.from({ length: n }, (_, i) => commander.assign(BATCH_NODES[i % BATCH_NODES.length]!, assignment(`j-batch-${i}`))));
    expect(acks.every(Boolean)).toBe(true);
    expect(batched).toHaveLength(n);
    expect(new Set(batched.map((b) => b.jobId)).size).toBe(n);
    for (const b of batched) expect(b.node).toBe(BATCH_NODES[Number(b.jobId.slice('j-batch-'.length)) % BATCH_NODES.length]);
    const bySignature = new Map<string, number>();
    for (const b of batched) bySignature.set(b.signature, (bySignature.get(b.signature) ?? 0) + 1);
    expect([...bySignature.values()].sort((x, y) => y - x)).toEqual([MAX_COMMAND_BATCH, 3]);
    expect(batched.every((b) => b.pathLevels > 0)).toBe(true);
  });

  it('signs a lone command alone, over the same bytes as before batching (what older agents verify)', async () => {
    batched.length = 0;
    const commander = new AgentCommander(nc, log, 300, () => 7, privateKey);
    expect(await commander.assign('node-b0', assignment('j-lone'))).toBe(true);
    expect(await commander.assign('node-b1', assignment('j-lone-2'))).toBe(true);
    expect(batched.map((b) => [b.jobId, b.pathLevels])).toEqual([['j-lone', 0], ['j-lone-2', 0]]);
    const signed = SignedAgentCommand.decode(batched[0]!.payload);
    const preBatching = Buffer.concat([Buffer.from('gantry.v1.AgentCommand\0node-b0\0'), signed.command]);
    expect(verify(null, preBatching, publicKey, signed.signature)).toBe(true);
  });

  it('answers false for a refusal, for an agent that does not answer within the timeout, and once the connection is closed', async () => {
    const commander = new AgentCommander(nc, log, 300, () => 7, privateKey);
    const started = Date.now();
    const [refused, silent, ok] = await Promise.all([
      commander.assign('node-refuses', assignment('j-refused')),
      commander.assign('node-silent', assignment('j-silent')),
      commander.assign('node-a', assignment('j-ok')),
    ]);
    expect([refused, silent, ok]).toEqual([false, false, true]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_900);
    // A connection of its own, closed while a command to the silent agent awaits its answer.
    const own = await connectNats(server.url, 'commander-closing', log);
    const closing = new AgentCommander(own, log, 300, () => 7, privateKey);
    const pending = closing.assign('node-silent', assignment('j-closed'));
    await new Promise((r) => setTimeout(r, 100));
    const closedAt = Date.now();
    await own.close();
    expect(await pending).toBe(false);
    expect(Date.now() - closedAt).toBeLessThan(1_000);
    expect(await closing.assign('node-a', assignment('j-after-close'))).toBe(false);
  });
});
