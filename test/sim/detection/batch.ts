// From a simulated host to the TelemetryBatch its agent would send.
//
// Two paths:
//   text    the sim backend's renderers (nvidia-smi CSV and -q, mountstats, sysfs, ethtool)
//           and the agent's own parsers, rate derivation and to-proto: exactly what an agent
//           on the simulated backend sends. About 3 ms per batch: weeks x 63 nodes would take
//           half an hour.
//   direct  the same message built straight from the host state (~0.05 ms), mirroring the
//           agent's rounding and rate rules.
// The evaluation uses `direct` for every batch and, on a sample of consecutive batch pairs,
// also runs `text` and requires the two to be equal (fidelityCheck): a drift in either the
// agent or this builder fails the evaluation instead of silently changing what is measured.
import type { GpuTelemetry, NfsMountTelemetry, NicTelemetry, RdmaPortTelemetry, TelemetryBatch } from '@gantry/proto';
import { renderEthtool, renderGpuCsv, renderMountstats, renderPciErrorCounters, renderSysfs, type GpuState } from '../../../services/node-agent/src/device/sim/render.js';
import { GPU_QUERY_FIELDS } from '../../../services/node-agent/src/collectors/gpu/query-csv.js';
import { clockEventReasonNames } from '../../../services/node-agent/src/collectors/gpu/types.js';
import { deriveSample, parseSnapshot, type HostSnapshot, type RawReadings } from '../../../services/node-agent/src/collectors/snapshot.js';
import { sampleToProto } from '../../../services/node-agent/src/collectors/to-proto.js';
import { normalizePciBusId } from '../../../services/node-agent/src/collectors/pci.js';
import { GPU, type HostMount, type HostSim, type NvlinkState } from './host.js';

const THROTTLE = ['sw_power_cap', 'sync_boost', 'sw_thermal_slowdown', 'hw_thermal_slowdown', 'hw_power_brake_slowdown'];

/** counterDelta with the agents' default reset rule: a decrease counts from zero. */
const delta = (prev: number | undefined, cur: number | undefined): number | undefined =>
  prev === undefined || cur === undefined ? undefined : cur >= prev ? cur - prev : cur;
const ratio = (a: number | undefined, b: number | undefined): number | undefined => {
  if (a === undefined || b === undefined || b === 0) return undefined;
  const r = a / b;
  return Number.isFinite(r) ? r : undefined;
};
const perSec = (d: number | undefined, sec: number): number | undefined => (d === undefined ? undefined : d / sec);

/** Copies the defined, finite values of `from` onto `into` (what the agent's to-proto keeps). */
function assignDefined<T extends object>(into: T, from: Partial<T>): T {
  for (const k in from) {
    const v = from[k];
    if (v !== undefined && !(typeof v === 'number' && !Number.isFinite(v))) into[k] = v as T[typeof k];
  }
  return into;
}

const BUS_IDS = new Map<string, string>();
function busIdOf(busId: string): string {
  let b = BUS_IDS.get(busId);
  if (!b) BUS_IDS.set(busId, (b = normalizePciBusId(busId.toUpperCase())!));
  return b;
}

interface PrevGpu {
  sbe?: number;
  dbe?: number;
  pcie?: number;
  throttle?: Record<string, number>;
}

interface PrevMount {
  b4: number;
  b5: number;
  ops: Map<string, { ops: number; trans: number; timeouts: number; errors: number; queue: number; rtt: number; exec: number; sent: number; recv: number }>;
  sends: number;
  reqU: number;
  bklogU: number;
}

interface Prev {
  timeMs: number;
  gpus?: Map<string, PrevGpu>;
  mounts: Map<string, PrevMount>;
  ports: Map<string, { counters: Record<string, number>; hw: Record<string, number> }>;
  nic: Record<string, number>;
}

/** Renders one GPU's NVLink state as `nvidia-smi nvlink -s` + `-e` print it. */
export function renderNvlink(gpus: readonly GpuState[], links: readonly NvlinkState[][]): string {
  const out: string[] = [];
  gpus.forEach((g, i) => {
    if (g.lost) return;
    out.push(`GPU ${g.index}: ${g.name} (UUID: ${g.uuid})`);
    links[i]!.forEach((l, n) => {
      out.push(l.active ? `\t Link ${n}: ${GPU.nvlinkGBps} GB/s` : `\t Link ${n}: <inactive>`);
      out.push(`\t Link ${n}: Replay Errors: ${l.replay}`, `\t Link ${n}: Recovery Errors: ${l.recovery}`, `\t Link ${n}: CRC Errors: ${l.crc}`);
    });
  });
  return out.join('\n') + '\n';
}

export function renderRaw(host: HostSim): RawReadings {
  return {
    gpu: {
      csv: renderGpuCsv(host.gpus, GPU_QUERY_FIELDS), fields: GPU_QUERY_FIELDS,
      pcieErrors: renderPciErrorCounters(host.gpus), nvlink: renderNvlink(host.gpus, host.links),
    },
    mountstats: renderMountstats(host.mounts),
    rdma: { sysfs: renderSysfs(host.ports), ethtool: { [host.nicName]: renderEthtool(host.nic) } },
    errors: [],
  };
}

/** The text path: what an agent reading this host's raw text would send. */
export function textBatch(host: HostSim, prevSnap: HostSnapshot | undefined, timeMs: number, seq: number): { batch: TelemetryBatch; snap: HostSnapshot } {
  const snap = parseSnapshot(renderRaw(host), timeMs);
  return { batch: sampleToProto(deriveSample(prevSnap, snap), { node: host.name, seq }), snap };
}

export class BatchBuilder {
  private prev: Prev | undefined;
  private seq = 0;

  constructor(private readonly host: HostSim) {}

  /** An agent restart: the next batch has no interval and no rates (seq continues: the agent persists nothing, so it restarts at 1). */
  restartAgent(): void {
    this.prev = undefined;
    this.seq = 0;
  }

  get lastSeq(): number {
    return this.seq;
  }

  build(timeMs: number, opts: { gpuCollectorFailed?: boolean } = {}): TelemetryBatch {
    const h = this.host;
    const p = this.prev;
    const sec = p && timeMs > p.timeMs ? (timeMs - p.timeMs) / 1000 : undefined;
    const next: Prev = { timeMs, mounts: new Map(), ports: new Map(), nic: { ...h.nic } };
    const gpus: GpuTelemetry[] = [];
    if (!opts.gpuCollectorFailed) {
      next.gpus = new Map();
      h.gpus.forEach((g, i) => gpus.push(this.gpu(g, h.links[i]!, sec !== undefined ? p?.gpus?.get(g.uuid) : undefined, sec, next.gpus!)));
    }
    const nfsMounts = h.mounts.map((m) => this.mount(m, sec !== undefined ? p?.mounts.get(m.mountpoint) : undefined, sec, next.mounts));
    const rdmaPorts = [...h.ports].sort((a, b) => (a.device < b.device ? -1 : 1)).map((port) => {
      const up = port.up;
      const rateText = up ? port.rateText : '10 Gb/sec (4X SDR)';
      const key = `${port.device}/${port.port}`;
      next.ports.set(key, { counters: { ...port.counters }, hw: { ...port.hwCounters } });
      const pp = sec !== undefined ? p?.ports.get(key) : undefined;
      const out: RdmaPortTelemetry = {
        device: port.device, port: port.port, linkLayer: port.linkLayer, state: up ? 'ACTIVE' : 'DOWN', physState: up ? 'LinkUp' : 'Polling',
        rateText, hcaType: port.hcaType, firmwareVersion: port.firmwareVersion, counters: { ...port.counters }, hwCounters: { ...port.hwCounters },
        rateGbps: Number(/^([\d.]+)/.exec(rateText)![1]),
      };
      if (pp && sec !== undefined) {
        const c = (n: string): number | undefined => perSec(delta(pp.counters[n], port.counters[n]), sec);
        const hw = (names: string[]): number | undefined => {
          const sum = (rec: Record<string, number>): number | undefined => {
            let t: number | undefined;
            for (const n of names) if (rec[n] !== undefined) t = (t ?? 0) + rec[n]!;
            return t;
          };
          return perSec(delta(sum(pp.hw), sum(port.hwCounters)), sec);
        };
        const rx = c('port_rcv_data');
        const tx = c('port_xmit_data');
        out.rates = assignDefined<NonNullable<RdmaPortTelemetry['rates']>>({}, {
          receiveBytesPerSecond: rx === undefined ? undefined : rx * 4, transmitBytesPerSecond: tx === undefined ? undefined : tx * 4,
          receivePacketsPerSecond: c('port_rcv_packets'), transmitPacketsPerSecond: c('port_xmit_packets'),
          symbolErrorsPerSecond: c('symbol_error'), linkDownedPerSecond: c('link_downed'), receiveErrorsPerSecond: c('port_rcv_errors'),
          transmitDiscardsPerSecond: c('port_xmit_discards'), transmitWaitPerSecond: c('port_xmit_wait'),
          outOfSequencePerSecond: hw(['out_of_sequence']), retransmissionsPerSecond: hw(['roce_adp_retrans', 'roce_adp_retrans_to']),
          localAckTimeoutsPerSecond: hw(['local_ack_timeout_err']), congestionNotificationsPerSecond: hw(['roce_slow_restart_cnps', 'np_cnp_sent', 'rp_cnp_handled']),
          linkErrorRecoveryPerSecond: c('link_error_recovery'),
        });
      }
      return out;
    });
    const nic: NicTelemetry = { interface: h.nicName, counters: { ...h.nic } };
    if (p && sec !== undefined) {
      const one = (n: string): number | undefined => perSec(delta(p.nic[n], h.nic[n]), sec);
      const pause = (dir: 'rx' | 'tx'): number | undefined => {
        const prio = one(`${dir}_prio3_pause`);
        const global = one(`${dir}_pause_ctrl_phy`);
        return prio === undefined ? global : (global ?? 0) + prio;
      };
      nic.rates = assignDefined<NonNullable<NicTelemetry['rates']>>({}, {
        receiveBytesPerSecond: one('rx_bytes_phy'), transmitBytesPerSecond: one('tx_bytes_phy'),
        receivePausePerSecond: pause('rx'), transmitPausePerSecond: pause('tx'),
        receiveDiscardsPerSecond: one('rx_discards_phy'), receiveOutOfBufferPerSecond: one('rx_out_of_buffer'),
      });
    }
    this.prev = next;
    this.seq += 1;
    return {
      node: h.name, time: new Date(timeMs), seq: this.seq, gpus, nfsMounts, rdmaPorts, nics: [nic], droppedReports: 0, instanceId: '',
      collectorErrors: opts.gpuCollectorFailed ? [{ collector: 'gpu', message: 'nvidia-smi timed out after 10000 ms' }] : [],
      ...(sec !== undefined ? { interval: { seconds: Math.floor(sec), nanos: Math.round((sec - Math.floor(sec)) * 1e9) } } : {}),
    };
  }

  /**
   * NVLink entries are the bulk of a batch (18 links x 8 GPUs). They are reused from one batch
   * to the next and updated in place: a batch is read within its window and never kept (the
   * detector copies the numbers it needs), and allocating ~300 objects per batch dominated
   * the generator's time.
   */
  private readonly links = new Map<string, GpuTelemetry['nvlinks']>();

  private nvlinks(uuid: string, links: readonly NvlinkState[]): GpuTelemetry['nvlinks'] {
    let out = this.links.get(uuid);
    if (!out || out.length !== links.length) {
      out = links.map((_, n) => ({ link: n, active: true, errors: { replay: 0, recovery: 0, crc: 0 } }));
      this.links.set(uuid, out);
    }
    links.forEach((l, n) => {
      const t = out[n]!;
      t.active = l.active;
      t.errors['replay'] = l.replay;
      t.errors['recovery'] = l.recovery;
      t.errors['crc'] = l.crc;
      if (l.active) t.speedGigabytesPerSecond = GPU.nvlinkGBps;
      else delete t.speedGigabytesPerSecond;
    });
    return out;
  }

  private gpu(g: GpuState, links: readonly NvlinkState[], pg: PrevGpu | undefined, sec: number | undefined, next: Map<string, PrevGpu>): GpuTelemetry {
    // Plain literals, no spreads: V8 turns a spread-then-extend literal into a slow dictionary object.
    const pciBusId = busIdOf(g.busId);
    if (g.lost) {
      next.set(g.uuid, {});
      const lost: GpuTelemetry = { index: g.index, uuid: g.uuid, pciBusId, name: g.name, clockEventReasons: [], nvlinks: [], ecc: {} };
      if (pg && sec !== undefined) lost.rates = { throttleFraction: {} };
      return lost;
    }
    const u = g.throttleUs;
    const throttle: Record<string, number> = {
      sw_power_cap: Math.round(u['sw_power_cap'] ?? 0), sync_boost: Math.round(u['sync_boost'] ?? 0),
      sw_thermal_slowdown: Math.round(u['sw_thermal_slowdown'] ?? 0), hw_thermal_slowdown: Math.round(u['hw_thermal_slowdown'] ?? 0),
      hw_power_brake_slowdown: Math.round(u['hw_power_brake_slowdown'] ?? 0),
    };
    const cur: PrevGpu = { sbe: Math.round(g.eccVolSbe), dbe: Math.round(g.eccVolDbe), pcie: g.pcieReplays, throttle };
    next.set(g.uuid, cur);
    const out: GpuTelemetry = {
      index: g.index, uuid: g.uuid, pciBusId, name: g.name,
      clockEventReasons: clockEventReasonNames(g.reasonsMask),
      nvlinks: this.nvlinks(g.uuid, links),
      utilizationGpuPercent: Math.round(g.util), utilizationMemoryPercent: Math.round(g.memUtil),
      memoryUsedMib: Math.round(g.memoryUsedMiB), memoryTotalMib: Math.round(g.memoryTotalMiB),
      temperatureGpuCelsius: Math.round(g.tempC), temperatureMemoryCelsius: Math.round(g.memTempC),
      powerDrawWatts: Number(g.powerW.toFixed(2)), powerLimitWatts: Number(g.powerLimitW.toFixed(2)),
      smClockMhz: Math.round(g.smClock), memoryClockMhz: Math.round(g.memClock), maxSmClockMhz: Math.round(g.maxSmClock),
      clockEventReasonsMask: g.reasonsMask,
      ecc: { volatileSingleBit: cur.sbe, volatileDoubleBit: cur.dbe, aggregateSingleBit: Math.round(g.eccAggSbe), aggregateDoubleBit: Math.round(g.eccAggDbe) },
      remappedRowsCorrectable: Math.round(g.remapCorrectable), remappedRowsUncorrectable: Math.round(g.remapUncorrectable),
      remappedRowsPending: g.remapPending, remappedRowsFailure: g.remapFailure,
      pcieReplayCount: g.pcieReplays, pcieLinkRecoveryCount: g.pcieRecoveries, pcieLinkGen: 5, pcieLinkWidth: 16, pstate: 'P0',
    };
    if (pg && sec !== undefined) {
      const throttleFraction: Record<string, number> = {};
      for (const t of THROTTLE) {
        const d = perSec(delta(pg.throttle?.[t], throttle[t]), sec);
        if (d !== undefined) throttleFraction[t] = Math.min(1, d / 1e6);
      }
      const rates: NonNullable<GpuTelemetry['rates']> = { throttleFraction };
      const sbe = perSec(delta(pg.sbe, cur.sbe), sec);
      const dbe = perSec(delta(pg.dbe, cur.dbe), sec);
      const pcie = perSec(delta(pg.pcie, cur.pcie), sec);
      if (sbe !== undefined) rates.eccSingleBitPerSecond = sbe;
      if (dbe !== undefined) rates.eccDoubleBitPerSecond = dbe;
      if (pcie !== undefined) rates.pcieReplaysPerSecond = pcie;
      out.rates = rates;
    }
    return out;
  }

  private mount(m: HostMount, pm: PrevMount | undefined, sec: number | undefined, next: Map<string, PrevMount>): NfsMountTelemetry {
    const x = m.xprt;
    const cur: PrevMount = { b4: m.bytes[4]!, b5: m.bytes[5]!, ops: new Map(), sends: x.sends, reqU: x.reqU, bklogU: x.bklogU };
    const ops: NfsMountTelemetry['ops'] = [];
    for (const [name, o] of m.ops) {
      cur.ops.set(name, { ops: o.ops, trans: o.trans, timeouts: o.timeouts, errors: o.errors, queue: o.queue, rtt: o.rtt, exec: o.exec, sent: o.sent, recv: o.recv });
      if (o.ops > 0 || o.trans > 0) {
        ops.push({ op: name, ops: o.ops, transmissions: o.trans, majorTimeouts: o.timeouts, bytesSent: o.sent, bytesReceived: o.recv, queueMs: o.queue, rttMs: o.rtt, executeMs: o.exec, errors: o.errors });
      }
    }
    next.set(m.mountpoint, cur);
    const out: NfsMountTelemetry = {
      device: m.device, mountpoint: m.mountpoint, fstype: m.fstype, statvers: '1.1', ops,
      ageSeconds: m.ageSeconds, serverReadBytes: cur.b4, serverWriteBytes: cur.b5,
      transport: {
        protocol: 'tcp', extra: {}, port: x.port, bindCount: x.bind, connectCount: x.connect, sends: x.sends, receives: x.recvs,
        badXids: x.badXids, inflightSum: x.reqU, backlogSum: x.bklogU, maxSlots: x.maxSlots, sendingSum: x.sendingU, pendingSum: x.pendingU,
      },
    };
    if (pm && sec !== undefined) {
      let nOps = 0, retrans = 0, timeouts = 0, errors = 0, queue = 0, rtt = 0, exec = 0;
      const opRates: NonNullable<NfsMountTelemetry['rates']>['ops'] = [];
      for (const [name, c] of cur.ops) {
        const q = pm.ops.get(name);
        if (!q) continue;
        const dOps = delta(q.ops, c.ops) ?? 0;
        const dTrans = delta(q.trans, c.trans);
        nOps += dOps;
        retrans += Math.max(0, (dTrans ?? 0) - dOps);
        timeouts += delta(q.timeouts, c.timeouts) ?? 0;
        errors += delta(q.errors, c.errors) ?? 0;
        if (dOps > 0) {
          queue += c.queue - q.queue;
          rtt += c.rtt - q.rtt;
          exec += c.exec - q.exec;
          opRates.push(assignDefined<NonNullable<NfsMountTelemetry['rates']>['ops'][number]>({ op: name, opsPerSecond: dOps / sec }, {
              retransmissionsPerSecond: dTrans === undefined ? undefined : Math.max(0, dTrans - dOps) / sec,
              avgQueueMs: ratio(c.queue - q.queue, dOps), avgRttMs: ratio(c.rtt - q.rtt, dOps), avgExecuteMs: ratio(c.exec - q.exec, dOps),
              bytesSentPerSecond: perSec(delta(q.sent, c.sent), sec), bytesReceivedPerSecond: perSec(delta(q.recv, c.recv), sec),
          }));
        }
      }
      const dSends = delta(pm.sends, cur.sends);
      const inflight = ratio(delta(pm.reqU, cur.reqU), dSends);
      out.rates = assignDefined<NonNullable<NfsMountTelemetry['rates']>>({ ops: opRates }, {
          readBytesPerSecond: perSec(delta(pm.b4, cur.b4), sec), writeBytesPerSecond: perSec(delta(pm.b5, cur.b5), sec),
          opsPerSecond: nOps / sec, retransmissionsPerSecond: retrans / sec, majorTimeoutsPerSecond: timeouts / sec, errorsPerSecond: errors / sec,
          avgQueueMs: ratio(queue, nOps), avgRttMs: ratio(rtt, nOps), avgExecuteMs: ratio(exec, nOps),
          backlogQueueLength: ratio(delta(pm.bklogU, cur.bklogU), dSends), inflightRequests: inflight, slotTableUtilization: ratio(inflight, 128),
      });
    }
    return out;
  }
}

/** First difference between two messages (numbers equal within 1e-9 relative), or undefined. */
export function firstDifference(a: unknown, b: unknown, path = ''): string | undefined {
  if (typeof a === 'number' && typeof b === 'number') {
    return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b)) ? undefined : `${path}: ${a} != ${b}`;
  }
  if (a instanceof Date || b instanceof Date) {
    return a instanceof Date && b instanceof Date && a.getTime() === b.getTime() ? undefined : `${path}: dates differ`;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b)) return `${path}: array vs non-array`;
    if (a.length !== b.length) return `${path}: length ${a.length} != ${b.length}`;
    for (let i = 0; i < a.length; i++) {
      const d = firstDifference(a[i], b[i], `${path}[${i}]`);
      if (d) return d;
    }
    return undefined;
  }
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
    const ra = a as Record<string, unknown>;
    const rb = b as Record<string, unknown>;
    const keys = new Set([...Object.keys(ra), ...Object.keys(rb)].filter((k) => ra[k] !== undefined || rb[k] !== undefined));
    for (const k of keys) {
      const d = firstDifference(ra[k], rb[k], path ? `${path}.${k}` : k);
      if (d) return d;
    }
    return undefined;
  }
  return Object.is(a, b) ? undefined : `${path}: ${JSON.stringify(a)} != ${JSON.stringify(b)}`;
}
