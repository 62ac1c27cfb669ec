// nfsWriteSampleBytes, the store's walk of a batch's bytes to its NFS WRITE figures, gives the
// sample nfsWriteSampleOf gives from the decoded batch: on collector batches as agents send
// them and on hand-built ones with the shapes a decode treats specially; bytes that do not
// decode give none.
import { describe, expect, it } from 'vitest';
import { NfsMountRates, NfsMountTelemetry, NfsOpRates, NfsWriteSample, TelemetryBatch } from '@gantry/proto';
import { TelemetryCollector } from '../../../services/node-agent/src/collectors/index.js';
import { SimulatedBackend } from '../../../services/node-agent/src/device/index.js';
import { nfsWriteSampleBytes, nfsWriteSampleOf } from '../src/nfs-write-sample.js';

const encode = (b: TelemetryBatch) => TelemetryBatch.encode(b).finish();
const sampleOfBytes = (bytes: Uint8Array) => {
  const raw = nfsWriteSampleBytes(bytes);
  return raw && NfsWriteSample.decode(raw);
};
const op = (name: string, opsPerSecond: number, ms?: number) =>
  NfsOpRates.create({ op: name, opsPerSecond, avgQueueMs: ms, avgRttMs: ms === undefined ? undefined : ms / 2, avgExecuteMs: ms === undefined ? undefined : ms * 2, bytesSentPerSecond: 1e6 });
/** A length-delimited field: its tag byte, length (varint) and bytes. */
const field = (tag: number, bytes: Uint8Array) => {
  const len: number[] = [];
  for (let n = bytes.length; ; n >>>= 7) {
    if (n < 0x80) {
      len.push(n);
      break;
    }
    len.push((n & 0x7f) | 0x80);
  }
  return new Uint8Array([tag, ...len, ...bytes]);
};
const mount = (mountpoint: string, ops: NfsOpRates[]) => NfsMountTelemetry.create({ mountpoint, device: 'srv:/x', rates: NfsMountRates.create({ opsPerSecond: 9, ops }) });

describe('nfsWriteSampleBytes', () => {
  it('gives what nfsWriteSampleOf gives from the decoded batch, for a collector\'s batches', async () => {
    const backend = new SimulatedBackend({ model: { node: 'nws-1' }, seed: 11, startMs: Date.UTC(2026, 0, 5) });
    const collector = new TelemetryCollector(backend, { node: 'nws-1', now: () => backend.nowMs() });
    let writes = 0;
    for (let t = 10; t <= 60; t += 10) {
      backend.advanceTo(t);
      const bytes = encode(await collector.collect());
      const sample = sampleOfBytes(bytes)!;
      expect(sample).toEqual(nfsWriteSampleOf(TelemetryBatch.decode(bytes)));
      writes += sample.mounts.filter((m) => m.opsPerSecond > 0 && m.avgExecuteMs !== undefined).length;
      // A sample is small beside its batch: the point of keeping it longer.
      expect(nfsWriteSampleBytes(bytes)!.length).toBeLessThan(bytes.length / 20);
    }
    expect(writes).toBeGreaterThan(0);
  });

  it('keeps the first WRITE op of a mount, absent figures absent, and mounts without one out', () => {
    const batch = TelemetryBatch.create({
      node: 'n', time: new Date(Date.UTC(2026, 0, 5, 1, 2, 3, 456)), interval: { seconds: 10, nanos: 5_000_000 },
      nfsMounts: [
        mount('/a', [op('READ', 5, 1), op('WRITE', 40, 3), op('WRITE', 99, 9)]),
        mount('/b', [op('GETATTR', 1, 1)]),
        NfsMountTelemetry.create({ mountpoint: '/c' }),
        mount('/d', [op('WRITE', 7)]),
        // An op without a name (proto3 leaves "" out) and one named last: decode reads both.
        mount('/e', [op('', 3, 1), NfsOpRates.create({ opsPerSecond: 2, avgExecuteMs: 4 })]),
      ],
    });
    const bytes = encode(batch);
    const sample = sampleOfBytes(bytes)!;
    expect(sample).toEqual(nfsWriteSampleOf(TelemetryBatch.decode(bytes)));
    expect(sample.mounts).toEqual([
      { opsPerSecond: 40, avgQueueMs: 3, avgRttMs: 1.5, avgExecuteMs: 6 },
      { opsPerSecond: 7, avgQueueMs: undefined, avgRttMs: undefined, avgExecuteMs: undefined },
    ]);
    expect(sample.time).toEqual(batch.time);
    expect(sample.interval).toEqual({ seconds: 10, nanos: 5_000_000 });
    // An op whose name comes after its figures (another encoder's field order) is read too.
    const late = new Uint8Array([...NfsOpRates.encode(NfsOpRates.create({ opsPerSecond: 8, avgExecuteMs: 2 })).finish(), 0x0a, 5, ...new TextEncoder().encode('WRITE')]);
    const m = NfsMountTelemetry.encode(NfsMountTelemetry.create({ mountpoint: '/f' })).finish();
    const withLate = field(0x32, new Uint8Array([...m, ...field(0x52, field(0x6a, late))]));
    expect(sampleOfBytes(withLate)).toEqual(nfsWriteSampleOf(TelemetryBatch.decode(withLate)));
    expect(sampleOfBytes(withLate)!.mounts).toEqual([{ opsPerSecond: 8, avgExecuteMs: 2, avgQueueMs: undefined, avgRttMs: undefined }]);
  });

  it('follows a decode of concatenated batches: the last time and rates, every mount', () => {
    const a = encode(TelemetryBatch.create({ time: new Date(1_700_000_000_000), interval: { seconds: 5, nanos: 0 }, nfsMounts: [mount('/a', [op('WRITE', 1, 1)])] }));
    const b = encode(TelemetryBatch.create({ time: new Date(1_700_000_010_000), nfsMounts: [mount('/b', [op('WRITE', 2, 2)])] }));
    // The same mount's rates twice: a decode keeps the second (which has no WRITE op).
    const twice = new Uint8Array([...encode(TelemetryBatch.create({ nfsMounts: [mount('/c', [op('WRITE', 3, 3)])] }))]);
    const both = new Uint8Array([...a, ...b, ...twice]);
    expect(sampleOfBytes(both)).toEqual(nfsWriteSampleOf(TelemetryBatch.decode(both)));
    expect(sampleOfBytes(both)!.time?.getTime()).toBe(1_700_000_010_000);
    const replaced = NfsMountTelemetry.encode(mount('/d', [op('WRITE', 4, 4)])).finish();
    const secondRates = NfsMountRates.encode(NfsMountRates.create({ ops: [op('READ', 1, 1)] })).finish();
    const batch = field(0x32, new Uint8Array([...replaced, ...field(0x52, secondRates)]));
    expect(sampleOfBytes(batch)).toEqual(nfsWriteSampleOf(TelemetryBatch.decode(batch)));
    expect(sampleOfBytes(batch)!.mounts).toEqual([]);
  });

  it('gives none for bytes a decode fails on', () => {
    const ok = encode(TelemetryBatch.create({ node: 'n', time: new Date(1_700_000_000_000), interval: { seconds: 10, nanos: 0 }, nfsMounts: [mount('/a', [op('WRITE', 1, 1)])] }));
    expect(nfsWriteSampleBytes(ok)).toBeDefined();
    for (let cut = 1; cut < ok.length; cut++) {
      const truncated = ok.subarray(0, cut);
      let decodes = true;
      try {
        TelemetryBatch.decode(truncated);
      } catch {
        decodes = false;
      }
      if (!decodes) expect(nfsWriteSampleBytes(truncated), `cut at ${cut}`).toBeUndefined();
      else expect(sampleOfBytes(truncated), `cut at ${cut}`).toEqual(nfsWriteSampleOf(TelemetryBatch.decode(truncated)));
    }
  });
});
