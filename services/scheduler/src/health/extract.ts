// From one node's TelemetryBatches of a window to signal values: the worst GPU / port / NIC
// per batch, then the window's mean (rates, gauges) or max (flags, counts). Also the
// per-GPU bookkeeping rates need that the agent does not send (NVLink counters are
// cumulative; remapped-row growth needs a day of history) and the inventory check.
import type { GpuTelemetry, TelemetryBatch } from '@gantry/proto';
import type { HealthConfig } from './config.js';
import { signalKey, type SignalName } from './signals.js';
import type { GpuRecord, NodeRecord } from './state.js';

export interface SignalValue {
  value: number;
  gpu?: number;
  target?: string;
}

export interface NodeSample {
  /** By signal key. */
  values: Map<string, SignalValue>;
  /** NFS targets (server:/export) the node mounts. */
  mounts: string[];
  /** Mean GPU utilisation and effective throughput (utilisation x clock ratio), 0..100. */
  util?: number;
  throughput?: number;
  /** GPUs that crossed the missing threshold in this window. */
  missing: Array<{ uuid: string; index: number }>;
  batches: number;
  lastBatchMs?: number;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

interface Acc {
  name: SignalName;
  sum: number;
  n: number;
  max: number;
  min: number;
  gpu: number | undefined;
  target: string | undefined;
}

class Accumulator {
  private readonly acc = new Map<string, Acc>();

  add(name: SignalName, key: string, value: number | undefined, gpu?: number, target?: string): void {
    if (value === undefined || !Number.isFinite(value)) return;
    const a = this.acc.get(key);
    if (!a) {
      this.acc.set(key, { name, sum: value, n: 1, max: value, min: value, gpu, target });
      return;
    }
    a.sum += value;
    a.n += 1;
    if (value >= a.max) {
      a.max = value;
      if (gpu !== undefined) a.gpu = gpu;
    }
    a.min = Math.min(a.min, value);
  }

  result(config: HealthConfig): Map<string, SignalValue> {
    const out = new Map<string, SignalValue>();
    for (const [key, a] of this.acc) {
      const spec = config.signals[a.name];
      const value = spec.aggregate === 'max' ? (spec.direction === 'low' ? a.min : a.max) : a.sum / a.n;
      const v: SignalValue = { value };
      if (a.gpu !== undefined) v.gpu = a.gpu;
      if (a.target !== undefined) v.target = a.target;
      out.set(key, v);
    }
    return out;
  }
}

/** The per-GPU signals, reduced per batch to the worst GPU. */
const GPU_SIGNALS = [
  'gpu.ecc_sbe_rate', 'gpu.ecc_dbe', 'gpu.remap_pending', 'gpu.remap_failure', 'gpu.retired_pending', 'gpu.pcie_replay_rate',
  'gpu.remap_growth', 'gpu.retired_growth', 'gpu.nvlink_crc_rate', 'gpu.nvlink_replay_rate', 'gpu.nvlink_recovery_rate',
  'gpu.nvlink_down', 'gpu.thermal_throttle', 'gpu.hw_slowdown', 'gpu.temperature', 'gpu.memory_temperature', 'gpu.clock_ratio',
  'gpu.power_ratio',
] as const satisfies readonly SignalName[];
type GpuSignal = (typeof GPU_SIGNALS)[number];
const SLOT = new Map<GpuSignal, number>(GPU_SIGNALS.map((n, i) => [n, i]));

/** Per batch, the worst GPU's value of each GPU signal (fixed slots: this runs per GPU per batch). */
class Worst {
  private readonly value = new Float64Array(GPU_SIGNALS.length);
  private readonly gpu = new Int32Array(GPU_SIGNALS.length);
  private readonly set = new Uint8Array(GPU_SIGNALS.length);
  private low: boolean[] = [];
  private config: HealthConfig | undefined;

  /** One instance serves every call (typed arrays are costly to allocate); reset per node. */
  reset(config: HealthConfig): this {
    if (config !== this.config) {
      this.config = config;
      this.low = GPU_SIGNALS.map((n) => config.signals[n].direction === 'low');
    }
    this.set.fill(0);
    return this;
  }

  offer(name: GpuSignal, value: number | undefined, gpu: number): void {
    if (value === undefined || !Number.isFinite(value)) return;
    const i = SLOT.get(name)!;
    if (this.set[i] === 0 || (this.low[i] ? value < this.value[i]! : value > this.value[i]!)) {
      this.value[i] = value;
      this.gpu[i] = gpu;
      this.set[i] = 1;
    }
  }

  flush(into: Accumulator): void {
    for (let i = 0; i < GPU_SIGNALS.length; i++) {
      if (this.set[i] === 0) continue;
      into.add(GPU_SIGNALS[i]!, GPU_SIGNALS[i]!, this.value[i], this.gpu[i]);
      this.set[i] = 0;
    }
  }
}

const KEYS = new Map<string, Map<SignalName, string>>();

/** The same string object for the same (signal, target) every window: hashed once, looked up fast. */
function internedKey(name: SignalName, target: string): string {
  let m = KEYS.get(target);
  if (!m) {
    m = new Map();
    if (KEYS.size < 10_000) KEYS.set(target, m);
  }
  let k = m.get(name);
  if (!k) m.set(name, (k = signalKey(name, target)));
  return k;
}

const WORST = new Worst();
const SW_THERMAL = ['sw_thermal_slowdown'];
const HW_SLOWDOWN = ['hw_thermal_slowdown', 'hw_power_brake_slowdown', 'hw_slowdown'];

const finite = (x: number | undefined): number | undefined => (x !== undefined && Number.isFinite(x) ? x : undefined);

function seconds(batch: TelemetryBatch): number | undefined {
  const d = batch.interval;
  if (!d) return undefined;
  const s = Number(d.seconds) + (d.nanos ?? 0) / 1e9;
  return s > 0 ? s : undefined;
}

/** nvidia-smi reports an unreachable GPU with its identity but no readings ("[GPU is lost]"). */
export function gpuUnreadable(g: GpuTelemetry): boolean {
  return g.utilizationGpuPercent === undefined && g.temperatureGpuCelsius === undefined
    && g.powerDrawWatts === undefined && g.smClockMhz === undefined;
}

/** NVLink error counter names (replay, recovery, crc, crc_flit, data_crc, ...) → 0 crc, 1 replay, 2 recovery, 3 other. */
function nvlinkKind(name: string): number {
  // The common names first: compared as (internalised) strings, no search.
  if (name === 'crc') return 0;
  if (name === 'replay') return 1;
  if (name === 'recovery') return 2;
  return name.includes('crc') ? 0 : name.includes('replay') ? 1 : name.includes('recovery') ? 2 : 3;
}

function nvlinkTotals(g: GpuTelemetry): { crc: number; replay: number; recovery: number; active: number } | undefined {
  if (g.nvlinks.length === 0) return undefined;
  let crc = 0, replay = 0, recovery = 0, active = 0;
  for (const l of g.nvlinks) {
    if (l.active) active++;
    const e = l.errors;
    for (const name in e) {
      const k = nvlinkKind(name);
      if (k === 0) crc += e[name]!;
      else if (k === 1) replay += e[name]!;
      else if (k === 2) recovery += e[name]!;
    }
  }
  return { crc, replay, recovery, active };
}

function rateOf(prev: number, cur: number, sec: number): number | undefined {
  if (!(sec > 0)) return undefined;
  // A decrease is a counter reset (driver reload, GPU reset): count from zero.
  return (cur >= prev ? cur - prev : cur) / sec;
}

function throttle(g: GpuTelemetry, names: readonly string[], bits: number): number | undefined {
  const fr = g.rates?.throttleFraction;
  let best: number | undefined;
  if (fr) for (const n of names) if (fr[n] !== undefined) best = Math.max(best ?? 0, fr[n]!);
  if (best !== undefined) return best;
  // No counters (older driver): the reasons active at the sample, as 0 or 1.
  return g.clockEventReasonsMask !== undefined ? ((Number(g.clockEventReasonsMask) & bits) !== 0 ? 1 : 0) : undefined;
}

function newGpuRecord(index: number): GpuRecord {
  return { index, lastSeenMs: 0, missing: 0, missingReported: false, remapFailure: false, nvlink: null, levels: [], xids: [] };
}

/** Rows added over the last day (not extrapolated: a young history counts what it saw). */
function growth(levels: GpuRecord['levels'], col: 1 | 2, cur: number): number {
  const first = levels[0];
  return first ? Math.max(0, cur - first[col]) : 0;
}

function updateLevels(levels: GpuRecord['levels'], atMs: number, remap: number, retired: number): GpuRecord['levels'] {
  const last = levels[levels.length - 1];
  // A count that went down is a replaced or reset GPU: start the history again.
  if (last && (remap < last[1] || retired < last[2])) return [[atMs, remap, retired]];
  let out = levels;
  if (!last || atMs - last[0] >= HOUR_MS) out = [...levels, [atMs, remap, retired]];
  while (out.length > 1 && out[1]![0] <= atMs - DAY_MS) out = out.slice(1);
  return out;
}

export function extractNode(batches: readonly TelemetryBatch[], rec: NodeRecord, config: HealthConfig, registered?: readonly string[]): NodeSample {
  const acc = new Accumulator();
  const worst = WORST.reset(config);
  // Updates the node's GPU records and learned inventory in place (the caller owns the record).
  const gpus = rec.gpus;
  const own = (uuid: string, index: number): GpuRecord => {
    const g = (gpus[uuid] ??= newGpuRecord(index));
    if (index >= 0) g.index = index;
    return g;
  };
  const learned = new Set(rec.inventory);
  const mounts = new Set<string>();
  const missing: NodeSample['missing'] = [];
  let utilSum = 0, utilN = 0, tputSum = 0;
  let lastBatchMs: number | undefined;
  const busy = config.busyUtilPercent;

  for (const batch of batches) {
    const atMs = batch.time ? batch.time.getTime() : (lastBatchMs ?? 0);
    lastBatchMs = atMs;
    const sec = seconds(batch);
    const present = new Set<string>();
    for (const g of batch.gpus) {
      const uuid = g.uuid || `index:${g.index}`;
      const gr = own(uuid, g.index);
      if (gpuUnreadable(g)) continue;
      present.add(uuid);
      learned.add(uuid);
      gr.lastSeenMs = atMs;
      gr.missing = 0;
      gr.missingReported = false;
      gr.remapFailure = g.remappedRowsFailure === true;

      const util = finite(g.utilizationGpuPercent);
      const clock = finite(g.smClockMhz !== undefined && g.maxSmClockMhz ? g.smClockMhz / g.maxSmClockMhz : undefined);
      if (util !== undefined) {
        utilSum += util;
        utilN++;
        tputSum += util * Math.min(1, clock ?? 1);
      }
      const isBusy = util !== undefined && util >= busy;
      const i = g.index;
      worst.offer('gpu.ecc_sbe_rate', g.rates?.eccSingleBitPerSecond, i);
      const dbe = g.rates?.eccDoubleBitPerSecond;
      worst.offer('gpu.ecc_dbe', dbe !== undefined && sec !== undefined ? dbe * sec : dbe, i);
      worst.offer('gpu.remap_pending', g.remappedRowsPending === undefined ? undefined : g.remappedRowsPending ? 1 : 0, i);
      worst.offer('gpu.remap_failure', g.remappedRowsFailure === undefined ? undefined : g.remappedRowsFailure ? 1 : 0, i);
      worst.offer('gpu.retired_pending', g.retiredPagesPending === undefined ? undefined : g.retiredPagesPending ? 1 : 0, i);
      worst.offer('gpu.pcie_replay_rate', g.rates?.pcieReplaysPerSecond, i);
      const remap = g.remappedRowsCorrectable !== undefined || g.remappedRowsUncorrectable !== undefined
        ? (g.remappedRowsCorrectable ?? 0) + (g.remappedRowsUncorrectable ?? 0) : undefined;
      const retired = g.retiredPagesSingleBit !== undefined || g.retiredPagesDoubleBit !== undefined
        ? (g.retiredPagesSingleBit ?? 0) + (g.retiredPagesDoubleBit ?? 0) : undefined;
      if (remap !== undefined || retired !== undefined) {
        gr.levels = updateLevels(gr.levels, atMs, remap ?? 0, retired ?? 0);
        if (remap !== undefined) worst.offer('gpu.remap_growth', growth(gr.levels, 1, remap), i);
        if (retired !== undefined) worst.offer('gpu.retired_growth', growth(gr.levels, 2, retired), i);
      }
      const nv = nvlinkTotals(g);
      if (nv) {
        const p = gr.nvlink;
        if (p && atMs > p.atMs) {
          const s = (atMs - p.atMs) / 1000;
          worst.offer('gpu.nvlink_crc_rate', rateOf(p.crc, nv.crc, s), i);
          worst.offer('gpu.nvlink_replay_rate', rateOf(p.replay, nv.replay, s), i);
          worst.offer('gpu.nvlink_recovery_rate', rateOf(p.recovery, nv.recovery, s), i);
        }
        // Links that were up at the last batch and are down now.
        worst.offer('gpu.nvlink_down', p ? Math.max(0, p.active - nv.active) : 0, i);
        gr.nvlink = { atMs, crc: nv.crc, replay: nv.replay, recovery: nv.recovery, active: p ? Math.max(p.active, nv.active) : nv.active };
      }
      worst.offer('gpu.thermal_throttle', throttle(g, SW_THERMAL, 0x20), i);
      worst.offer('gpu.hw_slowdown', throttle(g, HW_SLOWDOWN, 0x40 | 0x80 | 0x8), i);
      if (isBusy) {
        worst.offer('gpu.temperature', g.temperatureGpuCelsius, i);
        worst.offer('gpu.memory_temperature', g.temperatureMemoryCelsius, i);
        worst.offer('gpu.clock_ratio', clock, i);
        worst.offer('gpu.power_ratio', g.powerDrawWatts !== undefined && g.powerLimitWatts ? g.powerDrawWatts / g.powerLimitWatts : undefined, i);
      }
    }
    worst.flush(acc);

    // Inventory: the registered GPUs, else every GPU this node has shown readings for. A batch
    // whose GPU collector failed (nvidia-smi timed out) says nothing about the inventory.
    const gpuFailed = batch.gpus.length === 0 || batch.collectorErrors.some((e) => e.collector === 'gpu');
    const expected = gpuFailed ? [] : registered ?? [...learned];
    for (const uuid of expected) {
      if (present.has(uuid)) continue;
      const gr = own(uuid, -1);
      gr.missing += 1;
      if (gr.missing >= config.inventory.missingBatches && !gr.missingReported) {
        gr.missingReported = true;
        missing.push({ uuid, index: gr.index });
      }
    }

    for (const m of batch.nfsMounts) {
      const target = m.device;
      if (!target) continue;
      mounts.add(target);
      const r = m.rates;
      if (!r) continue;
      const add = (name: SignalName, v: number | undefined): void => acc.add(name, internedKey(name, target), v, undefined, target);
      add('nfs.retrans_rate', r.retransmissionsPerSecond);
      add('nfs.major_timeout_rate', r.majorTimeoutsPerSecond);
      add('nfs.rtt_ms', r.avgRttMs);
      add('nfs.execute_ms', r.avgExecuteMs);
      add('nfs.backlog', r.backlogQueueLength);
      add('nfs.slot_utilization', r.slotTableUtilization);
    }

    let sym: number | undefined, linkErr: number | undefined, downed: number | undefined, oos: number | undefined, retr: number | undefined;
    const mx = (a: number | undefined, b: number | undefined): number | undefined => (b === undefined ? a : a === undefined ? b : Math.max(a, b));
    for (const p of batch.rdmaPorts) {
      const r = p.rates;
      // A port that is not ACTIVE is a link down whether or not the counter moved.
      const down = (r?.linkDownedPerSecond !== undefined && sec !== undefined ? r.linkDownedPerSecond * sec : 0) + (p.state && p.state !== 'ACTIVE' ? 1 : 0);
      downed = mx(downed, down);
      if (!r) continue;
      sym = mx(sym, r.symbolErrorsPerSecond);
      linkErr = mx(linkErr, r.receiveErrorsPerSecond !== undefined || r.linkErrorRecoveryPerSecond !== undefined
        ? (r.receiveErrorsPerSecond ?? 0) + (r.linkErrorRecoveryPerSecond ?? 0) : undefined);
      oos = mx(oos, r.outOfSequencePerSecond);
      retr = mx(retr, r.retransmissionsPerSecond);
    }
    let pause: number | undefined;
    for (const n of batch.nics) {
      const r = n.rates;
      if (!r || (r.receivePausePerSecond === undefined && r.transmitPausePerSecond === undefined)) continue;
      pause = mx(pause, (r.receivePausePerSecond ?? 0) + (r.transmitPausePerSecond ?? 0));
    }
    acc.add('rdma.symbol_error_rate', 'rdma.symbol_error_rate', sym);
    acc.add('rdma.link_error_rate', 'rdma.link_error_rate', linkErr);
    acc.add('rdma.link_downed', 'rdma.link_downed', downed);
    acc.add('rdma.out_of_sequence_rate', 'rdma.out_of_sequence_rate', oos);
    acc.add('rdma.retransmit_rate', 'rdma.retransmit_rate', retr);
    acc.add('rdma.pfc_pause_rate', 'rdma.pfc_pause_rate', pause);
  }

  if (learned.size !== rec.inventory.length) rec.inventory = [...learned];
  return {
    values: acc.result(config),
    mounts: [...mounts],
    ...(utilN > 0 ? { util: utilSum / utilN, throughput: tputSum / utilN } : {}),
    missing,
    batches: batches.length,
    ...(lastBatchMs !== undefined ? { lastBatchMs } : {}),
  };
}
