// The outbox relay against a real redis-server and a real JetStream: a pass publishes its
// entries without waiting for each acknowledgement, yet every subject's events are stored in
// their order, each once; the cursor never passes an entry that was not stored, and entries
// after it that were stored are not stored again when the relay retries.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { ensureStreams, streams, subjects } from '@gantry/bus';
import { connectNats } from '@gantry/service-kit';
import { Outbox, keys } from '@gantry/store';
import { startNats, type NatsServer } from '../../../test/harness/infra.js';
import { useRedis } from '../../../libs/store/test/redis-fixture.js';
import { OutboxRelay } from '../src/relay.js';

const redis = useRedis();
const log = pino({ level: 'silent' });
let server: NatsServer;
let nc: NatsConnection;
let js: JetStreamClient;

beforeAll(async () => {
  server = await startNats(mkdtempSync(join(tmpdir(), 'gantry-relay-')));
  nc = await connectNats(server.url, 'relay-test', log);
  await ensureStreams(nc, { specs: [streams.events] });
  js = jetstream(nc);
}, 60_000);

afterAll(async () => {
  await nc?.drain();
  await server?.stop();
});

/** Every message stored on the events stream: [subject, event id]. */
async function stored(): Promise<[string, string][]> {
  const jsm = await jetstreamManager(nc);
  const { state } = await jsm.streams.info(streams.events.name);
  const out: [string, string][] = [];
  for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(streams.events.name, { seq });
    if (m) out.push([m.subject, m.header.get('Nats-Msg-Id')]);
  }
  return out;
}

async function until(what: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await what())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const add = (subject: string, id: string) => redis().xadd(keys.outbox, '*', 'subject', subject, 'id', id, 'data', Buffer.from(id)) as Promise<string>;

describe('OutboxRelay', () => {
  it('stores every subject\'s events in order, each once, and marks them relayed', async () => {
    const [a, b] = [subjects.jobEvent('relay-a'), subjects.jobEvent('relay-b')];
    const order: [string, string][] = [[a, 'a1'], [b, 'b1'], [a, 'a2'], [a, 'a3'], [b, 'b2'], [a, 'a4']];
    let last = '';
    for (const [s, id] of order) last = await add(s, id);
    const relay = new OutboxRelay(new Outbox(redis()), js, log, 20);
    relay.start();
    try {
      await until(async () => (await redis().get(keys.outboxCursor)) === last);
    } finally {
      relay.stop();
    }
    const all = await stored();
    expect(all.filter(([s]) => s === a).map(([, id]) => id)).toEqual(['a1', 'a2', 'a3', 'a4']);
    expect(all.filter(([s]) => s === b).map(([, id]) => id)).toEqual(['b1', 'b2']);
  });

  it('does not move the cursor past an event that was not stored, and stores the ones after it once', async () => {
    await redis().set(keys.outboxCursor, (await redis().xrevrange(keys.outbox, '+', '-', 'COUNT', 1))[0]![0]);
    const c = subjects.jobEvent('relay-c');
    const ok = await add(c, 'c1');
    // No stream takes this subject: its publish fails every time.
    await add('gantry.nowhere.relay', 'lost');
    await add(c, 'c2');
    const relay = new OutboxRelay(new Outbox(redis()), js, log, 20);
    relay.start();
    try {
      await until(async () => (await stored()).some(([, id]) => id === 'c2'));
      // Several retries of the failing entry (and of the ones after it).
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      relay.stop();
    }
    expect(await redis().get(keys.outboxCursor)).toBe(ok);
    const ids = (await stored()).map(([, id]) => id);
    expect(ids.filter((id) => id === 'c1')).toHaveLength(1);
    expect(ids.filter((id) => id === 'c2')).toHaveLength(1);
    expect(ids).not.toContain('lost');
  });
});
