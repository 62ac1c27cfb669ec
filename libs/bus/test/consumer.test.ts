// consumeDurable against a real nats-server with JetStream: with concurrency, messages of one
// order key (the subject) still run one at a time in stream order while other keys overlap;
// every message is acknowledged once handled, and a failed one comes back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { consumeDurable } from '../src/consumer.js';
import { startNats, type Server } from '../../../test/harness/infra.js';

let server: Server;
let nc: NatsConnection;
const log = { warn: () => undefined };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  server = await startNats();
  nc = await connect({ servers: server.url });
  await (await jetstreamManager(nc)).streams.add({ name: 'CONSUMER_TEST', subjects: ['ct.>'] });
}, 30_000);

afterAll(async () => {
  await nc?.close();
  await server?.stop();
});

async function publish(subjects: string[], perSubject: number): Promise<void> {
  const js = jetstream(nc);
  for (let i = 0; i < perSubject; i++) for (const s of subjects) await js.publish(s, new TextEncoder().encode(String(i)));
}

describe('consumeDurable', () => {
  it('with concurrency: per-subject order kept, subjects overlap, every message acknowledged', async () => {
    const subjects = ['ct.a.x', 'ct.a.y', 'ct.a.z'];
    await publish(subjects, 20);
    const seen = new Map<string, number[]>();
    let running = 0;
    let peak = 0;
    const perKeyRunning = new Map<string, number>();
    let perKeyOverlap = false;
    const messages = await consumeDurable(nc, { stream: 'CONSUMER_TEST', durable: 'ct-a', filterSubject: 'ct.a.>', concurrency: 8 }, log, async (m) => {
      running++;
      peak = Math.max(peak, running);
      const k = (perKeyRunning.get(m.subject) ?? 0) + 1;
      perKeyRunning.set(m.subject, k);
      if (k > 1) perKeyOverlap = true;
      await sleep(2);
      (seen.get(m.subject) ?? seen.set(m.subject, []).get(m.subject)!).push(Number(new TextDecoder().decode(m.data)));
      perKeyRunning.set(m.subject, k - 1);
      running--;
    });
    try {
      const deadline = Date.now() + 10_000;
      while ([...seen.values()].reduce((n, l) => n + l.length, 0) < 60 && Date.now() < deadline) await sleep(20);
      for (const s of subjects) expect(seen.get(s)).toEqual(Array.from({ length: 20 }, (_, i) => i));
      expect(perKeyOverlap).toBe(false);
      expect(peak).toBeGreaterThan(1);
      expect(peak).toBeLessThanOrEqual(3);
      await sleep(200);
      const info = await (await jetstreamManager(nc)).consumers.info('CONSUMER_TEST', 'ct-a');
      expect(info.num_ack_pending).toBe(0);
    } finally {
      await messages.close();
    }
  });

  it('a failed message is redelivered and handled again, after the ones behind it on other keys', async () => {
    await publish(['ct.b.x', 'ct.b.y'], 1);
    const handled: string[] = [];
    let failed = false;
    const messages = await consumeDurable(nc, { stream: 'CONSUMER_TEST', durable: 'ct-b', filterSubject: 'ct.b.>', concurrency: 4, retryDelayMs: 100 }, log, async (m) => {
      if (m.subject === 'ct.b.x' && !failed) {
        failed = true;
        throw new Error('not yet');
      }
      handled.push(m.subject);
    });
    try {
      const deadline = Date.now() + 10_000;
      while (handled.length < 2 && Date.now() < deadline) await sleep(20);
      expect(handled.sort()).toEqual(['ct.b.x', 'ct.b.y']);
      expect(failed).toBe(true);
    } finally {
      await messages.close();
    }
  });
});
