// Builders for the gantry.v1 messages the health evaluator reads, with healthy defaults, so
// each test states only what it changes.
import { XidSeverity, type GpuTelemetry, type NfsMountTelemetry, type RdmaPortTelemetry, type TelemetryBatch, type XidEvent } from '@gantry/proto';
import { HealthEvaluator, resolveHealthConfig, type HealthConfigInput, type HealthEvaluation } from '../../src/health/index.js';
import type { HealthWindowInput } from '../../src/health/types.js';

export const T0 = Date.UTC(2026, 0, 5);
export const MIN = 60_000;

export interface GpuOpts {
  index?: number;
  uuid?: string;
  util?: number;
  temp?: number;
  power?: number;
  sm?: number;
  sbeRate?: number;
  dbeRate?: number;
  pcieRate?: number;
  remapCorrectable?: number;
  remapPending?: boolean;
  remapFailure?: boolean;
  /** Cumulative CRC errors summed over links (put on link 0). */
  nvlinkCrc?: number;
  thermal?: number;
  /** nvidia-smi's "[GPU is lost]": identity only. */
  lost?: boolean;
}

export function uuidOf(node: string, index: number): string {
  return `GPU-${node}-${index}`;
}

export function gpu(node: string, o: GpuOpts = {}): GpuTelemetry {
  const index = o.index ?? 0;
  const base = { index, uuid: o.uuid ?? uuidOf(node, index), pciBusId: `00000000:${(0x18 + index).toString(16)}:00.0`, name: 'NVIDIA B200' };
  if (o.lost) return { ...base, clockEventReasons: [], nvlinks: [], ecc: {} };
  return {
    ...base,
    clockEventReasons: [],
    nvlinks: [{ link: 0, active: true, errors: { replay: 0, recovery: 0, crc: o.nvlinkCrc ?? 0 }, speedGigabytesPerSecond: 50 }],
    utilizationGpuPercent: o.util ?? 96,
    temperatureGpuCelsius: o.temp ?? 68,
    temperatureMemoryCelsius: (o.temp ?? 68) + 5,
    powerDrawWatts: o.power ?? 860,
    powerLimitWatts: 1000,
    smClockMhz: o.sm ?? 1875,
    maxSmClockMhz: 1965,
    ecc: { volatileSingleBit: 0, volatileDoubleBit: 0, aggregateSingleBit: 0, aggregateDoubleBit: 0 },
    remappedRowsCorrectable: o.remapCorrectable ?? 0,
    remappedRowsUncorrectable: 0,
    remappedRowsPending: o.remapPending ?? false,
    remappedRowsFailure: o.remapFailure ?? false,
    pcieReplayCount: 0,
    rates: {
      throttleFraction: { sw_thermal_slowdown: o.thermal ?? 0, hw_thermal_slowdown: 0, hw_power_brake_slowdown: 0 },
      eccSingleBitPerSecond: o.sbeRate ?? 0,
      eccDoubleBitPerSecond: o.dbeRate ?? 0,
      pcieReplaysPerSecond: o.pcieRate ?? 0,
    },
  };
}

export interface NfsOpts {
  rttMs?: number;
  executeMs?: number;
  retrans?: number;
  timeouts?: number;
  backlog?: number;
  slots?: number;
}

export function nfs(device: string, o: NfsOpts = {}): NfsMountTelemetry {
  return {
    device, mountpoint: `/mnt/${device.split('/').pop()}`, fstype: 'nfs4', statvers: '1.1', ops: [],
    rates: {
      ops: [], opsPerSecond: 100, retransmissionsPerSecond: o.retrans ?? 0, majorTimeoutsPerSecond: o.timeouts ?? 0,
      avgRttMs: o.rttMs ?? 0.7, avgExecuteMs: o.executeMs ?? 1, backlogQueueLength: o.backlog ?? 0, slotTableUtilization: o.slots ?? 0.02,
    },
  };
}

export function port(o: { symbol?: number; downs?: number; state?: string; retrans?: number } = {}): RdmaPortTelemetry {
  return {
    device: 'mlx5_1', port: 1, linkLayer: 'Ethernet', state: o.state ?? 'ACTIVE', physState: 'LinkUp', rateText: '200 Gb/sec', hcaType: 'MT4129',
    firmwareVersion: '28.41.1000', counters: {}, hwCounters: {},
    rates: { symbolErrorsPerSecond: o.symbol ?? 0, linkDownedPerSecond: o.downs ?? 0, outOfSequencePerSecond: 0, retransmissionsPerSecond: o.retrans ?? 0 },
  };
}

export interface BatchOpts {
  gpus?: GpuTelemetry[];
  gpuCount?: number;
  gpu?: (i: number) => GpuOpts;
  mounts?: NfsMountTelemetry[];
  ports?: RdmaPortTelemetry[];
  intervalSec?: number;
  gpuCollectorFailed?: boolean;
}

export function batch(node: string, timeMs: number, o: BatchOpts = {}): TelemetryBatch {
  const gpus = o.gpuCollectorFailed ? [] : o.gpus ?? Array.from({ length: o.gpuCount ?? 8 }, (_, i) => gpu(node, { index: i, ...(o.gpu?.(i) ?? {}) }));
  return {
    node, time: new Date(timeMs), seq: 1, gpus, nfsMounts: o.mounts ?? [nfs('10.0.0.11:/checkpoints')], rdmaPorts: o.ports ?? [port()], nics: [],
    droppedReports: 0, instanceId: '', collectorErrors: o.gpuCollectorFailed ? [{ collector: 'gpu', message: 'timeout' }] : [],
    interval: { seconds: o.intervalSec ?? 60, nanos: 0 },
  };
}

export function xid(node: string, n: number, timeMs: number, o: { gpu?: number; causeClass?: string; fatal?: boolean; id?: string } = {}): XidEvent {
  const g = o.gpu ?? 0;
  return {
    eventId: o.id ?? `${node}:${n}:${timeMs}:${g}`, node, time: new Date(timeMs), gpuIndex: g, gpuUuid: uuidOf(node, g), pciBusId: '', xid: n, processName: '',
    message: '', mnemonic: `XID_${n}`, causeClass: o.causeClass ?? 'hardware', severity: XidSeverity.XID_SEVERITY_CRITICAL, immediateAction: '',
    investigatoryAction: '', orchestratorHint: '', rawLine: '', inferred: false, instanceId: '', ...(o.fatal !== undefined ? { fatal: o.fatal } : {}),
  };
}

export const nodeNames = (n: number, prefix = 'n'): string[] => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(2, '0')}`);

/** A small deterministic jitter in [-1, 1] (no RNG state to carry between tests). */
export function jitter(node: number, window: number, salt = 0): number {
  const x = Math.sin(node * 12.9898 + window * 78.233 + salt * 37.719) * 43758.5453;
  return 2 * (x - Math.floor(x)) - 1;
}

export interface Harness {
  ev: HealthEvaluator;
  /** Runs one window at T0 + k minutes with the given input parts (nowMs filled in). */
  window(k: number, input: Omit<HealthWindowInput, 'nowMs'>): HealthEvaluation;
}

/** Fast tests: one-minute windows and a short baseline (one-minute buckets, ready after 5). */
export function harness(config: HealthConfigInput = {}): Harness {
  const ev = new HealthEvaluator(resolveHealthConfig({
    windowSec: 60,
    ...config,
    baseline: { bucketSec: 60, buckets: 30, minBuckets: 5, learnBelowZ: 3, ...(config.baseline ?? {}) },
  }));
  return { ev, window: (k, input) => ev.evaluate({ nowMs: T0 + k * MIN, ...input }) };
}
