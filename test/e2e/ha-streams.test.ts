// The agent-events stream never drops a rank exit silently: it is a work queue (what the
// scheduler acknowledged is gone, what it did not stays, with no age limit) that refuses a
// publish once full. The agent gets the error and keeps the report; once the scheduler catches
// up, the same publish goes through. Against a real nats-server, with a tiny limit.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { consumeDurable, ensureStreams, streamFill, streams, subjects, type StreamSpec } from '@gantry/bus';
import { startNats, type Server } from '../harness/infra.js';

let nats: Server;
let nc: NatsConnection;
const spec: StreamSpec = { ...streams.agentEvents, maxMsgs: 5 };

beforeAll(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
});

/** A JetStream publish over core NATS (what js.publish does): the stream answers with an ack or an error. */
async function publish(text: string, msgId: string): Promise<void> {
  const h = headers();
  h.set('Nats-Msg-Id', msgId);
  const reply = JSON.parse(new TextDecoder().decode((await nc.request(subjects.rankEvent('n1'), new TextEncoder().encode(text), { headers: h, timeout: 5_000 })).data)) as { error?: { description: string } };
  if (reply.error) throw new Error(reply.error.description);
}

afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

describe('GANTRY_AGENT_EVENTS limits', () => {
  it('refuses publishes when full instead of dropping unacknowledged exits, and takes them again once they are consumed', async () => {
    await ensureStreams(nc, { specs: [spec] });
    for (let i = 0; i < 5; i++) await publish(`exit ${i}`, `e${i}`);
    const [full] = await streamFill(nc, [spec]);
    expect(full).toMatchObject({ messages: 5, fillRatio: 1, discard: 'new' });
    // The sixth is refused: the publisher (the agent) sees an error and keeps its report.
    await expect(publish('exit 5', 'e5')).rejects.toThrow(/maximum messages exceeded/i);
    // None of the first five was dropped to make room.
    // The scheduler consumes and acknowledges them: a work queue then deletes them.
    const seen: string[] = [];
    const messages = await consumeDurable(nc, { stream: spec.name, durable: 'test-agent-events', filterSubject: subjects.rankEventAll }, { warn: () => undefined }, async (m) => { seen.push(new TextDecoder().decode(m.data)); });
    try {
      await expect.poll(() => seen.length, { timeout: 10_000 }).toBe(5);
      expect(seen).toEqual(['exit 0', 'exit 1', 'exit 2', 'exit 3', 'exit 4']);
      await expect.poll(async () => (await streamFill(nc, [spec]))[0]!.messages, { timeout: 10_000 }).toBe(0);
      // The agent's retry now goes through.
      await publish('exit 5', 'e5');
      await expect.poll(() => seen.length, { timeout: 10_000 }).toBe(6);
    } finally {
      messages.stop();
    }
  });

  it('an existing limits stream (created by an older Gantry) keeps its retention, with a warning, and gets the rest', async () => {
    const old: StreamSpec = { ...streams.agentEvents, name: 'OLD_AGENT_EVENTS', subjects: ['old.agent.>'], maxAgeSec: 7 * 24 * 3600, discard: 'old', retention: 'limits' };
    await ensureStreams(nc, { specs: [old] });
    const warnings: string[] = [];
    await ensureStreams(nc, { specs: [{ ...old, discard: 'new', retention: 'workqueue', maxAgeSec: 0, maxMsgs: 7 }], log: { warn: (_o, msg) => warnings.push(msg) } });
    const [f] = await streamFill(nc, [old]);
    expect(f).toMatchObject({ retention: 'limits', maxAgeSec: 7 * 24 * 3600, discard: 'old', maxMessages: 7 });
    expect(warnings.join()).toMatch(/recreate/);
  });
});
