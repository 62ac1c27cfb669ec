import { describe, expect, it } from 'vitest';
import { GPU_INVENTORY_FIELDS, parseGpuQueryCsv } from '../src/collectors/gpu/query-csv.js';
import { GpuInventory } from '../src/collectors/pci.js';
import { parseSnapshot, readRaw, type TelemetrySample } from '../src/collectors/snapshot.js';
import { TelemetryCollector } from '../src/collectors/telemetry-collector.js';
import { parseXidLog } from '../src/collectors/xid/parse.js';
import { parseScenario } from '../src/device/sim/scenario.js';
import { SimulatedBackend, type SimOptions } from '../src/device/sim/sim-backend.js';

function sim(options: SimOptions = {}): { backend: SimulatedBackend; collector: TelemetryCollector } {
  const backend = new SimulatedBackend({ seed: 42, startMs: Date.UTC(2026, 0, 1), ...options });
  return { backend, collector: new TelemetryCollector(backend, { node: 'sim-0', now: () => backend.nowMs() }) };
}

async function at(s: { backend: SimulatedBackend; collector: TelemetryCollector }, seconds: number): Promise<TelemetrySample> {
  s.backend.advanceTo(seconds);
  return s.collector.collectSample();
}

describe('simulated host through the real parsers', () => {
  it('produces the default 8 x H100, 4 mounts, 2 HCAs host in the real text shapes', async () => {
    const s = sim();
    const raw = await readRaw(s.backend);
    expect(raw.errors).toEqual([]);
    expect(raw.mountstats).toContain('RPC iostats version: 1.1  p/v: 100003/4 (nfs)');
    expect(raw.gpu!.csv.split('\n')[0]).toMatch(/^0, GPU-[0-9a-f-]{36}, NVIDIA H100 80GB HBM3, 00000000:18:00\.0, /);
    const snap = parseSnapshot(raw, s.backend.nowMs());
    expect(snap.gpus).toHaveLength(8);
    expect(snap.gpus[0]).toMatchObject({ index: 0, name: 'NVIDIA H100 80GB HBM3', memoryTotalMiB: 81559, pciBusId: '00000000:18:00.0', remappedRowsPending: false });
    expect(snap.gpus[0]!.retiredPagesSbe).toBeUndefined(); // [N/A] on H100, as on real hardware
    expect(snap.gpus.every((g) => g.pcieReplayCounter !== undefined && g.pcieLinkRecoveryCounter !== undefined)).toBe(true);
    expect(snap.nfs.map((m) => m.mountpoint)).toEqual(['/mnt/datasets', '/mnt/checkpoints', '/home', '/scratch']);
    expect(snap.nfs[0]!.ops.size).toBe(69);
    expect(snap.rdma.map((p) => [p.device, p.linkLayer, p.rateGbps, p.state])).toEqual([['mlx5_0', 'InfiniBand', 400, 'ACTIVE'], ['mlx5_1', 'Ethernet', 200, 'ACTIVE']]);
    expect(Object.keys(snap.nics)).toEqual(['eth2']);
    // the fingerprint query parses to the same inventory the backend reports
    const inv = parseGpuQueryCsv(s.backend.fingerprintCsv(GPU_INVENTORY_FIELDS), GPU_INVENTORY_FIELDS);
    const fp = await s.backend.fingerprint();
    expect(inv.map((g) => [g.index, g.uuid, g.pciBusId, g.memoryTotalMiB])).toEqual(fp.map((g) => [g.index, g.uuid, g.pciBusId, g.memoryMiB]));
  });

  it('runs a training-like load: busy GPUs, steady reads, fabric traffic, checkpoint write bursts', async () => {
    const s = sim({ model: { checkpointEverySeconds: 120, checkpointSeconds: 20 } });
    await at(s, 0);
    const train = await at(s, 60);
    expect(train.intervalSeconds).toBe(60);
    for (const g of train.gpus) expect(g.metrics.utilizationGpuPercent).toBeGreaterThan(85);
    const datasets = train.nfs.find((m) => m.stats.mountpoint === '/mnt/datasets')!.rates!;
    expect(datasets.readBytesPerSec).toBeGreaterThan(5e8);
    expect(train.rdma[0]!.rates!.receiveBytesPerSec).toBeGreaterThan(2e10);
    const idleCkpt = train.nfs.find((m) => m.stats.mountpoint === '/mnt/checkpoints')!.rates!;
    expect(idleCkpt.writeBytesPerSec).toBeLessThan(1e7);
    await at(s, 100);
    const ckpt = await at(s, 118); // inside the checkpoint window (100..119)
    expect(ckpt.nfs.find((m) => m.stats.mountpoint === '/mnt/checkpoints')!.rates!.writeBytesPerSec).toBeGreaterThan(2e9);
    expect(ckpt.gpus[0]!.metrics.utilizationGpuPercent).toBeLessThan(25);
    expect(ckpt.rdma[0]!.rates!.receiveBytesPerSec).toBeLessThan(1e10);
  });

  it('is deterministic for a seed, whatever the read pattern', async () => {
    const a = sim();
    const b = sim();
    await at(a, 10);
    await at(a, 20);
    await at(a, 35);
    const x = await readRaw(a.backend);
    b.backend.advanceTo(35);
    const y = await readRaw(b.backend);
    expect(x.gpu!.csv).toBe(y.gpu!.csv);
    expect(x.mountstats).toBe(y.mountstats);
    expect([...x.rdma!.sysfs]).toEqual([...y.rdma!.sysfs]);
    const other = new SimulatedBackend({ seed: 43 });
    other.advanceTo(35);
    expect((await other.readGpuMetricsText()).csv).not.toBe(x.gpu!.csv);
  });
});

describe('fault injection is visible in parsed values', () => {
  it('xid: a real-format kmsg line that classifies and maps to the GPU', async () => {
    const s = sim();
    s.backend.inject({ fault: 'xid', gpu: 3, params: { xid: 13, pid: 777, name: 'train.py' } });
    const inventory = new GpuInventory(await s.backend.fingerprint());
    const events = parseXidLog(s.backend.drainKernelLog().join('\n'), { inventory });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ xid: 13, gpuIndex: 3, pid: 777, processName: 'train.py', pciBusId: '00000000:5d:00.0', causeClass: 'application', severity: 'error' });
  });

  it('xid 79: the GPU falls off the bus and nvidia-smi reports it lost', async () => {
    const s = sim();
    await at(s, 1);
    const before = await s.backend.fingerprint();
    s.backend.inject({ fault: 'xid', gpu: 6, params: { xid: 79 } });
    const sample = await at(s, 5);
    expect(sample.gpus[6]!.metrics).toMatchObject({ index: 6, unavailable: 'GPU is lost' });
    expect(sample.gpus[6]!.metrics.temperatureGpuC).toBeUndefined();
    const [e] = parseXidLog(s.backend.drainKernelLog().join('\n'), { inventory: new GpuInventory(before) });
    expect(e).toMatchObject({ xid: 79, gpuIndex: 6, severity: 'critical' });
    // Gone from the inventory, as from nvidia-smi's on a real host.
    expect((await s.backend.fingerprint()).map((g) => g.index)).toEqual([0, 1, 2, 3, 4, 5, 7]);
  });

  it('ecc-storm: volatile SBE climbs, then a DBE with Xid 48, 63 and 64 and a pending remap', async () => {
    const s = sim({ scenario: parseScenario('[{"at": 10, "fault": "ecc-storm", "gpu": 2, "duration": 50, "params": {"sbeRate": 10}}]') });
    await at(s, 5);
    const early = await at(s, 30);
    expect(early.gpus[2]!.rates!.eccSbePerSec).toBeGreaterThan(5);
    expect(early.gpus[2]!.metrics.eccVolatileDbe).toBe(0);
    expect(early.gpus[1]!.rates!.eccSbePerSec).toBe(0);
    const late = await at(s, 60);
    expect(late.gpus[2]!.metrics).toMatchObject({ eccVolatileDbe: 1, remappedRowsUncorrectable: 1, remappedRowsPending: true, remappedRowsFailure: true });
    expect(late.gpus[2]!.rates!.eccSbePerSec).toBeGreaterThan(early.gpus[2]!.rates!.eccSbePerSec!);
    const xids = parseXidLog(s.backend.drainKernelLog().join('\n')).map((e) => e.xid);
    expect(xids).toEqual([48, 63, 64]);
  });

  it('thermal: temperature rises and thermal throttle reasons and counters show up', async () => {
    const s = sim();
    await at(s, 5);
    s.backend.inject({ fault: 'thermal', gpu: 0, duration: 60, params: { peakC: 95 } });
    const hot = await at(s, 60);
    const g = hot.gpus[0]!;
    expect(g.metrics.temperatureGpuC).toBeGreaterThan(88);
    expect(g.metrics.clockEventReasons).toContain('sw_thermal_slowdown');
    expect(g.rates!.throttleFraction['sw_thermal_slowdown']).toBeGreaterThan(0);
    expect(g.metrics.smClockMHz).toBeLessThan(hot.gpus[1]!.metrics.smClockMHz!);
    expect(hot.gpus[1]!.metrics.temperatureGpuC).toBeLessThan(80);
  });

  it('pcie-replay: the replay counter climbs on that GPU only', async () => {
    const s = sim();
    await at(s, 5);
    s.backend.inject({ fault: 'pcie-replay', gpu: 4, duration: 20, params: { rate: 30 } });
    const r = await at(s, 15);
    expect(r.gpus[4]!.rates!.pcieReplaysPerSec).toBeGreaterThan(20);
    expect(r.gpus[3]!.rates!.pcieReplaysPerSec).toBe(0);
  });

  it('nfs-stall: throughput drops while RTT, backlog and retransmissions grow', async () => {
    const s = sim({ scenario: parseScenario('- {at: 30, fault: nfs-stall, mount: /mnt/datasets, duration: 60}') });
    await at(s, 10);
    const before = (await at(s, 30)).nfs[0]!.rates!;
    const during = (await at(s, 60)).nfs[0]!.rates!;
    expect(during.readBytesPerSec!).toBeLessThan(before.readBytesPerSec! / 10);
    expect(during.avgRttMs!).toBeGreaterThan(100 * before.avgRttMs!);
    expect(during.backlogQueueLength!).toBeGreaterThan(50);
    expect(during.retransPerSec!).toBeGreaterThan(1);
    expect(during.slotTableUtilization!).toBeGreaterThan(before.slotTableUtilization! * 5);
    await at(s, 100); // the stall ended at 90
    const after = (await at(s, 120)).nfs[0]!.rates!;
    expect(after.readBytesPerSec!).toBeGreaterThan(5e8);
  });

  it('link-flap: link_downed increments, the port is DOWN without traffic, then recovers', async () => {
    const s = sim();
    await at(s, 5);
    s.backend.inject({ fault: 'link-flap', device: 'mlx5_0', duration: 20 });
    const down = await at(s, 15);
    expect(down.rdma[0]!.stats).toMatchObject({ state: 'DOWN', physState: 'Polling', counters: { link_downed: 1 } });
    expect(down.rdma[0]!.rates!.receiveBytesPerSec).toBe(0);
    expect(down.rdma[1]!.stats.state).toBe('ACTIVE');
    const up = await at(s, 40);
    expect(up.rdma[0]!.stats).toMatchObject({ state: 'ACTIVE', counters: { link_downed: 1, link_error_recovery: 1 } });
  });

  it('link-errors: symbol errors, out-of-sequence, retransmissions and NIC discards climb', async () => {
    const s = sim();
    await at(s, 5);
    s.backend.inject({ fault: 'link-errors', device: 'mlx5_1', duration: 30, params: { rate: 40 } });
    const r = await at(s, 25);
    const p = r.rdma[1]!.rates!;
    expect(p.symbolErrorsPerSec!).toBeGreaterThan(20);
    expect(p.outOfSequencePerSec!).toBeGreaterThan(10);
    expect(p.retransmissionsPerSec!).toBeGreaterThan(20);
    expect(r.rdma[0]!.rates!.symbolErrorsPerSec).toBe(0);
    expect(r.nics[0]!.rates!.receiveDiscardsPerSec!).toBeGreaterThan(10);
    expect(r.nics[0]!.rates!.transmitPausePerSec!).toBeGreaterThan(100);
  });

  it('straggler: one GPU runs at lower SM clock and utilisation', async () => {
    const s = sim();
    await at(s, 5);
    s.backend.inject({ fault: 'straggler', gpu: 7, duration: 60, params: { factor: 0.6 } });
    const r = await at(s, 30);
    expect(r.gpus[7]!.metrics.smClockMHz!).toBeLessThan(1300);
    expect(r.gpus[7]!.metrics.utilizationGpuPercent!).toBeLessThan(70);
    expect(r.gpus[0]!.metrics.smClockMHz).toBe(1980);
  });
});

describe('scenarios', () => {
  it('reads the YAML subset and JSON, sorted by time', () => {
    const yaml = [
      'faults:',
      '  - at: 120',
      '    fault: nfs-stall',
      '    mount: /mnt/datasets',
      '    duration: 90',
      '  - at: 60   # first',
      '    fault: xid',
      '    gpu: 3',
      '    params:',
      '      xid: 79',
      '  - {at: 200, fault: link-flap, device: mlx5_0, duration: 15}',
      '  - at: 300',
      '    fault: ecc-storm',
      '    gpu: 1',
      '    params: {sbeRate: 50, remapFailure: false}',
    ].join('\n');
    expect(parseScenario(yaml)).toEqual([
      { at: 60, fault: 'xid', gpu: 3, params: { xid: 79 } },
      { at: 120, fault: 'nfs-stall', mount: '/mnt/datasets', duration: 90 },
      { at: 200, fault: 'link-flap', device: 'mlx5_0', duration: 15 },
      { at: 300, fault: 'ecc-storm', gpu: 1, params: { sbeRate: 50, remapFailure: false } },
    ]);
    expect(parseScenario('{"faults": [{"at": 1, "fault": "straggler", "gpu": 0}]}')).toEqual([{ at: 1, fault: 'straggler', gpu: 0 }]);
    expect(() => parseScenario('[{"at": 1, "fault": "meteor"}]')).toThrow(/unknown fault/);
  });
});
