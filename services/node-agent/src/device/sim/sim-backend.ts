// A simulated GPU host: the DeviceBackend for machines without GPUs (CI, laptops, large
// simulated clusters). State advances in 1-second ticks of simulated time under a
// training-like load (steady GPU and fabric use, periodic checkpoint write bursts), and
// faults from a scenario or inject() bend it. Deterministic for a given seed: ticks are
// computed in order whatever the read pattern, each drawing from one seeded PRNG.
import type { DeviceBackend, GpuInventoryEntry, GpuMetricsText, KernelBoot, KernelLogReadOptions, RdmaReadings } from '../types.js';
import { GPU_INVENTORY_FIELDS, GPU_QUERY_FIELDS, parseGpuInventoryCsv } from '../../collectors/gpu/query-csv.js';
import { followKmsg } from '../../collectors/xid/reader.js';
import type { SimKernelRing } from './kernel-ring.js';
import { defaultHostModel, type HostModel, type SimMount } from './host-model.js';
import {
  NFS3_OPS, NFS4_OPS, renderEthtool, renderGpuCsv, renderKmsg, renderMountstats, renderPciErrorCounters, renderSysfs,
  type GpuState, type MountState, type NfsOpState, type PortState,
} from './render.js';
import { Rng } from './rng.js';
import type { Fault, ScheduledFault } from './scenario.js';

export interface SimOptions {
  model?: Partial<HostModel>;
  seed?: number;
  scenario?: readonly ScheduledFault[];
  /**
   * 'manual' (default): time moves only with advance(); 'wall': every read first advances
   * to the wall-clock time elapsed since the backend was created (for a running agent).
   */
  clock?: 'manual' | 'wall';
  /** Wall-clock epoch (ms) of simulated time 0. */
  startMs?: number;
  /**
   * The host's kernel on disk (a running agent's): kernel log lines go to its kmsg file and
   * are read back through the /dev/kmsg reader, and GPUs lost this boot stay lost across agent
   * restarts. Without one the kernel log is kept in memory (tests, drainKernelLog).
   */
  kernel?: SimKernelRing;
}

interface ActiveFault extends Fault {
  start: number;
  end: number;
  fired: Set<string>;
}

/** The driver's kernel message for an Xid on the GPU at `busId` (`00000000:5d:00.0`). */
export function xidKernelMessage(index: number, busId: string, xid: number, params?: Fault['params']): string {
  const bus = busId.replace(/^0000/, '').replace(/\.\d$/, '');
  const pid = params?.['pid'] ?? 4242 + index;
  const name = params?.['name'] ?? 'python3';
  const who = xid === 79 || xid === 48 || xid === 63 || xid === 64 ? '' : `pid=${pid}, name=${name}, `;
  const text = String(params?.['message'] ?? XID_TEXT[xid] ?? 'simulated Xid');
  return `NVRM: Xid (PCI:${bus}): ${xid}, ${who}${text}`;
}

/** Kernel-log message text per Xid, as the driver words it (shared with the detection evaluation). */
export const XID_TEXT: Record<number, string> = {
  13: 'Graphics SM Warp Exception on (GPC 1, TPC 0, SM 0): Illegal Instruction Encoding',
  31: 'Ch 0000003a, intr 10000000. MMU Fault: ENGINE GRAPHICS GPCCLIENT_T1_3 faulted @ 0x17_00592000. Fault is of type FAULT_PDE ACCESS_TYPE_READ',
  43: 'Ch 00000010',
  48: 'An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at partition 6, subpartition 0.',
  63: 'Row Remapper: New row marked for remapping, reset gpu to activate.',
  64: 'Row Remapper: Failed to remap row, reset gpu to activate.',
  74: 'NVLink: fatal error detected on link 3(0x0, 0x0, 0x10000, 0x0, 0x0, 0x0, 0x0)',
  79: 'GPU has fallen off the bus.',
  94: 'Contained: SM (0x1). RST: No, D-RST: No',
  95: 'Uncontained: FBHUB. RST: Yes, D-RST: No',
  119: 'Timeout after 6s of waiting for RPC response from GPU0 GSP! Expected function 76 (GSP_RM_CONTROL) (0x20803032 0x58c).',
  145: 'Fatal RLW error on link 5 (0x00000004)',
  149: 'Fatal NETIR link event on link 2 (0x00000001)',
};

const PORT_COUNTERS = ['VL15_dropped', 'excessive_buffer_overrun_errors', 'link_downed', 'link_error_recovery',
  'local_link_integrity_errors', 'multicast_rcv_packets', 'multicast_xmit_packets', 'port_rcv_constraint_errors', 'port_rcv_data',
  'port_rcv_errors', 'port_rcv_packets', 'port_rcv_remote_physical_errors', 'port_rcv_switch_relay_errors',
  'port_xmit_constraint_errors', 'port_xmit_data', 'port_xmit_discards', 'port_xmit_packets', 'port_xmit_wait', 'symbol_error',
  'unicast_rcv_packets', 'unicast_xmit_packets'];
const HW_COUNTERS = ['duplicate_request', 'implied_nak_seq_err', 'lifespan', 'local_ack_timeout_err', 'out_of_buffer',
  'out_of_sequence', 'packet_seq_err', 'req_cqe_error', 'req_cqe_flush_error', 'req_remote_access_errors',
  'req_remote_invalid_request', 'resp_cqe_error', 'resp_cqe_flush_error', 'resp_local_length_error', 'resp_remote_access_errors',
  'rnr_nak_retry_err', 'roce_adp_retrans', 'roce_adp_retrans_to', 'roce_slow_restart', 'roce_slow_restart_cnps',
  'roce_slow_restart_trans', 'rx_atomic_requests', 'rx_dct_connect', 'rx_icrc_encapsulated', 'rx_read_requests', 'rx_write_requests'];
const THROTTLE = ['sw_power_cap', 'sync_boost', 'sw_thermal_slowdown', 'hw_thermal_slowdown', 'hw_power_brake_slowdown'];
const MTU = 4096;

export class SimulatedBackend implements DeviceBackend {
  readonly kind = 'simulated';
  readonly model: HostModel;
  private readonly rng: Rng;
  private readonly gpus: GpuState[] = [];
  private readonly mounts: Array<MountState & { role: SimMount['role']; backlog: number; rttMs: number }> = [];
  private readonly ports: PortState[] = [];
  private readonly nics = new Map<string, Record<string, number>>();
  private readonly pending: ScheduledFault[];
  private readonly active: ActiveFault[] = [];
  private readonly log: string[] = [];
  private readonly waiters: Array<() => void> = [];
  private tick = 0;
  private kmsgSeq = 1000;
  private readonly startMs: number;

  constructor(private readonly options: SimOptions = {}) {
    this.model = defaultHostModel(options.model);
    this.rng = new Rng(options.seed ?? 1);
    this.pending = [...(options.scenario ?? [])].sort((a, b) => a.at - b.at);
    this.startMs = options.startMs ?? Date.now();
    this.init();
    const kernel = options.kernel;
    if (kernel) {
      kernel.boot();
      kernel.writeHost(this.gpus.map((g) => ({ index: g.index, pciBusId: g.busId, uuid: g.uuid })));
      for (const i of kernel.host()?.lost ?? []) {
        const g = this.gpus[i];
        if (g) g.lost = true;
      }
    }
  }

  // ---- time -------------------------------------------------------------------------

  /** Simulated seconds since start. */
  get seconds(): number {
    return this.tick;
  }

  /** Wall-clock ms of the current simulated time (use as TelemetryCollector's `now`). */
  nowMs(): number {
    return this.startMs + this.tick * 1000;
  }

  advance(seconds: number): void {
    this.advanceTo(this.tick + seconds);
  }

  advanceTo(seconds: number): void {
    const target = Math.floor(seconds);
    while (this.tick < target) {
      this.tick++;
      this.step();
    }
  }

  private sync(): void {
    if (this.options.clock === 'wall') this.advanceTo((Date.now() - this.startMs) / 1000);
  }

  // ---- faults -----------------------------------------------------------------------

  /** Starts a fault now (or at `at` seconds when given in the future). */
  inject(fault: Fault & { at?: number }): void {
    const at = fault.at ?? this.tick;
    if (at > this.tick) {
      this.pending.push({ ...fault, at });
      this.pending.sort((a, b) => a.at - b.at);
      return;
    }
    this.activate({ ...fault, at });
  }

  private activate(f: ScheduledFault): void {
    const a: ActiveFault = { ...f, start: this.tick, end: this.tick + (f.duration ?? 60), fired: new Set() };
    this.active.push(a);
    if (f.fault === 'xid') {
      const xid = Number(f.params?.['xid'] ?? 13);
      const g = this.gpuOf(f);
      // `sim inject` writes the record into the kernel log itself (the agent may be down).
      if (f.params?.['logged'] !== true) this.emitXid(g, xid, f.params);
      if (xid === 79) this.loseGpu(g);
    }
    if (f.fault === 'gpu-lost') this.loseGpu(this.gpuOf(f));
    if (f.fault === 'link-flap') {
      const p = this.portOf(f);
      p.up = false;
      p.counters['link_downed']! += 1;
    }
  }

  /** Fallen off the bus: gone from the inventory, "[GPU is lost]" in queries, until a reboot. */
  private loseGpu(g: GpuState): void {
    g.lost = true;
    this.options.kernel?.markLost(g.index);
  }

  private gpuOf(f: Fault): GpuState {
    return this.gpus[Math.min(Math.max(0, f.gpu ?? 0), this.gpus.length - 1)]!;
  }

  private portOf(f: Fault): PortState {
    return this.ports.find((p) => p.device === f.device && p.port === (f.port ?? 1)) ?? this.ports[0]!;
  }

  private faults(kind: Fault['fault']): ActiveFault[] {
    return this.active.filter((a) => a.fault === kind);
  }

  private emitXid(g: GpuState, xid: number, params?: Fault['params']): void {
    this.kernel(3, xidKernelMessage(g.index, g.busId, xid, params));
  }

  private kernel(priority: number, message: string): void {
    if (this.options.kernel) this.options.kernel.append(priority, message);
    else this.log.push(renderKmsg(priority, this.kmsgSeq++, this.model.uptimeSeconds + this.tick, message));
    for (const w of this.waiters.splice(0)) w();
  }

  // ---- model ------------------------------------------------------------------------

  private init(): void {
    const m = this.model;
    for (let i = 0; i < m.gpuCount; i++) {
      const bus = m.gpuBuses[i] ?? (0x18 + i * 0x10).toString(16);
      this.gpus.push({
        index: i,
        uuid: `GPU-${this.rng.hex(8)}-${this.rng.hex(4)}-${this.rng.hex(4)}-${this.rng.hex(4)}-${this.rng.hex(12)}`,
        busId: `00000000:${bus.padStart(2, '0')}:00.0`,
        name: m.gpuModel, memoryTotalMiB: m.gpuMemoryMiB, memoryUsedMiB: 0.9 * m.gpuMemoryMiB,
        util: 0, memUtil: 0, tempC: 38, memTempC: 40, powerW: 75, powerLimitW: 700, smClock: 1980, memClock: 2619, maxSmClock: 1980,
        reasonsMask: 0, throttleUs: Object.fromEntries(THROTTLE.map((t) => [t, 0])),
        eccVolSbe: 0, eccVolDbe: 0, eccAggSbe: this.rng.int(0, 3), eccAggDbe: 0,
        remapCorrectable: 0, remapUncorrectable: 0, remapPending: false, remapFailure: false,
        pcieReplays: this.rng.int(0, 12), pcieRecoveries: 0, lost: false,
      });
    }
    for (const mt of m.mounts) {
      const names = mt.fstype === 'nfs4' ? NFS4_OPS : NFS3_OPS;
      const ops = new Map<string, NfsOpState>(names.map((n) => [n, { ops: 0, trans: 0, timeouts: 0, sent: 0, recv: 0, queue: 0, rtt: 0, exec: 0, errors: 0 }]));
      this.mounts.push({
        device: mt.device, mountpoint: mt.mountpoint, fstype: mt.fstype, role: mt.role, ageSeconds: this.rng.int(3600, 86400),
        events: new Array(27).fill(0), bytes: new Array(8).fill(0),
        xprt: { port: this.rng.int(700, 1000), bind: 0, connect: 1, connectTime: 0, idle: 0, sends: 0, recvs: 0, badXids: 0, reqU: 0, bklogU: 0, maxSlots: 0, sendingU: 0, pendingU: 0 },
        ops, backlog: 0, rttMs: 0.6,
      });
    }
    for (const h of m.hcas) {
      const counters = Object.fromEntries(PORT_COUNTERS.map((c) => [c, 0]));
      counters['port_rcv_data'] = this.rng.int(1e12, 1e14);
      counters['port_xmit_data'] = this.rng.int(1e12, 1e14);
      counters['port_rcv_packets'] = Math.round(counters['port_rcv_data']! / 1000);
      counters['port_xmit_packets'] = Math.round(counters['port_xmit_data']! / 1000);
      this.ports.push({
        device: h.name, port: 1, linkLayer: h.linkLayer, rateText: h.rateText, hcaType: h.hcaType ?? 'MT4129',
        firmwareVersion: h.firmwareVersion ?? '28.41.1000', up: true,
        counters, hwCounters: Object.fromEntries(HW_COUNTERS.map((c) => [c, 0])),
      });
      if (h.netdev) {
        this.nics.set(h.netdev, {
          rx_packets: 0, rx_bytes: 0, tx_packets: 0, tx_bytes: 0, rx_bytes_phy: 0, tx_bytes_phy: 0, rx_packets_phy: 0,
          tx_packets_phy: 0, rx_discards_phy: 0, rx_out_of_buffer: 0, rx_pause_ctrl_phy: 0, tx_pause_ctrl_phy: 0,
          rx_prio3_bytes: 0, rx_prio3_packets: 0, rx_prio3_pause: 0, tx_prio3_pause: 0,
        });
      }
    }
  }

  private inCheckpoint(): boolean {
    const m = this.model;
    return m.checkpointEverySeconds > 0 && this.tick % m.checkpointEverySeconds >= m.checkpointEverySeconds - m.checkpointSeconds;
  }

  /** One simulated second. */
  private step(): void {
    while (this.pending.length > 0 && this.pending[0]!.at <= this.tick) this.activate(this.pending.shift()!);
    const ckpt = this.inCheckpoint();
    for (const g of this.gpus) this.stepGpu(g, ckpt);
    for (const mt of this.mounts) this.stepMount(mt, ckpt);
    for (const p of this.ports) this.stepPort(p, ckpt);
    for (let i = this.active.length - 1; i >= 0; i--) {
      const a = this.active[i]!;
      // An Xid is one log line; faults without a duration last until the end.
      const finished = a.fault === 'xid' || a.fault === 'gpu-lost' || (a.duration !== undefined && this.tick >= a.end);
      if (!finished) continue;
      if (a.fault === 'link-flap') {
        const p = this.portOf(a);
        p.up = true;
        p.counters['link_error_recovery']! += 1;
      }
      this.active.splice(i, 1);
    }
  }

  private stepGpu(g: GpuState, ckpt: boolean): void {
    const r = this.rng;
    if (g.lost) return;
    const straggle = this.faults('straggler').find((f) => (f.gpu ?? 0) === g.index);
    const factor = straggle ? Number(straggle.params?.['factor'] ?? 0.7) : 1;
    // Training: ~97% busy, all-reduce and data-loader gaps, idle-ish while checkpointing.
    const target = ckpt ? r.between(5, 20) : Math.min(100, r.gauss(96, 2)) * factor;
    g.util = Math.max(0, Math.min(100, target));
    g.memUtil = g.util * 0.35;
    g.powerW = Math.min(g.powerLimitW, 90 + 6.1 * g.util + r.gauss(0, 8));
    const thermal = this.faults('thermal').find((f) => (f.gpu ?? 0) === g.index);
    let ambient = 30 + g.powerW * 0.06;
    if (thermal) {
      const peak = Number(thermal.params?.['peakC'] ?? 94);
      const span = Math.max(1, thermal.end - thermal.start);
      ambient += ((this.tick - thermal.start) / span) * (peak - ambient) * 1.6;
    }
    g.tempC += (ambient - g.tempC) * 0.3 + r.gauss(0, 0.3);
    g.memTempC = g.tempC + 4;
    let mask = g.util < 5 ? 0x1 : 0;
    if (g.tempC >= 87) mask |= 0x20;
    if (g.tempC >= 90) mask |= 0x40 | 0x8;
    if (g.powerW >= g.powerLimitW - 1) mask |= 0x4;
    g.reasonsMask = mask;
    if (mask & 0x20) g.throttleUs['sw_thermal_slowdown']! += 1e6;
    if (mask & 0x40) g.throttleUs['hw_thermal_slowdown']! += 1e6;
    if (mask & 0x4) g.throttleUs['sw_power_cap']! += 1e6;
    const thermalClock = mask & 0x40 ? 0.55 : mask & 0x20 ? 0.8 : 1;
    g.smClock = Math.round(Math.min(g.maxSmClock, g.maxSmClock * thermalClock * (straggle ? factor : 1)) / 15) * 15;

    for (const f of this.faults('ecc-storm').filter((x) => (x.gpu ?? 0) === g.index)) {
      const span = Math.max(1, f.end - f.start);
      const progress = (this.tick - f.start) / span;
      const sbe = r.count(Number(f.params?.['sbeRate'] ?? 20) * (1 + 4 * progress));
      g.eccVolSbe += sbe;
      g.eccAggSbe += sbe;
      if (progress >= 0.6 && !f.fired.has('dbe')) {
        f.fired.add('dbe');
        g.eccVolDbe += 1;
        g.eccAggDbe += 1;
        g.remapUncorrectable += 1;
        g.remapPending = true;
        this.emitXid(g, 48);
        this.emitXid(g, 63);
      }
      if (progress >= 0.9 && !f.fired.has('remap-failure') && f.params?.['remapFailure'] !== false) {
        f.fired.add('remap-failure');
        g.remapFailure = true;
        this.emitXid(g, 64);
      }
    }
    for (const f of this.faults('pcie-replay').filter((x) => (x.gpu ?? 0) === g.index)) {
      const before = g.pcieReplays;
      g.pcieReplays += r.count(Number(f.params?.['rate'] ?? 50));
      // A link that replays this much also retrains now and then: one per 50 replays (no draw
      // of its own, so a seeded scenario's other readings stay what they were).
      g.pcieRecoveries += Math.floor(g.pcieReplays / 50) - Math.floor(before / 50);
    }
  }

  private stepMount(m: (typeof this.mounts)[number], ckpt: boolean): void {
    const r = this.rng;
    const stall = this.faults('nfs-stall').find((f) => f.mount === m.mountpoint);
    let readBps = m.role === 'datasets' ? r.gauss(800e6, 80e6) : m.role === 'home' ? r.gauss(2e6, 5e5) : r.gauss(20e6, 4e6);
    let writeBps = m.role === 'checkpoints' && ckpt ? r.gauss(this.model.checkpointWriteBytesPerSec, 1e8) : m.role === 'scratch' ? r.gauss(30e6, 5e6) : r.gauss(1e6, 2e5);
    let meta = m.role === 'home' ? 200 : 40;
    if (stall) {
      // The server stops answering: little completes, RTT and the backlog keep growing.
      readBps *= 0.02;
      writeBps *= 0.02;
      meta *= 0.05;
      m.rttMs = Math.min(60_000, m.rttMs * 1.5 + 50);
      m.backlog += r.between(15, 30);
    } else {
      m.rttMs = Math.max(0.5, m.rttMs * 0.3 + r.gauss(0.7, 0.1));
      m.backlog = Math.max(0, m.backlog * 0.2 - 1);
    }
    readBps = Math.max(0, readBps);
    writeBps = Math.max(0, writeBps);
    const readOps = Math.round(readBps / 1048576);
    const writeOps = Math.round(writeBps / 1048576);
    const metaOps = r.count(meta);
    const retrans = stall ? r.count(6) : r.count(0.01);
    const timeouts = stall ? r.count(0.5) : 0;
    const add = (name: string, n: number, sent: number, recv: number): void => {
      const o = m.ops.get(name);
      if (!o || n <= 0) return;
      const queue = stall ? m.backlog * 0.5 : 0.02;
      o.ops += n;
      o.trans += n;
      o.sent += sent;
      o.recv += recv;
      o.queue += n * queue;
      o.rtt += n * m.rttMs;
      o.exec += n * (m.rttMs + queue + 0.05);
    };
    add('READ', readOps, readOps * 200, readBps + readOps * 120);
    add('WRITE', writeOps, writeBps + writeOps * 240, writeOps * 140);
    add('GETATTR', metaOps, metaOps * 230, metaOps * 250);
    add('ACCESS', Math.round(metaOps / 3), metaOps * 70, metaOps * 55);
    add('LOOKUP', Math.round(metaOps / 5), metaOps * 50, metaOps * 47);
    const wr = m.ops.get('WRITE');
    if (wr) {
      wr.trans += retrans;
      wr.timeouts += timeouts;
    }
    const sends = readOps + writeOps + metaOps + Math.round(metaOps / 3) + Math.round(metaOps / 5) + retrans;
    const inflight = stall ? Math.min(128, 8 + m.backlog) : Math.max(1, r.gauss(6, 1.5));
    const x = m.xprt;
    x.sends += sends;
    x.recvs += sends - retrans;
    x.reqU += sends * inflight;
    x.bklogU += sends * m.backlog;
    x.sendingU += sends * (stall ? 2 : 0.1);
    x.pendingU += sends * inflight * 0.5;
    x.maxSlots = Math.max(x.maxSlots, Math.ceil(inflight));
    m.bytes[0]! += readBps;
    m.bytes[1]! += writeBps;
    m.bytes[4]! += readBps;
    m.bytes[5]! += writeBps;
    m.bytes[6]! += readBps / 4096;
    m.bytes[7]! += writeBps / 4096;
    m.events[0]! += metaOps;
    m.events[4]! += Math.round(metaOps / 10);
    m.ageSeconds += 1;
  }

  private stepPort(p: PortState, ckpt: boolean): void {
    const r = this.rng;
    const c = p.counters;
    const h = p.hwCounters;
    if (!p.up) return;
    const bytes = Math.max(0, (ckpt ? 0.1 : 1) * r.gauss(this.model.rdmaBytesPerSec, this.model.rdmaBytesPerSec * 0.05));
    const rx = bytes * r.between(0.97, 1.03);
    c['port_rcv_data']! += Math.round(rx / 4);
    c['port_xmit_data']! += Math.round(bytes / 4);
    c['port_rcv_packets']! += Math.round(rx / MTU);
    c['port_xmit_packets']! += Math.round(bytes / MTU);
    c['unicast_rcv_packets']! += Math.round(rx / MTU);
    c['unicast_xmit_packets']! += Math.round(bytes / MTU);
    c['port_xmit_wait']! += r.count(bytes / 1e6);
    h['rx_write_requests']! += Math.round(rx / 65536);
    h['rx_read_requests']! += Math.round(rx / 2e6);
    for (const f of this.faults('link-errors').filter((x) => x.device === p.device && (x.port ?? 1) === p.port)) {
      const rate = Number(f.params?.['rate'] ?? 100);
      c['symbol_error']! += r.count(rate);
      c['port_rcv_errors']! += r.count(rate / 4);
      h['out_of_sequence']! += r.count(rate / 2);
      h['packet_seq_err']! += r.count(rate / 10);
      h['roce_adp_retrans']! += r.count(rate);
      h['local_ack_timeout_err']! += r.count(rate / 20);
    }
    const nic = [...this.model.hcas].find((x) => x.name === p.device)?.netdev;
    const n = nic ? this.nics.get(nic) : undefined;
    if (n) {
      n['rx_bytes_phy']! += rx;
      n['tx_bytes_phy']! += bytes;
      n['rx_packets_phy']! += Math.round(rx / MTU);
      n['tx_packets_phy']! += Math.round(bytes / MTU);
      n['rx_prio3_bytes']! += rx;
      n['rx_prio3_packets']! += Math.round(rx / MTU);
      n['rx_prio3_pause']! += r.count(ckpt ? 0 : 3);
      n['tx_prio3_pause']! += r.count(ckpt ? 0 : 2);
      if (this.faults('link-errors').some((f) => f.device === p.device)) {
        n['rx_discards_phy']! += r.count(50);
        n['rx_out_of_buffer']! += r.count(20);
        n['tx_prio3_pause']! += r.count(500);
      }
    }
  }

  // ---- DeviceBackend ----------------------------------------------------------------

  /** Through the real backend's parser: a GPU that fell off the bus is not in it. */
  async fingerprint(): Promise<GpuInventoryEntry[]> {
    this.sync();
    return parseGpuInventoryCsv(renderGpuCsv(this.gpus, GPU_INVENTORY_FIELDS), GPU_INVENTORY_FIELDS);
  }

  /** The fingerprint query's CSV, as the real backend would parse it. */
  fingerprintCsv(fields: readonly string[]): string {
    return renderGpuCsv(this.gpus.map((g) => ({ ...g, lost: false })), fields);
  }

  async readGpuMetricsText(fields: readonly string[] = GPU_QUERY_FIELDS): Promise<GpuMetricsText> {
    this.sync();
    return {
      csv: renderGpuCsv(this.gpus, fields),
      fields,
      pcieErrors: renderPciErrorCounters(this.gpus),
    };
  }

  async readMountstatsText(): Promise<string> {
    this.sync();
    return renderMountstats(this.mounts);
  }

  async readRdma(): Promise<RdmaReadings> {
    this.sync();
    const ethtool: Record<string, string> = {};
    for (const [iface, counters] of this.nics) ethtool[iface] = renderEthtool(counters);
    return { sysfs: renderSysfs(this.ports), ethtool };
  }

  /** Kernel log lines emitted so far and not yet taken (tests, one-shot readers). */
  drainKernelLog(): string[] {
    return this.log.splice(0);
  }

  async kernelBoot(): Promise<KernelBoot | undefined> {
    const boot = this.options.kernel?.boot();
    return boot && { id: boot.bootId, timeMs: boot.bootTimeMs };
  }

  async *kernelLog(signal?: AbortSignal, options: KernelLogReadOptions = {}): AsyncGenerator<string> {
    const kernel = this.options.kernel;
    if (kernel) {
      // Time moves on while nobody reads telemetry: scenario faults log when they are due.
      const ticker = setInterval(() => this.sync(), 1000);
      try {
        yield* followKmsg({ ...options, kmsgPath: kernel.kmsgPath, pollMs: 100, ...(signal ? { signal } : {}) });
      } finally {
        clearInterval(ticker);
      }
      return;
    }
    while (!signal?.aborted) {
      this.sync();
      const lines = this.log.splice(0);
      for (const l of lines) yield l;
      if (lines.length > 0) continue;
      await new Promise<void>((resolve) => {
        // Every way out removes the abort listener: the signal lives as long as the agent, and a
        // listener left behind per wait was the agents' MaxListenersExceededWarning.
        // The same for the waiter entry, which only a kernel message would clear otherwise.
        const done = () => {
          clearTimeout(t);
          signal?.removeEventListener('abort', done);
          const i = this.waiters.indexOf(done);
          if (i >= 0) this.waiters.splice(i, 1);
          resolve();
        };
        const t = setTimeout(done, this.options.clock === 'wall' ? 1000 : 60_000);
        this.waiters.push(done);
        signal?.addEventListener('abort', done, { once: true });
      });
    }
  }
}
