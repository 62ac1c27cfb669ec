// NodeTelemetryStore against a real redis-server: readers skip a stored batch whose bytes do
// not decode (the ingest checks only the top-level fields before storing what agents sent)
// instead of failing, so one malformed batch does not stop a health window over every node;
// what a node keeps is bounded (whole batches for the health window, NFS WRITE samples for the
// report's hour).
import { describe, expect, it } from 'vitest';
import { TelemetryBatch } from '@gantry/proto';
import { useRedis } from './redis-fixture.js';
import { NFS_WRITE_SERIES_CAP, NodeTelemetryStore, TELEMETRY_HISTORY_CAP } from '../src/node-telemetry.js';
import { nfsWriteSampleOf } from '../src/nfs-write-sample.js';
import { readBatchHeader } from '../src/telemetry-header.js';
import { TelemetryCollector } from '../../../services/node-agent/src/collectors/index.js';
import { SimulatedBackend } from '../../../services/node-agent/src/device/index.js';
import { scriptRunner } from '../src/scripts.js';
import { keys } from '../src/keys.js';

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

describe('NodeTelemetryStore.recordCheckedCall', () => {
  it('stores the batches of the node\'s agent process (the registered instance, the one before it for what it stamped before the registered one started) and returns the instances for the rest', async () => {
    const scripts = scriptRunner(redisOf());
    const store = new NodeTelemetryStore(redisOf());
    // nc-1 registered by 'new' at T0 + 50 s, after 'old'; nc-2 registered without an instance; nc-3 not at all.
    await redisOf().hset(keys.node('nc-1'), { rev: '2', instance: 'new', prevInstance: 'old', instanceSince: String(T0 + 50_000) });
    await redisOf().hset(keys.node('nc-2'), { rev: '1' });
    const bytes = (node: string, k: number, instanceId: string) => Buffer.from(TelemetryBatch.encode(TelemetryBatch.create({ node, time: new Date(T0 + k * 10_000), seq: k, instanceId })).finish());
    const items = [
      { node: 'nc-1', k: 1, instanceId: 'old' }, // the previous instance, stamped before 'new' started: stored
      { node: 'nc-1', k: 6, instanceId: 'old' }, // stamped after: a stale process
      { node: 'nc-1', k: 7, instanceId: 'new' },
      { node: 'nc-1', k: 8, instanceId: 'other' },
      { node: 'nc-1', k: 9, instanceId: '' },
      { node: 'nc-2', k: 1, instanceId: 'any' },
      { node: 'nc-3', k: 1, instanceId: 'any' },
    ];
    const call = NodeTelemetryStore.recordCheckedCall(items.map((b) => ({ node: b.node, encoded: bytes(b.node, b.k, b.instanceId), instanceId: b.instanceId, timeMs: T0 + b.k * 10_000 })));
    const reply = NodeTelemetryStore.readCheckedReply(await scripts.run(call.name, call.keys, call.args));
    const instances = { current: 'new', previous: 'old', sinceMs: T0 + 50_000 };
    expect(reply).toEqual([
      { stored: true },
      { stored: false, instances },
      { stored: true },
      { stored: false, instances },
      { stored: false, instances },
      { stored: false, instances: undefined },
      { stored: false, instances: undefined },
    ]);
    const { latest, history } = await store.get('nc-1', 10);
    expect(Number(latest?.seq)).toBe(7);
    expect(history.map((b) => Number(b.seq))).toEqual([1]);
    expect((await store.get('nc-2', 10)).latest).toBeUndefined();
    // A batch without a time from the previous instance is not believed either.
    const untimed = NodeTelemetryStore.recordCheckedCall([{ node: 'nc-1', encoded: bytes('nc-1', 2, 'old'), instanceId: 'old', timeMs: undefined }]);
    expect(NodeTelemetryStore.readCheckedReply(await scripts.run(untimed.name, untimed.keys, untimed.args))).toEqual([{ stored: false, instances }]);
  });
});

describe('NodeTelemetryStore bounds: whole batches for the health window, NFS WRITE figures for the report\'s hour', () => {
  /** An 8-GPU host's batches 10 s apart as its agent sends them (the simulated backend's collector). */
  async function hostBatches(node: string, count: number): Promise<Buffer[]> {
    const backend = new SimulatedBackend({ model: { node }, seed: 5, startMs: T0 });
    const collector = new TelemetryCollector(backend, { node, now: () => backend.nowMs() });
    const out: Buffer[] = [];
    for (let k = 1; k <= count; k++) {
      backend.advanceTo(k * 10);
      out.push(Buffer.from(TelemetryBatch.encode({ ...(await collector.collect()), instanceId: 'agent' }).finish()));
    }
    return out;
  }

  it('keeps TELEMETRY_HISTORY_CAP whole batches and NFS_WRITE_SERIES_CAP samples, in well under a megabyte per node', async () => {
    const redis = redisOf();
    const scripts = scriptRunner(redis);
    const store = new NodeTelemetryStore(redis);
    await redis.hset(keys.node('nb-1'), { rev: '1', instance: 'agent' });
    const batches = await hostBatches('nb-1', NFS_WRITE_SERIES_CAP + 20);
    expect(batches.at(-1)!.length).toBeGreaterThan(6_000); // the shape the figures below are about
    // The ingest's path (several batches per call), as TelemetryIngest writes them.
    for (let i = 0; i < batches.length; i += 64) {
      const part = batches.slice(i, i + 64).map((encoded) => ({ node: 'nb-1', encoded, instanceId: 'agent', timeMs: readBatchHeader(encoded).time!.getTime() }));
      const call = NodeTelemetryStore.recordCheckedCall(part);
      expect(NodeTelemetryStore.readCheckedReply(await scripts.run(call.name, call.keys, call.args)).every((r) => r.stored)).toBe(true);
    }
    expect(TELEMETRY_HISTORY_CAP).toBeGreaterThanOrEqual(64); // the health window's BATCHES_PER_WINDOW
    expect(await redis.llen(keys.nodeTelemetryHistory('nb-1'))).toBe(TELEMETRY_HISTORY_CAP);
    expect(await redis.llen(keys.nodeNfsWrites('nb-1'))).toBe(NFS_WRITE_SERIES_CAP);
    const { latest, history } = await store.get('nb-1', 1_000);
    expect(history).toHaveLength(TELEMETRY_HISTORY_CAP);
    expect(Number(latest!.seq) - Number(history.at(-1)!.seq)).toBe(TELEMETRY_HISTORY_CAP);
    // 360 whole batches were 3.6 MB here; what is kept now is the latest, 64 batches and the series.
    const usage = async (key: string) => Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
    const bytes = (await usage(keys.nodeTelemetry('nb-1'))) + (await usage(keys.nodeTelemetryHistory('nb-1'))) + (await usage(keys.nodeNfsWrites('nb-1')));
    expect(bytes).toBeLessThan(1024 * 1024);
    expect(await usage(keys.nodeNfsWrites('nb-1'))).toBeLessThan(100 * 1024);

    // The series: every batch's sample back to its cap, oldest first, the latest batch's included.
    const decoded = batches.map((b) => TelemetryBatch.decode(b));
    const { samples, cut } = await store.nfsWritesSince('nb-1', 0);
    expect(samples).toEqual(decoded.slice(-NFS_WRITE_SERIES_CAP).map(nfsWriteSampleOf));
    expect(samples.some((s) => s.mounts.some((m) => m.opsPerSecond > 0))).toBe(true);
    expect(cut).toBe(true); // the window reaches before the series
    const tenMinutesAgo = decoded.at(-61)!.time!.getTime();
    expect(await store.nfsWritesSince('nb-1', tenMinutesAgo)).toEqual({ samples: decoded.slice(-60).map(nfsWriteSampleOf), cut: false });
    expect(await store.nfsWritesSince('nb-1', tenMinutesAgo, 10)).toEqual({ samples: decoded.slice(-10).map(nfsWriteSampleOf), cut: true });
    expect(await store.nfsWritesSince('nb-none', 0)).toEqual({ samples: [], cut: false });
  });

  it('record and recordCall write the series too; a node with fewer batches than the cap is not cut', async () => {
    const store = new NodeTelemetryStore(redisOf());
    const batches = await hostBatches('nb-2', 5);
    for (const b of batches) await store.record(TelemetryBatch.decode(b));
    const { samples, cut } = await store.nfsWritesSince('nb-2', 0);
    expect(samples).toEqual(batches.map((b) => nfsWriteSampleOf(TelemetryBatch.decode(b))));
    expect(cut).toBe(false);
    // A batch whose NFS mounts do not decode is stored (its readers skip it) without a sample.
    const scripts = scriptRunner(redisOf());
    const bad = Buffer.from([...TelemetryBatch.encode(TelemetryBatch.create({ node: 'nb-2', time: new Date(T0 + 3_600_000) })).finish(), 0x32, 0x05, 0x08]);
    const call = NodeTelemetryStore.recordCall('nb-2', bad);
    await scripts.run(call.name, call.keys, call.args);
    expect(await redisOf().llen(keys.nodeNfsWrites('nb-2'))).toBe(5);
    expect(await redisOf().llen(keys.nodeTelemetryHistory('nb-2'))).toBe(5);
  });
});
