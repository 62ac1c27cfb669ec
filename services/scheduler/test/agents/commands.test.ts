// AgentCommander against a real NATS server, with an agent's side that verifies each command's
// signature and acknowledges it: commands arrive signed for their node; a command sent again
// within the resend interval is held back unless forced, and goes out again once the interval
// has passed, however many other commands went out in between.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { NatsConnection } from '@nats-io/transport-node';
import { AgentCommandReply, RankAssignment } from '@gantry/proto';
import { encode, subjects, verifyCommand } from '@gantry/bus';
import { connectNats } from '@gantry/service-kit';
import { startNats, type NatsServer } from '../../../../test/harness/infra.js';
import { AgentCommander } from '../../src/agents/commands.js';

const log = pino({ level: 'silent' });
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
let server: NatsServer;
let nc: NatsConnection;
/** Verified commands the agent side received, as "jobId:rank". */
const received: string[] = [];

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
});
