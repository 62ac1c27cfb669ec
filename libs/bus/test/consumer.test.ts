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

  it('one key\'s backlog does not hold up the other keys: only running handlers count against the limit', async () => {
    // 40 messages of one key (a large gang's rank events), then one of another key.
    const js = jetstream(nc);
    for (let i = 0; i < 40; i++) await js.publish('ct.c.big', new TextEncoder().encode(String(i)));
    await js.publish('ct.c.small', new TextEncoder().encode('0'));
    const big: number[] = [];
    let smallAt = -1;
    const messages = await consumeDurable(nc, { stream: 'CONSUMER_TEST', durable: 'ct-c', filterSubject: 'ct.c.>', concurrency: 4 }, log, async (m) => {
      if (m.subject === 'ct.c.small') {
        smallAt = big.length;
        return;
      }
      await sleep(10);
      big.push(Number(new TextDecoder().decode(m.data)));
    });
    try {
      const deadline = Date.now() + 10_000;
      while (big.length < 40 && Date.now() < deadline) await sleep(20);
      expect(big).toEqual(Array.from({ length: 40 }, (_, i) => i));
      // Handled while the big key's messages were still going, not after all 40 of them (with
      // waiting messages counted against the limit it came after at least 12).
      expect(smallAt).toBeGreaterThanOrEqual(0);
      expect(smallAt).toBeLessThan(12);
      await sleep(200);
      expect((await (await jetstreamManager(nc)).consumers.info('CONSUMER_TEST', 'ct-c')).num_ack_pending).toBe(0);
    } finally {
      await messages.close();
    }
  });

  it('a message waiting behind its key longer than the ack wait is not redelivered', async () => {
    const js = jetstream(nc);
    for (let i = 0; i < 3; i++) await js.publish('ct.d.slow', new TextEncoder().encode(String(i)));
    const handled: number[] = [];
    const messages = await consumeDurable(nc, { stream: 'CONSUMER_TEST', durable: 'ct-d', filterSubject: 'ct.d.>', concurrency: 4, ackWaitMs: 1_000 }, log, async (m) => {
      await sleep(700);
      handled.push(Number(new TextDecoder().decode(m.data)));
    });
    try {
      await sleep(3_300); // the third waited 1.4 s behind the others, past the 1 s ack wait
      expect(handled).toEqual([0, 1, 2]);
    } finally {
      await messages.close();
    }
  });
});
