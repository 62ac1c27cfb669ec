// One collection cycle, in three steps the agent (and the benchmark) can run separately:
//   readRaw(backend)            I/O: the raw texts, each source failing on its own
//   parseSnapshot(raw, time)    pure: raw texts → parsed per-source values
//   deriveSample(prev, cur)     pure: two snapshots → the values plus per-interval rates
import type { DeviceBackend, GpuMetricsText, RdmaReadings } from '../device/types.js';
import { deriveGpuRates, gpuKey, type GpuRates } from './gpu/derive.js';
import { parseGpuQueryCsv } from './gpu/query-csv.js';
import { parseNvlinkText, parsePciErrorCounters } from './gpu/smi-text.js';
import type { GpuMetrics } from './gpu/types.js';
import { deriveNfsMountRates, mountKey, type NfsDeriveOptions, type NfsMountRates } from './nfs/derive.js';
import { parseMountstats, type NfsMountStats } from './nfs/mountstats.js';
import { deriveNicRates, deriveRdmaPortRates, rdmaPortKey, type NicRates, type RdmaPortRates } from './rdma/derive.js';
import { parseEthtoolStats, parseInfinibandTree, type RdmaPortStats } from './rdma/sysfs.js';

export interface CollectorFailure {
  /** 'gpu-pcie': the PCIe error counters alone (the GPUs' readings stand). */
  collector: 'gpu' | 'gpu-pcie' | 'nfs' | 'rdma' | 'ethtool';
  message: string;
}

export interface RawReadings {
  gpu?: GpuMetricsText;
  mountstats?: string;
  rdma?: RdmaReadings;
  errors: CollectorFailure[];
}

export interface HostSnapshot {
  /** Milliseconds since the epoch when the readings were taken. */
  timeMs: number;
  gpus: GpuMetrics[];
  nfs: NfsMountStats[];
  rdma: RdmaPortStats[];
  nics: Record<string, Record<string, number>>;
  errors: CollectorFailure[];
}

export interface TelemetrySample {
  timeMs: number;
  /** Seconds since the previous snapshot; undefined on the first cycle. */
  intervalSeconds?: number;
  gpus: Array<{ metrics: GpuMetrics; rates?: GpuRates }>;
  nfs: Array<{ stats: NfsMountStats; rates?: NfsMountRates }>;
  rdma: Array<{ stats: RdmaPortStats; rates?: RdmaPortRates }>;
  nics: Array<{ iface: string; counters: Record<string, number>; rates?: NicRates }>;
  errors: CollectorFailure[];
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Reads every source concurrently; a failing source is recorded, the others still count. */
export async function readRaw(backend: DeviceBackend): Promise<RawReadings> {
  const [gpu, mountstats, rdma] = await Promise.allSettled([
    backend.readGpuMetricsText(), backend.readMountstatsText(), backend.readRdma(),
  ]);
  const raw: RawReadings = { errors: [] };
  if (gpu.status === 'fulfilled') {
    raw.gpu = gpu.value;
    if (gpu.value.pcieError) raw.errors.push({ collector: 'gpu-pcie', message: gpu.value.pcieError });
  } else raw.errors.push({ collector: 'gpu', message: message(gpu.reason) });
  if (mountstats.status === 'fulfilled') raw.mountstats = mountstats.value;
  else raw.errors.push({ collector: 'nfs', message: message(mountstats.reason) });
  if (rdma.status === 'fulfilled') raw.rdma = rdma.value;
  else raw.errors.push({ collector: 'rdma', message: message(rdma.reason) });
  return raw;
}

/** Parses GPU texts: the CSV, plus PCIe error counters by UUID and NVLink by index. */
export function parseGpuText(text: GpuMetricsText): GpuMetrics[] {
  const gpus = parseGpuQueryCsv(text.csv, text.fields);
  if (text.pcieErrors) {
    const pcie = parsePciErrorCounters(text.pcieErrors);
    for (const g of gpus) {
      const c = pcie.find((x) => (g.uuid !== undefined ? x.uuid === g.uuid : x.index === g.index));
      if (c?.replays !== undefined) g.pcieReplayCounter = c.replays;
      if (c?.recoveries !== undefined) g.pcieLinkRecoveryCounter = c.recoveries;
    }
  }
  if (text.nvlink) {
    const links = parseNvlinkText(text.nvlink);
    for (const g of gpus) {
      const l = links.find((x) => (g.uuid !== undefined && x.uuid === g.uuid) || x.index === g.index);
      if (l) g.nvlinks = l.links;
    }
  }
  return gpus;
}

export function parseSnapshot(raw: RawReadings, timeMs: number): HostSnapshot {
  const snap: HostSnapshot = { timeMs, gpus: [], nfs: [], rdma: [], nics: {}, errors: [...raw.errors] };
  // Each parser is total (never throws) but a guard keeps one bad source from costing the rest.
  const guard = (collector: CollectorFailure['collector'], fn: () => void): void => {
    try {
      fn();
    } catch (err) {
      snap.errors.push({ collector, message: message(err) });
    }
  };
  if (raw.gpu) guard('gpu', () => { snap.gpus = parseGpuText(raw.gpu!); });
  if (raw.mountstats !== undefined) guard('nfs', () => { snap.nfs = parseMountstats(raw.mountstats!); });
  if (raw.rdma) {
    guard('rdma', () => { snap.rdma = parseInfinibandTree(raw.rdma!.sysfs); });
    guard('ethtool', () => {
      for (const [iface, text] of Object.entries(raw.rdma!.ethtool)) snap.nics[iface] = parseEthtoolStats(text);
    });
  }
  return snap;
}

/** The values of `cur` with rates against `prev` (when given and older). */
export function deriveSample(prev: HostSnapshot | undefined, cur: HostSnapshot, options: NfsDeriveOptions = {}): TelemetrySample {
  const seconds = prev ? (cur.timeMs - prev.timeMs) / 1000 : 0;
  const have = prev !== undefined && seconds > 0;
  const sample: TelemetrySample = {
    timeMs: cur.timeMs, gpus: [], nfs: [], rdma: [], nics: [], errors: cur.errors,
    ...(have ? { intervalSeconds: seconds } : {}),
  };
  const prevGpus = new Map(have ? prev.gpus.map((g) => [gpuKey(g), g]) : []);
  for (const g of cur.gpus) {
    const p = prevGpus.get(gpuKey(g));
    sample.gpus.push(p ? { metrics: g, rates: deriveGpuRates(p, g, seconds) } : { metrics: g });
  }
  const prevMounts = new Map(have ? prev.nfs.map((m) => [mountKey(m), m]) : []);
  for (const m of cur.nfs) {
    const p = prevMounts.get(mountKey(m));
    sample.nfs.push(p ? { stats: m, rates: deriveNfsMountRates(p, m, seconds, options) } : { stats: m });
  }
  const prevPorts = new Map(have ? prev.rdma.map((r) => [rdmaPortKey(r), r]) : []);
  for (const r of cur.rdma) {
    const p = prevPorts.get(rdmaPortKey(r));
    sample.rdma.push(p ? { stats: r, rates: deriveRdmaPortRates(p, r, seconds) } : { stats: r });
  }
  for (const [iface, counters] of Object.entries(cur.nics)) {
    const p = have ? prev.nics[iface] : undefined;
    sample.nics.push(p ? { iface, counters, rates: deriveNicRates(p, counters, seconds) } : { iface, counters });
  }
  return sample;
}
