// Benchmark of one full telemetry collection cycle on a realistic host, built from the real
// fixture texts: 8 GPUs (the 198-field H100 nvidia-smi capture, a heavier query than the
// agent's own), 4 NFSv4.2 mounts with full per-op tables, 2 HCAs (an NDR InfiniBand port
// and the RoCE bond of the H100 node) plus `ethtool -S` of the RoCE netdev.
// A cycle = parse every source + derive rates against the previous snapshot + map to
// gantry.v1.TelemetryBatch + protobuf-encode it. Reading files and forking nvidia-smi are
// not included (they are I/O, measured by the agent's own metrics).
//
//   node --import tsx services/node-agent/bench/collect-cycle.ts [cycles]
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { GCProfiler } from 'node:v8';
import { TelemetryBatch } from '@gantry/proto';
import { fieldKey } from '../src/collectors/gpu/query-csv.js';
import { deriveSample, parseSnapshot, type HostSnapshot, type RawReadings } from '../src/collectors/snapshot.js';
import { sampleToProto } from '../src/collectors/to-proto.js';

const FIXTURES = fileURLToPath(new URL('../test/fixtures/', import.meta.url));
const read = (p: string): string => readFileSync(`${FIXTURES}${p}`, 'utf8');

function loadTree(dir: string, keep: (rel: string) => boolean): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string): void => {
    for (const name of readdirSync(`${FIXTURES}${dir}/${rel}`)) {
      const p = rel === '' ? name : `${rel}/${name}`;
      if (statSync(`${FIXTURES}${dir}/${p}`).isDirectory()) walk(p);
      else if (keep(p)) out.set(p, read(`${dir}/${p}`));
    }
  };
  walk('');
  return out;
}

/** The raw texts of the benchmark host, as a DeviceBackend would return them. */
export function realisticHostReadings(): RawReadings {
  const session = 'nvidia-smi/session-capture-h100-80gb-hbm3';
  const fields = read(`${session}/query-gpu-all-fields.csv`).split('\n')[0]!.split(',').map(fieldKey);
  const line = read(`${session}/query-gpu-all-fields-noheader-nounits.csv`).trim();
  const buses = ['18', '2a', '3a', '5d', '9a', 'ab', 'ba', 'db'];
  const cells = line.split(',');
  const csv = buses.map((bus, i) => {
    const row = [...cells];
    row[fields.indexOf('index')] = ` ${i}`;
    row[fields.indexOf('uuid')] = ` GPU-9b6c5236-63fa-edad-c3e6-063b1cf51a${i}0`;
    row[fields.indexOf('pci.bus_id')] = ` 00000000:${bus.toUpperCase()}:00.0`;
    return row.join(',');
  }).join('\n');
  // `nvidia-smi pci -gErrCnt` of the H200 capture (the same driver), one block per GPU.
  const pci = read('nvidia-smi/session-capture-h200/pci-gErrCnt.txt');
  const pcieErrors = buses.map((_, i) => pci.replace(/^GPU 0: NVIDIA H200 \(UUID: [^)]*\)/, `GPU ${i}: NVIDIA H100 80GB HBM3 (UUID: GPU-9b6c5236-63fa-edad-c3e6-063b1cf51a${i}0)`)).join('');

  // The first four NFS mounts of the nfsmountstats capture (NFSv4.2, 69 ops each) plus the
  // non-NFS devices before them, as /proc/self/mountstats lists them.
  const ms = read('nfs/nfsmountstats_testdata_proc_self_mountstats.txt');
  const mountstats = ms.slice(0, ms.indexOf('device 192.168.147.7:/mailserver25sessions'));

  const sysfs = loadTree('rdma/gpud-sys-class-infiniband-h100.0', (p) => p.startsWith('mlx5_0/') || p.startsWith('mlx5_bond_0/'));
  const ethtool = { bond0: read('rdma/ethtool-S_mlx5_netdev-bpf-list_2024-06-19_kernel5.15.txt') };
  return { gpu: { csv, fields, pcieErrors }, mountstats, rdma: { sysfs, ethtool }, errors: [] };
}

export interface CycleBenchResult {
  cycles: number;
  msPerCycle: number;
  cpuMsPerCycle: number;
  allocatedBytesPerCycle: number;
  encodedBytes: number;
  rssBytes: number;
}

/** Runs `cycles` full cycles (after a warm-up) and reports time and allocation per cycle. */
export function benchCollectCycle(cycles = 1000, raw: RawReadings = realisticHostReadings()): CycleBenchResult {
  let prev: HostSnapshot | undefined;
  let t = Date.UTC(2026, 0, 1);
  let encodedBytes = 0;
  const cycle = (): void => {
    const snap = parseSnapshot(raw, (t += 10_000));
    const sample = deriveSample(prev, snap);
    prev = snap;
    encodedBytes = TelemetryBatch.encode(sampleToProto(sample, { node: 'bench-node', seq: 1 })).finish().length;
  };
  for (let i = 0; i < Math.min(200, cycles); i++) cycle();

  const profiler = new GCProfiler();
  profiler.start();
  const heapBefore = process.memoryUsage().heapUsed;
  const cpuBefore = process.cpuUsage();
  const wallBefore = performance.now();
  for (let i = 0; i < cycles; i++) cycle();
  const wall = performance.now() - wallBefore;
  const cpu = process.cpuUsage(cpuBefore);
  const heapAfter = process.memoryUsage().heapUsed;
  const gc = profiler.stop();
  // Allocated = what the heap grew by + what every GC in between freed.
  let freed = 0;
  for (const s of gc?.statistics ?? []) {
    freed += Math.max(0, s.beforeGC.heapStatistics.usedHeapSize - s.afterGC.heapStatistics.usedHeapSize);
  }
  return {
    cycles,
    msPerCycle: wall / cycles,
    cpuMsPerCycle: (cpu.user + cpu.system) / 1000 / cycles,
    allocatedBytesPerCycle: (heapAfter - heapBefore + freed) / cycles,
    encodedBytes,
    rssBytes: process.memoryUsage().rss,
  };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const cycles = Number(process.argv[2] ?? 2000);
  const r = benchCollectCycle(cycles);
  const mb = (b: number): string => (b / 1024 / 1024).toFixed(1);
  console.log(`collect-cycle: 8 GPUs, 4 NFS mounts, 2 HCAs + ethtool; ${r.cycles} cycles`);
  console.log(`  wall ${r.msPerCycle.toFixed(3)} ms/cycle (target < 5 ms)   cpu ${r.cpuMsPerCycle.toFixed(3)} ms/cycle`);
  console.log(`  allocated ${(r.allocatedBytesPerCycle / 1024).toFixed(0)} KiB/cycle   batch ${r.encodedBytes} bytes encoded   rss ${mb(r.rssBytes)} MiB`);
  if (r.msPerCycle >= 5) process.exitCode = 1;
}
