// getNodeTelemetry and listNodeEvents against a real in-process grpc-js server.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Metadata } from '@grpc/grpc-js';
import {
  NodeEvent,
  NodeState,
  TelemetryBatch,
  XidEvent,
  XidSeverity,
  type GetNodeTelemetryRequest,
  type ListNodeEventsRequest,
} from '@gantry/proto';
import { GantryClient, status } from '../src/index.js';
import { startTestServer, statusError, type TestServer } from '../src/testing.js';

const T0 = new Date('2026-01-01T12:00:00Z');
const batch = (seq: number) =>
  TelemetryBatch.fromPartial({
    node: 'gpu-01',
    seq,
    time: new Date(T0.getTime() - (10 - seq) * 5_000),
    interval: { seconds: 5, nanos: 0 },
    gpus: [{ index: 0, uuid: 'GPU-0', temperatureGpuCelsius: 61, ecc: { volatileDoubleBit: 0 } }],
  });

const seen = { telemetry: [] as GetNodeTelemetryRequest[], events: [] as ListNodeEventsRequest[], metadata: [] as Metadata[] };
let failures: status[] = [];

let server: TestServer;
let client: GantryClient;

beforeAll(async () => {
  server = await startTestServer({
    nodes: {
      getNodeTelemetry(call, cb) {
        seen.telemetry.push(call.request);
        seen.metadata.push(call.metadata);
        const failure = failures.shift();
        if (failure !== undefined) return cb(statusError(failure, `injected ${status[failure]}`));
        const { name, history } = call.request;
        if (name === 'gpu-99') return cb(statusError(status.NOT_FOUND, 'node gpu-99 not found'));
        if (name === 'fresh') return cb(statusError(status.NOT_FOUND, 'node fresh has reported no telemetry yet'));
        cb(null, { latest: batch(10), history: Array.from({ length: history }, (_, i) => batch(9 - i)) });
      },
      listNodeEvents(call, cb) {
        seen.events.push(call.request);
        const failure = failures.shift();
        if (failure !== undefined) return cb(statusError(failure, `injected ${status[failure]}`));
        if (call.request.name === 'gpu-99') return cb(statusError(status.NOT_FOUND, 'node gpu-99 not found'));
        cb(null, {
          events: [
            {
              time: T0,
              event: {
                $case: 'xid',
                xid: XidEvent.fromPartial({ eventId: 'x1', node: 'gpu-01', time: T0, gpuIndex: 3, xid: 79, severity: XidSeverity.XID_SEVERITY_CRITICAL }),
              },
            },
            {
              time: new Date(T0.getTime() - 60_000),
              event: {
                $case: 'transition',
                transition: NodeEvent.fromPartial({ eventId: 'n1', nodeName: 'gpu-01', fromState: NodeState.NODE_STATE_REGISTERING, toState: NodeState.NODE_STATE_READY }),
              },
            },
          ],
        });
      },
    },
  });
  client = new GantryClient({ address: server.address, retry: { maxAttempts: 3, initialBackoffMs: 1, maxBackoffMs: 5 }, token: 't', env: {} });
});
afterAll(async () => {
  client.close();
  await server.close();
});
afterEach(() => {
  seen.telemetry = [];
  seen.events = [];
  seen.metadata = [];
  failures = [];
});

describe('getNodeTelemetry', () => {
  it('returns the latest batch, with optional fields absent rather than zero', async () => {
    const res = await client.getNodeTelemetry('gpu-01');
    expect(seen.telemetry).toEqual([{ name: 'gpu-01', history: 0 }]);
    expect(seen.metadata[0]?.get('authorization')).toEqual(['Bearer t']);
    expect(res.history).toEqual([]);
    expect(res.latest).toMatchObject({ node: 'gpu-01', seq: 10, interval: { seconds: 5, nanos: 0 } });
    const gpu = res.latest!.gpus[0]!;
    expect(gpu.temperatureGpuCelsius).toBe(61);
    expect(gpu.utilizationGpuPercent).toBeUndefined();
    expect(gpu.ecc).toEqual({ volatileDoubleBit: 0 });
  });

  it('passes history and gets the earlier batches newest first', async () => {
    const res = await client.getNodeTelemetry('gpu-01', { history: 3 });
    expect(seen.telemetry[0]).toEqual({ name: 'gpu-01', history: 3 });
    expect(res.history.map((b) => b.seq)).toEqual([9, 8, 7]);
  });

  it('is a read: retried on UNAVAILABLE', async () => {
    failures = [status.UNAVAILABLE];
    await expect(client.getNodeTelemetry('gpu-01')).resolves.toMatchObject({ latest: { seq: 10 } });
    expect(seen.telemetry).toHaveLength(2);
  });

  it('reports NOT_FOUND for an unknown node and for one without telemetry, without retrying', async () => {
    await expect(client.getNodeTelemetry('gpu-99')).rejects.toMatchObject({ code: status.NOT_FOUND, details: 'node gpu-99 not found' });
    await expect(client.getNodeTelemetry('fresh')).rejects.toMatchObject({ code: status.NOT_FOUND, details: 'node fresh has reported no telemetry yet' });
    expect(seen.telemetry).toHaveLength(2);
  });
});

describe('listNodeEvents', () => {
  it('returns XID and transition events as a oneof', async () => {
    const { events } = await client.listNodeEvents('gpu-01', { limit: 5 });
    expect(seen.events).toEqual([{ name: 'gpu-01', limit: 5 }]);
    expect(events.map((e) => e.event?.$case)).toEqual(['xid', 'transition']);
    const first = events[0]!.event;
    expect(first?.$case === 'xid' && first.xid).toMatchObject({ xid: 79, gpuIndex: 3, severity: XidSeverity.XID_SEVERITY_CRITICAL, pid: undefined });
  });

  it('sends limit 0 (the server default) when none is given', async () => {
    await client.listNodeEvents('gpu-01');
    expect(seen.events[0]).toEqual({ name: 'gpu-01', limit: 0 });
  });

  it('is retried on UNAVAILABLE, and NOT_FOUND is not', async () => {
    failures = [status.UNAVAILABLE];
    await expect(client.listNodeEvents('gpu-01')).resolves.toMatchObject({ events: [{}, {}] });
    await expect(client.listNodeEvents('gpu-99')).rejects.toMatchObject({ code: status.NOT_FOUND });
    expect(seen.events).toHaveLength(3);
  });
});
