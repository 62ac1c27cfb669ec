import { TelemetryBatch, XidEvent, XidSeverity } from '@gantry/proto';
import { createRegistry } from '@gantry/service-kit';
import { describe, expect, it } from 'vitest';
import { parseMountstats } from '../src/collectors/nfs/mountstats.js';
import { TelemetryMetrics } from '../src/collectors/prometheus.js';
import { nfsMountToProto, xidEventToProto } from '../src/collectors/to-proto.js';
import { TelemetryCollector, xidEventMessages } from '../src/collectors/telemetry-collector.js';
import { parseXidLog } from '../src/collectors/xid/parse.js';
import { SimulatedBackend } from '../src/device/sim/sim-backend.js';
import { fixture } from './helpers/fixtures.js';

async function twoCycles(): Promise<{ backend: SimulatedBackend; batch: TelemetryBatch; first: TelemetryBatch }> {
  const backend = new SimulatedBackend({ seed: 3, startMs: Date.UTC(2026, 0, 1) });
  const collector = new TelemetryCollector(backend, { node: 'gpu-17', now: () => backend.nowMs() });
  const first = await collector.collect();
  backend.advance(15);
  collector.droppedReports = 2;
  return { backend, first, batch: await collector.collect() };
}

describe('TelemetryBatch', () => {
  it('carries values, rates and the interval, and survives an encode/decode round trip', async () => {
    const { first, batch } = await twoCycles();
    expect(first.interval).toBeUndefined();
    expect(first.gpus[0]!.rates).toBeUndefined();
    expect(batch).toMatchObject({ node: 'gpu-17', seq: 2, droppedReports: 2, interval: { seconds: 15, nanos: 0 } });
    expect(batch.time?.toISOString()).toBe('2026-01-01T00:00:15.000Z');
    expect(batch.gpus).toHaveLength(8);
    expect(batch.gpus[0]!.retiredPagesSingleBit).toBeUndefined();
    expect(batch.gpus[0]!.rates?.eccSingleBitPerSecond).toBe(0);
    expect(batch.nfsMounts[0]!.rates?.readBytesPerSecond).toBeGreaterThan(0);
    expect(batch.rdmaPorts[0]!.rates?.receiveBytesPerSecond).toBeGreaterThan(0);
    const decoded = TelemetryBatch.decode(TelemetryBatch.encode(batch).finish());
    expect(decoded.gpus[3]!.temperatureGpuCelsius).toBe(batch.gpus[3]!.temperatureGpuCelsius);
    expect(decoded.gpus[3]!.retiredPagesSingleBit).toBeUndefined(); // optional stays absent on the wire
    expect(decoded.nfsMounts[1]!.rates!.slotTableUtilization).toBeCloseTo(batch.nfsMounts[1]!.rates!.slotTableUtilization!);
    expect(decoded.rdmaPorts[0]!.counters['port_rcv_data']).toBe(batch.rdmaPorts[0]!.counters['port_rcv_data']);
  });

  it('keeps the signed NFS time sums and drops nothing else of the real procfs mount', () => {
    const m = nfsMountToProto(parseMountstats(fixture('nfs/procfs_fixtures_proc_26231_mountstats.txt'))[0]!);
    expect(m.ops.map((o) => o.op)).toEqual(['READ', 'ACCESS']); // ops that never ran are left out
    expect(m.ops[1]!.queueMs).toBe(-154467947070);
    expect(m.transport).toMatchObject({ protocol: 'tcp', maxSlots: 24, inflightSum: 12154 });
    const back = TelemetryBatch.decode(TelemetryBatch.encode({ ...TelemetryBatch.create(), nfsMounts: [m] }).finish());
    expect(back.nfsMounts[0]!.ops[1]!.queueMs).toBe(-154467947070);
  });
});

describe('XidEvent', () => {
  it('maps a parsed event with catalogue fields', () => {
    const [e] = parseXidLog(fixture('xid/gpud_testdata_dmesg-with-xid-119.log'));
    const msg = xidEventToProto(e!, 'gpu-17');
    expect(msg).toMatchObject({
      node: 'gpu-17', xid: 119, pid: 2024380, processName: 'nvidia-smi', pciBusId: '00000000:9b:00.0',
      gpuUuid: 'GPU-509665ad-b600-ac93-3616-d754b23d636d', mnemonic: 'GSP_RPC_TIMEOUT', causeClass: 'driver',
      severity: XidSeverity.XID_SEVERITY_CRITICAL, immediateAction: 'RESET_GPU', inferred: false,
    });
    expect(msg.gpuIndex).toBeUndefined();
    expect(XidEvent.decode(XidEvent.encode(msg).finish())).toEqual(msg);
  });

  it('streams classified events from a backend kernel log', async () => {
    const backend = new SimulatedBackend({ seed: 9 });
    backend.inject({ fault: 'xid', gpu: 1, params: { xid: 31 } });
    const ac = new AbortController();
    const it = xidEventMessages(backend, 'gpu-17', ac.signal)[Symbol.asyncIterator]();
    const first = await it.next();
    ac.abort();
    expect(first.value).toMatchObject({ xid: 31, gpuIndex: 1, causeClass: 'application', severity: XidSeverity.XID_SEVERITY_ERROR });
  });
});

describe('Prometheus exposition', () => {
  it('renders the latest batch with Prometheus names and counts Xids', async () => {
    const { batch } = await twoCycles();
    const registry = createRegistry('node-agent-test');
    const metrics = new TelemetryMetrics();
    metrics.register(registry);
    expect(await registry.getSingleMetricAsString('gantry_gpu_temperature_celsius')).toMatch(/^# HELP/);
    metrics.update(batch);
    metrics.recordXid({ xid: 79, causeClass: 'hardware', gpuIndex: 6, gpuUuid: 'GPU-x' });
    metrics.recordXid({ xid: 79, causeClass: 'hardware', gpuIndex: 6, gpuUuid: 'GPU-x' });
    const text = await registry.metrics();
    const g0 = batch.gpus[0]!;
    expect(text).toContain(`gantry_gpu_temperature_celsius{gpu="0",uuid="${g0.uuid}",service="node-agent-test"} ${g0.temperatureGpuCelsius}`);
    expect(text).toContain(`gantry_gpu_ecc_errors_total{gpu="0",uuid="${g0.uuid}",type="single_bit",scope="volatile",service="node-agent-test"} 0`);
    expect(text).toMatch(/gantry_nfs_rpc_backlog_queue_length\{mount="\/mnt\/datasets",server="10\.0\.0\.10:\/datasets",service="node-agent-test"\} \d/);
    expect(text).toMatch(/gantry_nfs_read_bytes_per_second\{mount="\/mnt\/datasets"[^}]*\} \d{8,}/);
    expect(text).toContain(`gantry_rdma_port_receive_bytes_total{device="mlx5_0",port="1",service="node-agent-test"} ${batch.rdmaPorts[0]!.counters['port_rcv_data']! * 4}`);
    expect(text).toContain('gantry_xid_events_total{xid="79",class="hardware",gpu="6",uuid="GPU-x",service="node-agent-test"} 2');
    expect(text).toContain('gantry_gpu_clock_event_reason_active{gpu="0"');
    expect(text).toContain('gantry_telemetry_dropped_reports_total{service="node-agent-test"} 2');
    // (the service kit's default process metrics may say Nan; ours never do)
    expect(text.split('\n').filter((l) => /^gantry_(gpu|nfs|rdma|nic|xid|telemetry)_/.test(l) && /NaN|Nan|undefined/.test(l))).toEqual([]);
  });
});
