// readBatchHeader gives the node, time and instance TelemetryBatch.decode gives, from real
// batches (the simulated backend's collector, as agents send them, and hand-built ones), and
// fails where a decode fails at the top level.
import { describe, expect, it } from 'vitest';
import { TelemetryBatch } from '@gantry/proto';
import { TelemetryCollector } from '../../../services/node-agent/src/collectors/index.js';
import { SimulatedBackend } from '../../../services/node-agent/src/device/index.js';
import { BatchHeaderError, readBatchHeader } from '../src/telemetry-header.js';

const encode = (b: TelemetryBatch) => TelemetryBatch.encode(b).finish();

describe('readBatchHeader', () => {
  it('reads what a full decode reads from a collector\'s batch', async () => {
    const backend = new SimulatedBackend({ model: { node: 'hdr-1' }, seed: 7, clock: 'wall' });
    const collector = new TelemetryCollector(backend, { node: 'hdr-1' });
    await collector.collect();
    const bytes = encode({ ...(await collector.collect()), instanceId: 'agent-hdr-1' });
    const full = TelemetryBatch.decode(bytes);
    expect(readBatchHeader(bytes)).toEqual({ node: full.node, time: full.time, instanceId: full.instanceId });
    expect(full.gpus.length).toBeGreaterThan(0);
  });

  it('takes the last occurrence of a field, as a decode of concatenated messages does; absent fields are empty', () => {
    const a = encode(TelemetryBatch.create({ node: 'n-é', time: new Date(1_700_000_000_123), seq: 3, instanceId: 'i-1' }));
    const b = encode(TelemetryBatch.create({ time: new Date(1_800_000_000_456), instanceId: 'i-2' }));
    const both = new Uint8Array([...a, ...b]);
    const full = TelemetryBatch.decode(both);
    expect(readBatchHeader(both)).toEqual({ node: full.node, time: full.time, instanceId: full.instanceId });
    expect(readBatchHeader(both).time?.getTime()).toBe(1_800_000_000_456);
    expect(readBatchHeader(new Uint8Array())).toEqual({ node: '', time: undefined, instanceId: '' });
  });

  it('fails on bytes a decode fails on at the top level', () => {
    const ok = encode(TelemetryBatch.create({ node: 'n', time: new Date(1_700_000_000_000), instanceId: 'i' }));
    const truncated = ok.subarray(0, ok.length - 2);
    expect(() => TelemetryBatch.decode(truncated)).toThrow();
    expect(() => readBatchHeader(truncated)).toThrow(BatchHeaderError);
    // A group where field 1 is expected: the generated decode skips it, and so does the header.
    const group = new Uint8Array([0x0b, 0x0c, ...ok]);
    const decoded = TelemetryBatch.decode(group);
    expect(readBatchHeader(group)).toEqual({ node: decoded.node, time: decoded.time, instanceId: decoded.instanceId });
    // A field the header does not read, running past the end: both fail.
    const overrun = new Uint8Array([...ok, 0x1a, 0x64, 0x01]);
    expect(() => TelemetryBatch.decode(overrun)).toThrow();
    expect(() => readBatchHeader(overrun)).toThrow(BatchHeaderError);
    expect(() => readBatchHeader(new Uint8Array([0x0a, 0xff]))).toThrow(BatchHeaderError);
  });
});
