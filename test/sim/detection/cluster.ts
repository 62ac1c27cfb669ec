// The labelled scenario generator: 63 hosts x 8 GPUs under a pre-training workload (one big
// job, a fine-tuning job, small jobs coming and going), background noise, and the scenario's
// faults, stepped at scenario.intervalSec. Each step yields one window of exactly what the
// scheduler would hand the detector: the agents' TelemetryBatches and XidEvents (batch.ts,
// xid.ts), heartbeat gaps, jobs with their log activity and NCCL timeout lines, and operator
// actions (a repaired node released). Labels record the truth. Deterministic per seed.
import type { TelemetryBatch, XidEvent } from '@gantry/proto';
import type { HealthNodeInfo, HeartbeatInfo, JobInfo, NcclTimeoutLine, OperatorAction } from '../../../services/scheduler/src/health/types.js';
import { Rng } from '../../../services/node-agent/src/device/sim/rng.js';
import { parseSnapshot } from '../../../services/node-agent/src/collectors/snapshot.js';
import { BatchBuilder, firstDifference, renderRaw, textBatch } from './batch.js';
import { HostSim, noEffects, poisson, type HostEffects, type HostLoad, type MountRole } from './host.js';
import type { Category, Label } from './labels.js';
import type { FaultSpec, Scenario } from './scenario.js';
import { HostKernelLog } from './xid.js';

export interface WindowData {
  nowMs: number;
  batches: TelemetryBatch[];
  xids: XidEvent[];
  heartbeats: Record<string, HeartbeatInfo>;
  nodes: HealthNodeInfo[];
  jobs: JobInfo[];
  operator: OperatorAction[];
}

interface Job {
  id: string;
  kind: 'main' | 'second' | 'small';
  nodes: number[];
  startMs: number;
  endMs: number;
  ckptEverySec: number;
  ckptDurSec: number;
  ckptPhaseSec: number;
  restartFromMs: number;
  restartUntilMs: number;
  lastLogMs: number;
  /** Blocked (hang, storage stall): per-node mode and since when logs stopped. */
  blocked?: { sinceMs: number; modes: Map<number, HostLoad['mode']> };
}

interface NodeRun {
  host: HostSim;
  builder: BatchBuilder;
  klog: HostKernelLog;
  leaf: string;
  job?: Job;
  online: boolean;
  offlineSinceMs?: number;
  /** Out of service (repair) until; offline from repairOfflineMs. */
  repairUntilMs?: number;
  repairOfflineMs?: number;
  repairReplace: number[];
  lastHeartbeatMs: number;
  registered: string[];
  pendingClear: Array<{ gpu: number; atMs: number }>;
  smallNextMs: number;
  smallSerial: number;
}

interface ActiveFault {
  spec: FaultSpec;
  label: Label;
  startMs: number;
  atMs: number;
  endMs: number;
  fired: boolean;
  culprit?: number;
  job?: Job;
  ncclEmitted: Set<number>;
  /** Jobs this fault blocked (storage stalls), released when it ends. */
  blockedJobs: Set<Job>;
  released: boolean;
}

const HOUR = 3_600_000;
const MIN = 60_000;
const START_MS = Date.UTC(2026, 0, 5, 0, 0, 0);
const HARD_XIDS = new Set([48, 64, 74, 79, 95, 140, 145, 149]);
const BENIGN_XIDS = new Set([13, 31, 43, 94]);

export interface FidelityStats {
  compared: number;
  mismatches: string[];
}

export class ClusterSim {
  readonly labels: Label[] = [];
  readonly startMs = START_MS;
  readonly steps: number;
  readonly fidelity: FidelityStats = { compared: 0, mismatches: [] };
  readonly names: string[];
  private readonly nodes: NodeRun[] = [];
  private readonly jobs: Job[] = [];
  private readonly faults: ActiveFault[] = [];
  private readonly rng: Rng;
  private readonly wrng: Rng;
  private k = 0;
  private serial = 0;
  private lastGpuFail = new Set<number>();
  private readonly intervalMs: number;
  private readonly fidelityEvery: number;

  constructor(private readonly sc: Scenario, opts: { fidelityEveryHours?: number } = {}) {
    this.rng = new Rng(sc.seed);
    this.wrng = new Rng(sc.seed ^ 0x5eed);
    this.intervalMs = sc.intervalSec * 1000;
    this.steps = Math.floor((sc.days * 86_400) / sc.intervalSec);
    this.fidelityEvery = Math.max(1, Math.round(((opts.fidelityEveryHours ?? 24) * 3600) / sc.intervalSec));
    const c = sc.cluster;
    const perLeaf = Math.ceil(c.nodes / c.leafSwitches);
    this.names = Array.from({ length: c.nodes }, (_, i) => `node-${String(i).padStart(2, '0')}`);
    for (let i = 0; i < c.nodes; i++) {
      const mounts: Array<{ device: string; mountpoint: string; fstype: 'nfs' | 'nfs4'; role: MountRole }> = [
        { device: i < c.nodes / 2 ? '10.0.0.10:/datasets' : '10.0.0.20:/datasets', mountpoint: '/mnt/datasets', fstype: 'nfs4', role: 'datasets' },
        { device: '10.0.0.11:/checkpoints', mountpoint: '/mnt/checkpoints', fstype: 'nfs4', role: 'checkpoints' },
        { device: '10.0.0.12:/home', mountpoint: '/home', fstype: 'nfs4', role: 'home' },
        { device: '10.0.0.13:/scratch', mountpoint: '/scratch', fstype: 'nfs', role: 'scratch' },
      ];
      const host = new HostSim({
        name: this.names[i]!, index: i, gpus: c.gpusPerNode, model: c.gpuModel, seed: (sc.seed * 7919 + i * 104729) >>> 0,
        mounts, nodeTempOffset: this.rng.gauss(0, sc.noise.nodeTempSd), gpuTempSd: sc.noise.gpuTempSd,
      });
      this.nodes.push({
        host, builder: new BatchBuilder(host), klog: new HostKernelLog(host, 86_400 + i * 37), leaf: `leaf-${Math.floor(i / perLeaf)}`,
        online: true, repairReplace: [], lastHeartbeatMs: START_MS, registered: host.gpus.map((g) => g.uuid), pendingClear: [],
        smallNextMs: START_MS, smallSerial: 0,
      });
    }
    this.noiseInit();
    this.workloadInit();
    for (const f of sc.faults) this.addFault(f);
  }

  // ---- setup ---------------------------------------------------------------------

  private noiseInit(): void {
    const n = this.sc.noise;
    const pick = (): [NodeRun, number] => [this.nodes[this.rng.int(0, this.nodes.length - 1)]!, this.rng.int(0, this.sc.cluster.gpusPerNode - 1)];
    for (let i = 0; i < n.steadySbeGpus; i++) {
      const [node, g] = pick();
      node.host.steadySbe[g] = this.rng.between(n.steadySbeRate[0], n.steadySbeRate[1]);
    }
    for (let i = 0; i < n.steadyPcieGpus; i++) {
      const [node, g] = pick();
      node.host.steadyPcie[g] = this.rng.between(n.steadyPcieRate[0], n.steadyPcieRate[1]);
    }
  }

  private newJob(kind: Job['kind'], nodes: number[], startMs: number, endMs: number): Job {
    const w = this.sc.workload;
    const every = kind === 'main' ? w.checkpointEveryMin * 60 : kind === 'second' ? 20 * 60 : 60 * 60;
    const dur = kind === 'main' ? w.checkpointMin * 60 : kind === 'second' ? 120 : 60;
    const id = kind === 'main' ? 'pretrain' : kind === 'second' ? `finetune-${++this.serial}` : `small-${++this.serial}`;
    const job: Job = {
      id, kind, nodes, startMs, endMs, ckptEverySec: every, ckptDurSec: dur, ckptPhaseSec: this.wrng.int(0, every - 1),
      restartFromMs: startMs, restartUntilMs: startMs + 10 * MIN, lastLogMs: startMs,
    };
    for (const i of nodes) this.nodes[i]!.job = job;
    this.jobs.push(job);
    return job;
  }

  private workloadInit(): void {
    const w = this.sc.workload;
    const end = START_MS + this.sc.days * 24 * HOUR + HOUR;
    this.newJob('main', range(0, w.mainJobNodes), START_MS - 2 * HOUR, end);
    this.newJob('second', range(w.mainJobNodes, w.mainJobNodes + w.secondJobNodes), START_MS - HOUR, START_MS + this.wrng.between(3, 5) * 24 * HOUR);
    for (let i = w.mainJobNodes + w.secondJobNodes; i < this.nodes.length; i++) this.nodes[i]!.smallNextMs = START_MS + this.wrng.between(0, 3) * HOUR;
  }

  private addFault(f: FaultSpec): void {
    const atMs = START_MS + f.atHours * HOUR;
    const startMs = atMs - (f.precursorHours ?? 0) * HOUR;
    const endMs = f.durationMin !== undefined ? atMs + f.durationMin * MIN : atMs;
    const node = f.node !== undefined ? this.names[f.node] : undefined;
    let category: Category;
    switch (f.kind) {
      case 'sudden-xid': category = BENIGN_XIDS.has(f.xid ?? 0) ? 'benign' : 'hardware'; break;
      case 'nfs-client-stall': category = 'node-network'; break;
      case 'nfs-stall': category = 'shared-storage'; break;
      case 'fabric-flap': category = 'shared-fabric'; break;
      case 'mgmt-blip': category = 'shared-management'; break;
      case 'straggler': category = 'straggler'; break;
      case 'nccl-hang': category = 'hang'; break;
      default: category = 'hardware';
    }
    const precursor = ['remap-buildup', 'ecc-storm', 'nvlink-degradation', 'thermal-runaway', 'pcie-degradation'].includes(f.kind) && (f.precursorHours ?? 0) > 0;
    const xid = f.xid ?? (['remap-buildup', 'pcie-degradation'].includes(f.kind) ? 79 : f.kind === 'ecc-storm' ? 48 : f.kind === 'nvlink-degradation' ? 74 : undefined);
    const label: Label = {
      id: f.id, kind: f.kind, category, startMs: Math.max(START_MS, startMs), endMs, precursor,
      ...(node ? { node } : {}), ...(f.target ? { target: f.target } : {}),
      ...(xid ? { xid, xidMs: atMs } : {}),
    };
    if (f.kind === 'nfs-stall') label.nodes = this.nodes.filter((n) => n.host.mounts.some((m) => m.device === f.target)).map((n) => n.host.name);
    if (f.kind === 'fabric-flap' || f.kind === 'mgmt-blip') label.nodes = this.nodes.filter((n) => n.leaf === f.target).map((n) => n.host.name);
    this.labels.push(label);
    const af: ActiveFault = { spec: f, label, startMs, atMs, endMs, fired: false, ncclEmitted: new Set(), blockedJobs: new Set(), released: false };
    if (f.kind === 'remap-buildup') {
      const g = this.nodes[f.node!]!.host.gpus[f.gpu ?? 0]!;
      g.remapCorrectable = Math.max(0, Math.floor(this.remapRows(af, START_MS)));
      g.remapPending = g.remapCorrectable > 0;
    }
    this.faults.push(af);
  }

  private remapRows(f: ActiveFault, t: number): number {
    const end = Number(f.spec.params?.['rowsAtEnd'] ?? 254);
    const perDay = Number(f.spec.params?.['rowsPerDay'] ?? 4.6);
    return end - (perDay * (f.atMs - t)) / (24 * HOUR);
  }

  // ---- stepping ------------------------------------------------------------------

  get done(): boolean {
    return this.k >= this.steps;
  }

  step(): WindowData {
    this.k++;
    const t = START_MS + this.k * this.intervalMs;
    const t0 = t - this.intervalMs;
    const xids: XidEvent[] = [];
    const operator: OperatorAction[] = [];
    const gaps = new Map<number, number>();
    const gpuFail = new Set<number>();
    // Fidelity sample: the previous state's text must be rendered before anything changes it.
    const prevSnaps = new Map<number, ReturnType<typeof parseSnapshot>>();
    for (const [i, n] of this.nodes.entries()) {
      if (n.online && this.k % this.fidelityEvery === i % this.fidelityEvery && n.builder.lastSeq > 0) prevSnaps.set(i, parseSnapshot(renderRaw(n.host), t0));
    }

    this.workloadStep(t0, t);
    const fx = this.nodes.map(() => noEffects(this.sc.cluster.gpusPerNode));
    const modes = new Map<number, HostLoad['mode']>();
    const ncclLines = new Map<string, NcclTimeoutLine[]>();
    for (const f of this.faults) this.applyFault(f, t0, t, fx, xids, gaps, modes, ncclLines);
    this.noiseStep(t0, t, xids, gaps, gpuFail);

    // Repairs end: the node comes back with new GPUs where replaced, a fresh agent, and the
    // operator releases it.
    for (const [i, n] of this.nodes.entries()) {
      if (n.repairOfflineMs !== undefined && n.online && t >= n.repairOfflineMs) this.goOffline(i, n.repairOfflineMs);
      if (n.repairUntilMs !== undefined && t >= n.repairUntilMs) {
        n.host.repair(n.repairReplace);
        n.repairReplace = [];
        n.klog.refreshInventory();
        n.registered = n.host.gpus.map((g) => g.uuid);
        delete n.repairUntilMs;
        delete n.repairOfflineMs;
        this.goOnline(i, t);
        operator.push({ node: n.host.name, action: 'release', reason: 'repaired' });
      }
      for (const p of n.pendingClear.filter((x) => t >= x.atMs)) n.host.gpus[p.gpu]!.remapPending = false;
      n.pendingClear = n.pendingClear.filter((x) => t < x.atMs);
    }

    const batches: TelemetryBatch[] = [];
    const heartbeats: Record<string, HeartbeatInfo> = {};
    const dayFraction = ((t - START_MS) % (24 * HOUR)) / (24 * HOUR);
    for (const [i, n] of this.nodes.entries()) {
      if (!n.online) {
        heartbeats[n.host.name] = { lastSeenMs: n.lastHeartbeatMs };
        continue;
      }
      const load = this.loadOf(i, t0, t, modes);
      const prevSnap = prevSnaps.get(i);
      const fresh = n.builder.lastSeq === 0;
      n.host.step(this.sc.intervalSec, dayFraction, load, fx[i]!);
      const batch = n.builder.build(t, { gpuCollectorFailed: gpuFail.has(i) });
      // Compared when both batches are plain: no collector failure, no agent restart in between.
      if (prevSnap && !fresh && batch.interval && !gpuFail.has(i) && !this.lastGpuFail.has(i)) this.checkFidelity(n, prevSnap, batch, t);
      batches.push(batch);
      const gap = gaps.get(i);
      n.lastHeartbeatMs = t - this.rng.between(0, 5000);
      heartbeats[n.host.name] = { lastSeenMs: n.lastHeartbeatMs, longestGapMs: gap ?? 5000 + Math.abs(this.rng.gauss(0, 700)) };
    }

    this.lastGpuFail = gpuFail;
    const jobs: JobInfo[] = [];
    for (const j of this.jobs) {
      if (t < j.startMs || t >= j.endMs || j.nodes.length === 0) continue;
      if (!j.blocked) j.lastLogMs = t - this.rng.between(0, 60_000);
      const lines = ncclLines.get(j.id);
      jobs.push({
        id: j.id, nodes: j.nodes.map((i) => this.names[i]!), lastLogMs: j.lastLogMs, startedMs: j.restartFromMs,
        ...(lines ? { ncclTimeouts: lines } : {}),
      });
    }
    const nodes: HealthNodeInfo[] = this.nodes.map((n) => ({ name: n.host.name, leafSwitch: n.leaf, gpuUuids: n.registered }));
    return { nowMs: t, batches, xids, heartbeats, nodes, jobs, operator };
  }

  private checkFidelity(n: NodeRun, prevSnap: ReturnType<typeof parseSnapshot>, direct: TelemetryBatch, t: number): void {
    const text = textBatch(n.host, prevSnap, t, direct.seq).batch;
    this.fidelity.compared++;
    const d = firstDifference(direct, text);
    if (d && this.fidelity.mismatches.length < 20) this.fidelity.mismatches.push(`${n.host.name} @${new Date(t).toISOString()}: ${d}`);
    else if (d) this.fidelity.mismatches.push('...');
  }

  private goOffline(i: number, atMs: number): void {
    const n = this.nodes[i]!;
    n.online = false;
    n.offlineSinceMs = atMs;
    this.removeFromJob(i, atMs);
  }

  private goOnline(i: number, t: number): void {
    const n = this.nodes[i]!;
    n.online = true;
    delete n.offlineSinceMs;
    n.builder.restartAgent();
    n.lastHeartbeatMs = t;
    n.smallNextMs = t + this.wrng.between(0.5, 3) * HOUR;
  }

  /** A node leaves its job (fault, repair): the big jobs take a replacement from the small-job pool. */
  private removeFromJob(i: number, atMs: number): void {
    const n = this.nodes[i]!;
    const job = n.job;
    if (!job) return;
    delete n.job;
    job.nodes = job.nodes.filter((x) => x !== i);
    if (job.kind === 'small') {
      job.endMs = Math.min(job.endMs, atMs);
      return;
    }
    const w = this.sc.workload;
    const spare = this.nodes.findIndex((m, k) => k >= w.mainJobNodes + w.secondJobNodes && m.online && m.repairUntilMs === undefined && m.job?.kind !== 'main' && m.job?.kind !== 'second');
    if (spare >= 0) {
      const s = this.nodes[spare]!;
      if (s.job) {
        s.job.endMs = Math.min(s.job.endMs, atMs);
        s.job.nodes = s.job.nodes.filter((x) => x !== spare);
      }
      s.job = job;
      job.nodes = [...job.nodes, spare].sort((a, b) => a - b);
    }
    // The job restarts from its checkpoint: a read burst, a new attempt.
    job.restartFromMs = atMs + 5 * MIN;
    job.restartUntilMs = atMs + 15 * MIN;
  }

  private workloadStep(t0: number, t: number): void {
    const w = this.sc.workload;
    for (const j of this.jobs) {
      if (j.endMs <= t && j.endMs > t0) {
        for (const i of j.nodes) if (this.nodes[i]!.job === j) delete this.nodes[i]!.job;
        if (j.kind === 'second') {
          const nodes = range(w.mainJobNodes, w.mainJobNodes + w.secondJobNodes).filter((i) => this.nodes[i]!.online && this.nodes[i]!.repairUntilMs === undefined && !this.nodes[i]!.job);
          const start = t + this.wrng.between(1, 3) * HOUR;
          this.newJob('second', nodes, start, start + this.wrng.between(3, 5) * 24 * HOUR);
        }
      }
    }
    for (const [i, n] of this.nodes.entries()) {
      if (i < w.mainJobNodes + w.secondJobNodes || !n.online || n.repairUntilMs !== undefined || n.job || t < n.smallNextMs) continue;
      const dur = this.wrng.between(2, 12) * HOUR;
      this.newJob('small', [i], t, t + dur);
      n.smallNextMs = t + dur + this.wrng.between(0.5, 6) * HOUR;
    }
  }

  private overlap(a0: number, a1: number, b0: number, b1: number): number {
    return Math.max(0, Math.min(a1, b1) - Math.max(a0, b0));
  }

  /** Seconds of the interval (t0, t] a periodic checkpoint covers. */
  private ckptOverlap(j: Job, t0: number, t: number): { frac: number; atSample: boolean } {
    const every = j.ckptEverySec * 1000;
    const dur = j.ckptDurSec * 1000;
    const phase = j.startMs + j.ckptPhaseSec * 1000;
    let covered = 0;
    const first = Math.floor((t0 - phase) / every) - 1;
    for (let k = first; k <= first + 3; k++) {
      const s = phase + k * every;
      covered += this.overlap(t0, t, s, s + dur);
    }
    const into = (((t - phase) % every) + every) % every;
    return { frac: covered / (t - t0), atSample: into < dur };
  }

  private loadOf(i: number, t0: number, t: number, modes: Map<number, HostLoad['mode']>): HostLoad {
    const n = this.nodes[i]!;
    const j = n.job;
    if (!j || t < j.startMs || t >= j.endMs) return { mode: 'idle', ckptFrac: 0, ckptAtSample: false, ckptWriteBps: 0, restartFrac: 0 };
    const override = modes.get(i) ?? j.blocked?.modes.get(i);
    if (override) return { mode: override, ckptFrac: 0, ckptAtSample: false, ckptWriteBps: 0, restartFrac: 0 };
    const c = this.ckptOverlap(j, t0, t);
    const restartFrac = this.overlap(t0, t, j.restartFromMs, j.restartUntilMs) / (t - t0);
    // The 504-GPU report: saves at 16% of 250 GB/s across the cluster (~0.8 GB/s per node).
    return { mode: restartFrac > 0.5 ? 'idle' : 'train', ckptFrac: c.frac, ckptAtSample: c.atSample, ckptWriteBps: 0.83e9, restartFrac };
  }

  // ---- faults --------------------------------------------------------------------

  private emitXid(i: number, gpu: number, xid: number, atMs: number, out: XidEvent[]): void {
    out.push(...this.nodes[i]!.klog.xid(gpu, xid, atMs, (atMs - START_MS) / 1000));
  }

  /** A hardware fault that takes the node out: it leaves its job now and goes for repair. */
  private scheduleRepair(i: number, atMs: number, hours: number, replace: number[], label: Label): void {
    const n = this.nodes[i]!;
    n.repairOfflineMs = atMs + 60 * MIN;
    n.repairUntilMs = atMs + hours * HOUR;
    n.repairReplace = [...new Set([...n.repairReplace, ...replace])];
    label.outUntilMs = n.repairUntilMs;
    this.removeFromJob(i, atMs);
  }

  private applyFault(
    f: ActiveFault, t0: number, t: number, fx: HostEffects[], xids: XidEvent[], gaps: Map<number, number>,
    modes: Map<number, HostLoad['mode']>, nccl: Map<string, NcclTimeoutLine[]>,
  ): void {
    const s = f.spec;
    const i = s.node ?? -1;
    const gpu = s.gpu ?? 0;
    const p = (x: string, d: number): number => Number(s.params?.[x] ?? d);
    const progress = f.atMs > f.startMs ? Math.min(1, Math.max(0, (t - f.startMs) / (f.atMs - f.startMs))) : 1;
    const inPre = t > f.startMs && t0 < f.atMs;
    const fires = !f.fired && f.atMs > t0 && f.atMs <= t;
    const during = (a: number, b: number): number => this.overlap(t0, t, a, b) / (t - t0);
    const repairHours = p('repairHours', this.sc.workload.repairHours);
    const xidOut = (x: number): void => {
      if (s.reportXid !== false) this.emitXid(i, gpu, x, f.atMs, xids);
    };
    if (fires) f.fired = true;
    switch (s.kind) {
      case 'remap-buildup': {
        const g = this.nodes[i]!.host.gpus[gpu]!;
        // Rows accumulate from the precursor's onset (before the scenario when it reaches back).
        if (t > f.startMs && t <= f.atMs && !g.lost) {
          const target = Math.floor(this.remapRows(f, Math.min(t, f.atMs)));
          for (let r = g.remapCorrectable; r < target; r++) this.emitXid(i, gpu, 63, t0 + this.rng.between(0, t - t0), xids);
          if (target > g.remapCorrectable) {
            g.remapCorrectable = target;
            g.remapPending = true;
          }
          fx[i]!.gpu[gpu]!.sbe += p('sbe', 0.002);
        }
        if (fires) {
          const x = s.xid ?? 79;
          // Out of spare rows (64) the GPU stays up with a remapping failure; otherwise it falls off the bus.
          if (x === 64) g.remapFailure = true;
          else g.lost = true;
          xidOut(x);
          this.scheduleRepair(i, f.atMs, repairHours, [gpu], f.label);
        }
        break;
      }
      case 'ecc-storm': {
        if (inPre) {
          const a = p('sbeStart', 0.003);
          fx[i]!.gpu[gpu]!.sbe += a * Math.pow(p('sbeEnd', 0.8) / a, progress);
        }
        if (fires) {
          const h = this.nodes[i]!.host;
          const x = s.xid ?? 48;
          h.eccEvent(gpu, 'dbe');
          if (x === 48) {
            h.gpus[gpu]!.remapUncorrectable += 1;
            h.gpus[gpu]!.remapPending = true;
          }
          xidOut(x);
          if (x === 48) xidOut(63);
          this.scheduleRepair(i, f.atMs, repairHours, [gpu], f.label);
        }
        break;
      }
      case 'nvlink-degradation': {
        if (inPre) {
          const e = fx[i]!.gpu[gpu]!;
          e.nvLink = p('link', 3);
          e.nvCrc = 0.002 + p('crcEnd', 0.4) * progress * progress;
          e.nvReplay = e.nvCrc / 2;
          e.nvRecovery = e.nvCrc / 20;
        }
        if (fires) {
          this.nodes[i]!.host.links[gpu]![p('link', 3)]!.active = false;
          xidOut(s.xid ?? 74);
          this.scheduleRepair(i, f.atMs, repairHours, [gpu], f.label);
        }
        break;
      }
      case 'thermal-runaway': {
        if (inPre) fx[i]!.gpu[gpu]!.tempTarget = { peakC: p('peakC', 96), progress: Math.pow(progress, 1.5) };
        if (fires && s.xid) {
          xidOut(s.xid);
          if (s.xid === 79) this.nodes[i]!.host.gpus[gpu]!.lost = true;
          this.scheduleRepair(i, f.atMs, repairHours, [gpu], f.label);
        }
        break;
      }
      case 'pcie-degradation': {
        if (inPre) fx[i]!.gpu[gpu]!.pcie += 0.02 + p('rateEnd', 6) * progress * progress;
        if (fires) {
          xidOut(s.xid ?? 79);
          this.nodes[i]!.host.gpus[gpu]!.lost = true;
          this.scheduleRepair(i, f.atMs, repairHours, [gpu], f.label);
        }
        break;
      }
      case 'sudden-xid': {
        if (!fires) break;
        const x = s.xid ?? 79;
        const h = this.nodes[i]!.host;
        if (x === 48 || x === 95 || x === 94) h.eccEvent(gpu, 'dbe');
        if (x === 48) {
          h.gpus[gpu]!.remapUncorrectable += 1;
          h.gpus[gpu]!.remapPending = true;
        }
        if (x === 74 || x === 145 || x === 149) h.links[gpu]![2]!.active = false;
        xidOut(x);
        if (x === 48) xidOut(63);
        if (x === 79) h.gpus[gpu]!.lost = true;
        if (!BENIGN_XIDS.has(x)) this.scheduleRepair(i, f.atMs, x === 119 ? p('repairHours', 1) : repairHours, HARD_XIDS.has(x) ? [gpu] : [], f.label);
        break;
      }
      case 'node-crash': {
        if (fires) this.goOffline(i, f.atMs);
        if (this.nodes[i]!.online === false && t >= f.endMs && t0 < f.endMs) {
          f.label.outUntilMs = t;
          this.nodes[i]!.repairUntilMs = t;
          this.nodes[i]!.repairReplace = [];
        }
        break;
      }
      case 'roce-flap': {
        const d = during(f.atMs, f.endMs);
        if (d <= 0) break;
        const r = fx[i]!.roce;
        r.symbol += p('symbol', 0.3);
        r.flaps += poisson(this.rng, (p('flapsPerHour', 6) * d * (t - t0)) / HOUR);
        r.retrans += 4;
        r.oos += 4;
        r.downAtSample = r.downAtSample || this.rng.next() < 0.25;
        break;
      }
      case 'nfs-client-stall': {
        const d = during(f.atMs, f.endMs);
        if (d > 0) {
          fx[i]!.stall.set('*', d);
          this.blockJob(f, i, t0, t, modes, 'culprit-idle');
        } else if (t0 >= f.endMs) this.unblock(f, t);
        break;
      }
      case 'nfs-stall': {
        const d = during(f.atMs, f.endMs);
        const on = this.nodes.map((n, k) => [n, k] as const).filter(([n]) => n.host.mounts.some((m) => m.device === s.target));
        if (d > 0) {
          for (const [, k] of on) fx[k]!.stall.set(s.target!, d);
          // Jobs reading or writing there block on I/O: every GPU idle, no log output.
          for (const j of new Set(on.map(([n]) => n.job).filter((x): x is Job => x !== undefined && x.kind !== 'small'))) {
            if (!j.blocked) {
              j.blocked = { sinceMs: f.atMs + 2 * MIN, modes: new Map(j.nodes.map((k) => [k, 'hang-idle'] as const)) };
              f.blockedJobs.add(j);
            }
            if (t >= j.blocked.sinceMs) j.lastLogMs = Math.min(j.lastLogMs, j.blocked.sinceMs);
          }
        } else if (t0 >= f.endMs && t0 < f.endMs + this.intervalMs) {
          for (const j of f.blockedJobs) this.release(j, t);
          f.blockedJobs.clear();
        }
        break;
      }
      case 'fabric-flap': {
        const d = during(f.atMs, f.endMs);
        if (d <= 0) break;
        for (const [k, n] of this.nodes.entries()) {
          if (n.leaf !== s.target) continue;
          const r = fx[k]!.roce;
          r.symbol += p('symbol', 0.15) * d;
          r.flaps += poisson(this.rng, (p('flapsPerHour', 1.5) * d * (t - t0)) / HOUR);
          r.retrans += 3 * d;
          r.oos += 3 * d;
          r.pause += 3000 * d;
          r.downAtSample = r.downAtSample || this.rng.next() < 0.05;
        }
        break;
      }
      case 'mgmt-blip': {
        if (this.overlap(t0, t, f.atMs, f.endMs) <= 0) break;
        for (const [k, n] of this.nodes.entries()) if (n.leaf === s.target) gaps.set(k, this.rng.between(80_000, 150_000));
        break;
      }
      case 'straggler': {
        const d = during(f.atMs, f.endMs);
        if (fires) {
          f.label.job = this.nodes[i]!.job?.id;
          f.label.expectedNode = this.names[i];
        }
        if (d <= 0) break;
        for (const e of fx[i]!.gpu) {
          e.clockFactor = p('factor', 0.62);
          e.brake = d;
        }
        break;
      }
      case 'nccl-hang': {
        const d = during(f.atMs, f.endMs);
        if (d > 0) {
          const mode = String(s.params?.['mode'] ?? 'culprit-idle') as 'culprit-idle' | 'culprit-silent' | 'all-idle';
          this.blockJob(f, i, t0, t, modes, mode);
          const j = f.job;
          const timeoutAt = f.atMs + p('ncclTimeoutMin', 10) * MIN;
          if (j && t >= timeoutAt) {
            for (const k of j.nodes) {
              if (f.ncclEmitted.has(k) || (mode !== 'all-idle' && k === f.culprit)) continue;
              f.ncclEmitted.add(k);
              const l = nccl.get(j.id) ?? [];
              l.push({ node: this.names[k]!, timeMs: timeoutAt, line: `[Rank ${k * 8}] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=81542, OpType=ALLREDUCE, NumelIn=1048576, Timeout(ms)=600000) ran for 600012 milliseconds before timing out.` });
              nccl.set(j.id, l);
            }
          }
        } else if (t0 >= f.endMs) this.unblock(f, t);
        break;
      }
    }
  }

  /** Freezes the job of node i: logs stop; per mode, the culprit idles and the others spin, or all idle. */
  private blockJob(f: ActiveFault, i: number, t0: number, t: number, modes: Map<number, HostLoad['mode']>, mode: 'culprit-idle' | 'culprit-silent' | 'all-idle'): void {
    if (!f.job) {
      const j = this.nodes[i]!.job;
      if (!j) return;
      f.job = j;
      f.culprit = i;
      f.label.job = j.id;
      if (mode !== 'all-idle') f.label.expectedNode = this.names[i];
      j.blocked = { sinceMs: f.atMs, modes: new Map() };
      j.lastLogMs = Math.min(j.lastLogMs, f.atMs);
    }
    const j = f.job;
    j.blocked ??= { sinceMs: f.atMs, modes: new Map() };
    for (const k of j.nodes) {
      const m = mode === 'all-idle' ? 'hang-idle' : k === f.culprit && mode === 'culprit-idle' ? 'hang-idle' : 'spin';
      j.blocked.modes.set(k, m);
      if (t0 >= f.atMs) modes.set(k, m);
    }
    void t;
  }

  /** Once, when the episode ends: the job resumes (its next attempt reads the checkpoint back). */
  private unblock(f: ActiveFault, t: number): void {
    if (f.job && !f.released) {
      f.released = true;
      this.release(f.job, t);
    }
  }

  private release(j: Job, t: number): void {
    delete j.blocked;
    j.restartFromMs = t;
    j.restartUntilMs = t + 10 * MIN;
    j.lastLogMs = t;
  }

  // ---- noise ---------------------------------------------------------------------

  private noiseStep(t0: number, t: number, xids: XidEvent[], gaps: Map<number, number>, gpuFail: Set<number>): void {
    const n = this.sc.noise;
    const days = (t - t0) / (24 * HOUR);
    const online = (): number | undefined => {
      for (let tries = 0; tries < 10; tries++) {
        const i = this.rng.int(0, this.nodes.length - 1);
        if (this.nodes[i]!.online && this.nodes[i]!.repairUntilMs === undefined) return i;
      }
      return undefined;
    };
    const busy = (): number | undefined => {
      for (let tries = 0; tries < 10; tries++) {
        const i = online();
        if (i !== undefined && this.nodes[i]!.job) return i;
      }
      return undefined;
    };
    const gpuOf = (): number => this.rng.int(0, this.sc.cluster.gpusPerNode - 1);
    const times = (perDay: number): number => poisson(this.rng, perDay * days);
    const at = (): number => t0 + this.rng.between(0, t - t0);

    for (let k = times(n.sbeBurstsPerDay); k > 0; k--) {
      const i = online();
      if (i !== undefined) this.nodes[i]!.host.eccEvent(gpuOf(), 'sbe-burst', this.rng.int(5, 60));
    }
    for (let k = times(n.nvlinkBlipsPerDay); k > 0; k--) {
      const i = online();
      if (i !== undefined) this.nodes[i]!.host.links[gpuOf()]![this.rng.int(0, 17)]!.crc += this.rng.int(1, 5);
    }
    for (let k = times(n.symbolErrorBlipsPerDay); k > 0; k--) {
      const i = online();
      if (i !== undefined) this.nodes[i]!.host.ports[1]!.counters['symbol_error']! += this.rng.int(1, 20);
    }
    for (let k = times(n.appXidsPerDay); k > 0; k--) {
      const i = busy();
      if (i === undefined) continue;
      const g = gpuOf();
      const x = [13, 31, 31, 43][this.rng.int(0, 3)]!;
      const when = at();
      this.emitXid(i, g, x, when, xids);
      if (x !== 43 && this.rng.next() < 0.5) this.emitXid(i, g, 43, when + 1000, xids);
    }
    for (let k = times(n.contained94PerWeek / 7); k > 0; k--) {
      const i = busy();
      if (i === undefined) continue;
      const g = gpuOf();
      const when = at();
      this.nodes[i]!.host.eccEvent(g, 'dbe');
      this.emitXid(i, g, 94, when, xids);
      this.labels.push({ id: `noise-94-${this.labels.length}`, kind: 'noise-94', category: 'benign', node: this.names[i]!, startMs: when, xidMs: when, xid: 94, endMs: when, precursor: false });
    }
    for (let k = times(n.singleRemapsPerWeek / 7); k > 0; k--) {
      const i = online();
      if (i === undefined) continue;
      const g = gpuOf();
      const gs = this.nodes[i]!.host.gpus[g]!;
      if (gs.lost) continue;
      gs.remapCorrectable += 1;
      gs.remapPending = true;
      this.nodes[i]!.pendingClear.push({ gpu: g, atMs: t + this.rng.between(12, 72) * HOUR });
      this.emitXid(i, g, 63, at(), xids);
    }
    for (let k = times(n.heartbeatBlipsPerDay); k > 0; k--) {
      const i = online();
      if (i === undefined) continue;
      gaps.set(i, this.rng.between(20_000, 40_000));
      // Half of them are agent restarts: the next batch carries no rates.
      if (this.rng.next() < 0.5) this.nodes[i]!.builder.restartAgent();
    }
    for (let k = times(n.collectorFailuresPerDay); k > 0; k--) {
      const i = online();
      if (i !== undefined) gpuFail.add(i);
    }
  }
}

function range(a: number, b: number): number[] {
  return Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i);
}
