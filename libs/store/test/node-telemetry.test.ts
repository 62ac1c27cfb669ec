// NodeTelemetryStore against a real redis-server: readers skip a stored batch whose bytes do
// not decode (the ingest checks only the top-level fields before storing what agents sent)
// instead of failing, so one malformed batch does not stop a health window over every node.
import { describe, expect, it } from 'vitest';
import { TelemetryBatch } from '@gantry/proto';
import { useRedis } from './redis-fixture.js';
import { NodeTelemetryStore } from '../src/node-telemetry.js';
import { scriptRunner } from '../src/scripts.js';

const redisOf = useRedis();
const T0 = Date.UTC(2026, 0, 5);

describe('NodeTelemetryStore readers', () => {
  it('skip a stored batch that does not decode', async () => {
    const store = new NodeTelemetryStore(redisOf());
    const scripts = scriptRunner(redisOf());
    const record = async (bytes: Uint8Array) => {
      const call = NodeTelemetryStore.recordCall('nt-1', Buffer.from(bytes));
      await scripts.run(call.name, call.keys, call.args);
    };
    const good = (k: number) => TelemetryBatch.encode(TelemetryBatch.create({ node: 'nt-1', time: new Date(T0 + k * 10_000), seq: k })).finish();
    // Valid top-level fields, then a GPU entry whose length runs past its bytes.
    const bad = new Uint8Array([...TelemetryBatch.encode(TelemetryBatch.create({ node: 'nt-1', time: new Date(T0 + 15_000) })).finish(), 0x2a, 0x05, 0x08]);
    expect(() => TelemetryBatch.decode(bad)).toThrow();
    await record(good(1));
    await record(bad);
    await record(good(2));
    expect((await store.since('nt-1', T0)).map((b) => Number(b.seq))).toEqual([1, 2]);
    const { latest, history } = await store.get('nt-1', 10);
    expect(Number(latest?.seq)).toBe(2);
    expect(history.map((b) => Number(b.seq))).toEqual([1]);
    await record(bad);
    expect((await store.since('nt-1', T0)).map((b) => Number(b.seq))).toEqual([1, 2]);
    expect((await store.get('nt-1', 0)).latest).toBeUndefined();
  });

  it('since: the batches after a time, oldest first, over pages of history, and at most max', async () => {
    const store = new NodeTelemetryStore(redisOf());
    const scripts = scriptRunner(redisOf());
    const batch = (k: number) => Buffer.from(TelemetryBatch.encode(TelemetryBatch.create({ node: 'nt-2', time: new Date(T0 + k * 10_000), seq: k })).finish());
    for (let k = 1; k <= 40; k++) {
      const call = NodeTelemetryStore.recordCall('nt-2', batch(k));
      await scripts.run(call.name, call.keys, call.args);
    }
    const seqs = async (afterK: number, max?: number) => (await store.since('nt-2', T0 + afterK * 10_000, max)).map((b) => Number(b.seq));
    expect(await seqs(39)).toEqual([40]);
    expect(await seqs(38)).toEqual([39, 40]);
    expect(await seqs(40)).toEqual([]);
    // 37 batches: the latest and 36 of history, read in pages of 2, 4, 8, 16, 16.
    expect(await seqs(3)).toEqual(Array.from({ length: 37 }, (_, i) => i + 4));
    expect(await seqs(0)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(await seqs(0, 5)).toEqual([36, 37, 38, 39, 40]);
    expect(await store.since('nt-none', T0)).toEqual([]);
  });
});
