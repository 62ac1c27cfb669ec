// One simulated 8-GPU host, advanced one coarse interval at a time. Its state uses the sim
// backend's own shapes (services/node-agent/src/device/sim/render.ts: GpuState, MountState,
// PortState), so the same state renders to the raw text the agent's parsers read; batch.ts
// turns it into TelemetryBatches directly and checks a sample against that text path.
//
// The physics is deliberately simple but load-aware: gauges (utilisation, power, temperature,
// clocks) are sampled at the batch instant like nvidia-smi, counters (ECC, PCIe, NVLink, NFS
// ops and times, RDMA, PFC pauses) integrate over the interval. Numbers are modelling choices
// sized to a B200 node and the 504-GPU report (FACTS.md); faults arrive as effects set by
// cluster.ts before each step.
import type { GpuState, MountState, NfsOpState, PortState } from '../../../services/node-agent/src/device/sim/render.js';
import { Rng } from '../../../services/node-agent/src/device/sim/rng.js';

export const GPU = {
  powerLimitW: 1000, maxSmClock: 1965, memClock: 3996, memoryMiB: 183_359,
  buses: ['18', '2a', '3a', '5d', '9a', 'ab', 'ba', 'db'],
  nvlinks: 18, nvlinkGBps: 50,
};

export interface NvlinkState {
  active: boolean;
  replay: number;
  recovery: number;
  crc: number;
}

export type MountRole = 'datasets' | 'checkpoints' | 'home' | 'scratch';
export type HostMount = MountState & { role: MountRole };

/** What the host is doing during an interval. */
export interface HostLoad {
  mode: 'idle' | 'train' | 'spin' | 'hang-idle';
  /** Fraction of the interval spent writing a checkpoint, and whether the sample instant is in one. */
  ckptFrac: number;
  ckptAtSample: boolean;
  ckptWriteBps: number;
  /** Fraction of the interval reading a checkpoint back after a restart. */
  restartFrac: number;
}

export interface GpuEffect {
  sbe: number;
  pcie: number;
  tempAdd: number;
  /** Cooling failing: the temperature moves from its normal value toward peakC, whatever the load. */
  tempTarget?: { peakC: number; progress: number };
  clockFactor: number;
  brake: number;
  nvLink: number;
  nvCrc: number;
  nvReplay: number;
  nvRecovery: number;
}

export interface HostEffects {
  gpu: GpuEffect[];
  /** Stalled fraction of the interval by NFS target ('*' = every mount of the host). */
  stall: Map<string, number>;
  roce: { symbol: number; flaps: number; retrans: number; oos: number; pause: number; downAtSample: boolean };
}

export function noEffects(gpus: number): HostEffects {
  return {
    gpu: Array.from({ length: gpus }, () => ({ sbe: 0, pcie: 0, tempAdd: 0, clockFactor: 1, brake: 0, nvLink: 0, nvCrc: 0, nvReplay: 0, nvRecovery: 0 })),
    stall: new Map(),
    roce: { symbol: 0, flaps: 0, retrans: 0, oos: 0, pause: 0, downAtSample: false },
  };
}

const NFS4_ORDER = ['READ', 'WRITE', 'COMMIT', 'ACCESS', 'GETATTR', 'LOOKUP'];
const NFS3_ORDER = ['GETATTR', 'LOOKUP', 'ACCESS', 'READ', 'WRITE', 'COMMIT'];
export const PORT_COUNTERS = ['link_downed', 'link_error_recovery', 'port_rcv_data', 'port_rcv_errors', 'port_rcv_packets',
  'port_xmit_data', 'port_xmit_discards', 'port_xmit_packets', 'port_xmit_wait', 'symbol_error'];
export const HW_COUNTERS = ['local_ack_timeout_err', 'out_of_sequence', 'packet_seq_err', 'roce_adp_retrans', 'roce_adp_retrans_to', 'roce_slow_restart_cnps'];
const NIC_COUNTERS = ['rx_bytes_phy', 'tx_bytes_phy', 'rx_packets_phy', 'tx_packets_phy', 'rx_discards_phy', 'rx_out_of_buffer',
  'rx_pause_ctrl_phy', 'tx_pause_ctrl_phy', 'rx_prio3_pause', 'tx_prio3_pause'];
const THROTTLE = ['sw_power_cap', 'sync_boost', 'sw_thermal_slowdown', 'hw_thermal_slowdown', 'hw_power_brake_slowdown'];
const MIB = 1_048_576;

/** Poisson draw; normal approximation for large means. Always a non-negative integer. */
export function poisson(rng: Rng, mean: number): number {
  if (!(mean > 0)) return 0;
  if (mean > 30) return Math.max(0, Math.round(rng.gauss(mean, Math.sqrt(mean))));
  const l = Math.exp(-mean);
  let k = 0;
  let p = rng.next();
  while (p > l) {
    k++;
    p *= rng.next();
  }
  return k;
}

const clamp = (x: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, x));

export interface HostInit {
  name: string;
  index: number;
  gpus: number;
  model: string;
  seed: number;
  mounts: Array<{ device: string; mountpoint: string; fstype: 'nfs' | 'nfs4'; role: MountRole }>;
  nodeTempOffset: number;
  gpuTempSd: number;
}

export class HostSim {
  readonly name: string;
  readonly index: number;
  readonly rng: Rng;
  gpus: GpuState[] = [];
  links: NvlinkState[][] = [];
  readonly mounts: HostMount[] = [];
  readonly ports: PortState[] = [];
  readonly nic: Record<string, number>;
  readonly nicName = 'eth2';
  readonly tempOffset: number[];
  steadySbe: number[];
  steadyPcie: number[];
  private uuidSerial = 0;

  constructor(init: HostInit) {
    this.name = init.name;
    this.index = init.index;
    this.rng = new Rng(init.seed);
    for (let i = 0; i < init.gpus; i++) {
      this.gpus.push(this.freshGpu(i, init.model));
      this.links.push(this.freshLinks());
    }
    this.tempOffset = this.gpus.map(() => init.nodeTempOffset + this.rng.gauss(0, init.gpuTempSd));
    this.steadySbe = this.gpus.map(() => 0);
    this.steadyPcie = this.gpus.map(() => 0);
    for (const m of init.mounts) {
      const order = m.fstype === 'nfs4' ? NFS4_ORDER : NFS3_ORDER;
      const ops = new Map<string, NfsOpState>(order.map((n) => [n, { ops: 0, trans: 0, timeouts: 0, sent: 0, recv: 0, queue: 0, rtt: 0, exec: 0, errors: 0 }]));
      this.mounts.push({
        device: m.device, mountpoint: m.mountpoint, fstype: m.fstype, role: m.role, ageSeconds: this.rng.int(3600, 86400),
        events: new Array(27).fill(0), bytes: new Array(8).fill(0),
        xprt: { port: this.rng.int(700, 1000), bind: 0, connect: 1, connectTime: 0, idle: 0, sends: 0, recvs: 0, badXids: 0, reqU: 0, bklogU: 0, maxSlots: 0, sendingU: 0, pendingU: 0 },
        ops,
      });
    }
    for (const [name, linkLayer, rateText] of [['mlx5_0', 'InfiniBand', '400 Gb/sec (4X NDR)'], ['mlx5_1', 'Ethernet', '200 Gb/sec (2X NDR)']] as const) {
      const counters = Object.fromEntries(PORT_COUNTERS.map((c) => [c, 0]));
      counters['port_rcv_data'] = this.rng.int(1e11, 1e12);
      counters['port_xmit_data'] = this.rng.int(1e11, 1e12);
      this.ports.push({
        device: name, port: 1, linkLayer, rateText, hcaType: 'MT4129', firmwareVersion: '28.41.1000', up: true,
        counters, hwCounters: Object.fromEntries(HW_COUNTERS.map((c) => [c, 0])),
      });
    }
    this.nic = Object.fromEntries(NIC_COUNTERS.map((c) => [c, 0]));
  }

  private freshGpu(index: number, model: string): GpuState {
    const r = this.rng;
    const bus = GPU.buses[index] ?? (0x18 + index * 0x10).toString(16);
    return {
      index, uuid: `GPU-${r.hex(8)}-${r.hex(4)}-${r.hex(4)}-${r.hex(4)}-${r.hex(12)}`, busId: `00000000:${bus.padStart(2, '0')}:00.0`,
      name: model, memoryTotalMiB: GPU.memoryMiB, memoryUsedMiB: 0, util: 0, memUtil: 0, tempC: 35, memTempC: 40, powerW: 140,
      powerLimitW: GPU.powerLimitW, smClock: 345, memClock: GPU.memClock, maxSmClock: GPU.maxSmClock, reasonsMask: 1,
      throttleUs: Object.fromEntries(THROTTLE.map((t) => [t, 0])), eccVolSbe: 0, eccVolDbe: 0, eccAggSbe: r.int(0, 3), eccAggDbe: 0,
      remapCorrectable: 0, remapUncorrectable: 0, remapPending: false, remapFailure: false, pcieReplays: r.int(0, 12), pcieRecoveries: 0, lost: false,
    };
  }

  private freshLinks(): NvlinkState[] {
    return Array.from({ length: GPU.nvlinks }, () => ({ active: true, replay: 0, recovery: 0, crc: 0 }));
  }

  /** A repaired node: the given GPUs replaced (new UUID, clean counters), every GPU reset. */
  repair(replace: readonly number[]): void {
    this.uuidSerial++;
    for (let i = 0; i < this.gpus.length; i++) {
      const g = this.gpus[i]!;
      if (replace.includes(i)) {
        this.gpus[i] = this.freshGpu(i, g.name);
        this.links[i] = this.freshLinks();
      } else {
        // A reset clears volatile ECC counts and pending remaps; aggregates stay.
        Object.assign(g, { eccVolSbe: 0, eccVolDbe: 0, remapPending: false, lost: false });
        for (const l of this.links[i]!) l.active = true;
      }
    }
    for (const p of this.ports) p.up = true;
  }

  step(sec: number, dayFraction: number, load: HostLoad, fx: HostEffects): void {
    for (let i = 0; i < this.gpus.length; i++) this.stepGpu(i, sec, dayFraction, load, fx.gpu[i]!);
    for (const m of this.mounts) this.stepMount(m, sec, load, fx.stall.get(m.device) ?? fx.stall.get('*') ?? 0);
    this.stepPorts(sec, load, fx);
  }

  private stepGpu(i: number, sec: number, dayFraction: number, load: HostLoad, fx: GpuEffect): void {
    const g = this.gpus[i]!;
    const r = this.rng;
    if (g.lost) return;
    const limit = g.powerLimitW;
    let util: number;
    let power: number;
    const training = load.mode === 'train';
    if (training && !load.ckptAtSample) {
      util = clamp(r.gauss(96.5, 1.5), 0, 100);
      power = limit * (0.3 + 0.58 * util / 100) * Math.pow(fx.clockFactor, 1.5) + r.gauss(0, 15);
    } else if (training) {
      util = clamp(r.gauss(10, 5), 0, 100);
      power = limit * (0.18 + 0.3 * util / 100) + r.gauss(0, 10);
    } else if (load.mode === 'spin') {
      util = 100;
      power = r.gauss(380, 15);
    } else {
      util = 0;
      power = r.gauss(load.mode === 'hang-idle' ? 165 : 140, 8);
    }
    power = clamp(power, 60, limit);
    const diurnal = Math.sin(dayFraction * 2 * Math.PI);
    const normal = 28 + 0.048 * power + this.tempOffset[i]! + diurnal + fx.tempAdd;
    const target = fx.tempTarget ? normal + (fx.tempTarget.peakC - normal) * fx.tempTarget.progress : normal;
    g.tempC = target + r.gauss(0, 0.6);
    g.memTempC = g.tempC + 5 + r.gauss(0, 0.4);
    g.util = util;
    g.memUtil = util * 0.4;
    g.powerW = power;
    g.memoryUsedMiB = load.mode === 'idle' ? 512 : 0.86 * g.memoryTotalMiB;
    let clock = util >= 50 ? GPU.maxSmClock * clamp(r.gauss(0.955, 0.01), 0.9, 1) : 345;
    let mask = util < 5 ? 0x1 : 0;
    const swThermal = clamp((g.tempC - 85) / 5, 0, 1);
    const hwThermal = clamp((g.tempC - 89) / 4, 0, 1);
    if (g.tempC >= 87) {
      mask |= 0x20;
      clock *= 0.85;
    }
    if (g.tempC >= 90) {
      mask |= 0x40 | 0x8;
      clock *= 0.65;
    }
    if (fx.brake > 0) mask |= 0x80;
    clock *= fx.clockFactor;
    if (power >= 0.985 * limit) mask |= 0x4;
    g.smClock = Math.round(Math.min(GPU.maxSmClock, clock));
    g.reasonsMask = mask;
    const us = (frac: number): number => Math.round(clamp(frac, 0, 1) * sec * 1e6);
    g.throttleUs['sw_power_cap']! += training ? us(r.gauss(0.03, 0.015)) : 0;
    g.throttleUs['sw_thermal_slowdown']! += us(swThermal);
    g.throttleUs['hw_thermal_slowdown']! += us(hwThermal);
    g.throttleUs['hw_power_brake_slowdown']! += us(fx.brake);

    const sbe = poisson(r, (this.steadySbe[i]! + fx.sbe) * sec);
    g.eccVolSbe += sbe;
    g.eccAggSbe += sbe;
    g.pcieReplays += poisson(r, (this.steadyPcie[i]! + fx.pcie) * sec);
    if (fx.nvCrc + fx.nvReplay + fx.nvRecovery > 0) {
      const l = this.links[i]![fx.nvLink % GPU.nvlinks]!;
      l.crc += poisson(r, fx.nvCrc * sec);
      l.replay += poisson(r, fx.nvReplay * sec);
      l.recovery += poisson(r, fx.nvRecovery * sec);
    }
  }

  /** Adds one of each kind of error the agent's readers count, for noise blips and XIDs. */
  eccEvent(i: number, kind: 'sbe-burst' | 'dbe', n = 1): void {
    const g = this.gpus[i]!;
    if (kind === 'sbe-burst') {
      g.eccVolSbe += n;
      g.eccAggSbe += n;
    } else {
      g.eccVolDbe += n;
      g.eccAggDbe += n;
    }
  }

  private stepMount(m: HostMount, sec: number, load: HostLoad, stallFrac: number): void {
    const r = this.rng;
    const busy = load.mode !== 'idle';
    const train = load.mode === 'train';
    const stall = clamp(stallFrac, 0, 1);
    const ckpt = m.role === 'checkpoints' && busy ? clamp(load.ckptFrac, 0, 1 - stall) : 0;
    const restart = m.role === 'checkpoints' && busy ? clamp(load.restartFrac, 0, 1 - stall - ckpt) : 0;
    const normal = Math.max(0, 1 - stall - ckpt - restart);
    const readBps = m.role === 'datasets' ? (train ? r.gauss(300e6, 40e6) : busy ? 5e6 : 0.2e6) : m.role === 'home' ? r.gauss(1e6, 2e5) : m.role === 'scratch' ? r.gauss(10e6, 2e6) : 0.5e6;
    const writeBps = m.role === 'scratch' ? r.gauss(20e6, 4e6) : m.role === 'home' ? r.gauss(0.5e6, 1e5) : 0.2e6;
    const meta = m.role === 'home' ? 100 : m.role === 'datasets' ? 30 : 10;

    type Part = { reads: number; writes: number; metas: number; rtt: number; queue: number; inflight: number; backlog: number; retrans: number; timeouts: number };
    const parts: Part[] = [];
    const t = sec * normal;
    if (t > 0) {
      parts.push({ reads: readBps * t / MIB, writes: writeBps * t / MIB, metas: meta * t, rtt: Math.max(0.2, r.gauss(0.7, 0.1)), queue: 0.05, inflight: clamp(r.gauss(3, 1), 0.5, 20), backlog: 0, retrans: poisson(r, 0.0005 * t), timeouts: 0 });
    }
    if (ckpt > 0) {
      // The 504-GPU report: the 128-slot table saturates and 93.1% of WRITE latency is client queueing.
      const rtt = Math.max(1, r.gauss(6, 1.5));
      const tc = sec * ckpt;
      parts.push({ reads: 0, writes: load.ckptWriteBps * tc / MIB, metas: meta * tc, rtt, queue: rtt * 13.5, inflight: clamp(r.gauss(126, 2), 100, 128), backlog: clamp(r.gauss(250, 60), 20, 1000), retrans: poisson(r, 0.002 * tc), timeouts: 0 });
    }
    if (restart > 0) {
      const tr = sec * restart;
      parts.push({ reads: 3.1e9 * tr / MIB, writes: 0, metas: meta * tr, rtt: Math.max(1, r.gauss(4, 1)), queue: 20, inflight: clamp(r.gauss(120, 5), 60, 128), backlog: clamp(r.gauss(80, 20), 0, 500), retrans: poisson(r, 0.001 * tr), timeouts: 0 });
    }
    if (stall > 0) {
      // The server stops answering: ~2% of requests complete, each after seconds; the rest
      // time out (timeo=60 s) and are retransmitted; after retrans=2 a major timeout.
      const ts = sec * stall;
      parts.push({ reads: readBps * ts / MIB * 0.02, writes: Math.max(writeBps, busy ? 50e6 : 0) * ts / MIB * 0.02, metas: meta * ts * 0.02, rtt: r.between(3000, 20000), queue: r.between(5000, 30000), inflight: 128, backlog: clamp(r.gauss(900, 200), 300, 3000), retrans: poisson(r, 2.1 * ts), timeouts: poisson(r, 0.45 * ts) });
    }

    let sends = 0;
    let inflightW = 0;
    let backlogW = 0;
    let maxIn = m.xprt.maxSlots;
    const op = (name: string, n: number, sentPer: number, recvPer: number, p: Part, retrans: number, timeouts: number): void => {
      const o = m.ops.get(name);
      if (!o) return;
      const k = Math.round(n);
      o.ops += k;
      o.trans += k + retrans;
      o.timeouts += timeouts;
      o.sent += Math.round(k * sentPer);
      o.recv += Math.round(k * recvPer);
      o.queue += Math.round(k * p.queue);
      o.rtt += Math.round(k * p.rtt);
      o.exec += Math.round(k * (p.queue + p.rtt + 0.05));
      sends += k + retrans;
    };
    for (const p of parts) {
      const before = sends;
      const rw = m.role === 'checkpoints' || m.role === 'scratch' ? 'WRITE' : 'READ';
      op('READ', p.reads, 220, MIB, p, rw === 'READ' ? p.retrans : 0, rw === 'READ' ? p.timeouts : 0);
      op('WRITE', p.writes, MIB, 220, p, rw === 'WRITE' ? p.retrans : 0, rw === 'WRITE' ? p.timeouts : 0);
      op('COMMIT', p.writes / 64, 200, 200, p, 0, 0);
      op('GETATTR', p.metas * 0.6, 180, 260, p, 0, 0);
      op('LOOKUP', p.metas * 0.2, 200, 300, p, 0, 0);
      op('ACCESS', p.metas * 0.2, 180, 200, p, 0, 0);
      const s = sends - before;
      inflightW += s * p.inflight;
      backlogW += s * p.backlog;
      maxIn = Math.max(maxIn, Math.ceil(p.inflight));
      m.bytes[0]! += Math.round(p.reads * MIB);
      m.bytes[1]! += Math.round(p.writes * MIB);
      m.bytes[4]! += Math.round(p.reads * MIB);
      m.bytes[5]! += Math.round(p.writes * MIB);
      m.bytes[6]! += Math.round(p.reads * 256);
      m.bytes[7]! += Math.round(p.writes * 256);
    }
    const x = m.xprt;
    x.sends += sends;
    x.recvs += sends;
    x.reqU += Math.round(inflightW);
    x.bklogU += Math.round(backlogW);
    x.maxSlots = Math.min(128, maxIn);
    x.sendingU += sends;
    x.pendingU += Math.round(backlogW / 10);
    m.ageSeconds += sec;
  }

  private stepPorts(sec: number, load: HostLoad, fx: HostEffects): void {
    const r = this.rng;
    const busy = load.mode === 'train' ? 1 : load.mode === 'idle' ? 0.01 : 0.05;
    for (const p of this.ports) {
      const roce = p.linkLayer === 'Ethernet';
      const c = p.counters;
      const h = p.hwCounters;
      // Compute traffic on InfiniBand; storage (NFS over RoCE) on the Ethernet port: a few %
      // of line rate even during checkpoints (the 504-GPU report: 1.4-10.4%).
      const bps = roce ? (0.5e9 + 2e9 * load.ckptFrac) * (load.mode === 'idle' ? 0.05 : 1) : 30e9 * busy * (load.ckptFrac > 0 ? 1 - 0.9 * load.ckptFrac : 1);
      const bytes = Math.max(0, r.gauss(bps * sec, bps * sec * 0.05));
      const rx = Math.round(bytes * r.between(0.97, 1.03));
      c['port_rcv_data']! += Math.round(rx / 4);
      c['port_xmit_data']! += Math.round(bytes / 4);
      c['port_rcv_packets']! += Math.round(rx / 4096);
      c['port_xmit_packets']! += Math.round(bytes / 4096);
      c['port_xmit_wait']! += poisson(r, bytes / 1e7);
      h['roce_slow_restart_cnps']! += roce ? poisson(r, 2 * sec * busy) : 0;
      h['out_of_sequence']! += poisson(r, 0.01 * sec * busy);
      h['roce_adp_retrans']! += roce ? poisson(r, 0.005 * sec * busy) : 0;
      if (roce) {
        const f = fx.roce;
        c['symbol_error']! += poisson(r, f.symbol * sec);
        c['port_rcv_errors']! += poisson(r, f.symbol * sec / 4);
        c['link_downed']! += f.flaps;
        c['link_error_recovery']! += f.flaps;
        h['out_of_sequence']! += poisson(r, f.oos * sec);
        h['roce_adp_retrans']! += poisson(r, f.retrans * sec);
        h['roce_adp_retrans_to']! += poisson(r, f.retrans * sec / 10);
        h['local_ack_timeout_err']! += poisson(r, f.retrans * sec / 20);
        h['packet_seq_err']! += poisson(r, f.oos * sec / 10);
        p.up = !f.downAtSample;
        const n = this.nic;
        n['rx_bytes_phy']! += rx;
        n['tx_bytes_phy']! += Math.round(bytes);
        n['rx_packets_phy']! += Math.round(rx / 4096);
        n['tx_packets_phy']! += Math.round(bytes / 4096);
        // PFC pauses: heavy-tailed with load, more during checkpoint incast.
        const pauseRate = (load.mode === 'idle' ? 2 : 60 + 300 * load.ckptFrac) * Math.exp(r.gauss(0, 0.35)) + f.pause;
        n['rx_prio3_pause']! += poisson(r, pauseRate * sec);
        n['tx_prio3_pause']! += poisson(r, pauseRate * sec * 0.5);
        n['rx_discards_phy']! += poisson(r, f.pause > 0 ? 20 * sec : 0);
        n['rx_out_of_buffer']! += poisson(r, 0.001 * sec);
      }
    }
  }
}
