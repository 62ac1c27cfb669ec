// The detectors the evaluation compares, all fed the same windows: Gantry's (the health
// module itself, unmodified, default config except the window length) and single-signal
// baselines an operator could run today.
//   xid-only        what Gantry did before the health module: act on the XIDs recovery treats
//                   as node faults (services/scheduler/src/recovery/xid-policy.ts, imported).
//   ecc-only        a DCGM-style ECC health check: any DBE, a row-remapping failure or pending
//                   remap / page retirement, or corrected errors above 0.05/s on a GPU.
//   heartbeat-only  a node silent for longer than the scheduler's HEARTBEAT_TIMEOUT_MS (15 s).
// Every detector reports alarm intervals per node (alarm raised → cleared), so detection,
// lead time and false alarms are counted the same way for all of them.
import { FailureClass } from '@gantry/proto';
import { DEFAULT_HEALTH_CONFIG, HealthEvaluator, resolveHealthConfig, type HealthConfigInput } from '../../../services/scheduler/src/health/index.js';
import type { LemonFlag, ProgressFinding, SharedFaultFlag } from '../../../services/scheduler/src/health/types.js';
import { xidFailureClass } from '../../../services/scheduler/src/recovery/xid-policy.js';
import type { WindowData } from './cluster.js';

export interface Interval {
  node: string;
  fromMs: number;
  toMs?: number;
  reason: string;
  quarantined?: boolean;
}

export interface SharedInterval {
  kind: string;
  target: string;
  fromMs: number;
  toMs?: number;
}

export interface DetectorResult {
  name: string;
  alarms: Interval[];
  shared: SharedInterval[];
  findings: ProgressFinding[];
  lemons: LemonFlag[];
}

export interface Detector {
  readonly name: string;
  observe(w: WindowData): void;
  result(): DetectorResult;
}

/** Alarm bookkeeping shared by the baselines: raise on a condition, clear after `clearMs` without it or on release. */
class AlarmBook {
  readonly intervals: Interval[] = [];
  private readonly open = new Map<string, { iv: Interval; lastMs: number }>();

  constructor(private readonly clearMs: number) {}

  raise(node: string, atMs: number, reason: string): void {
    const o = this.open.get(node);
    if (o) {
      o.lastMs = atMs;
      return;
    }
    const iv: Interval = { node, fromMs: atMs, reason };
    this.intervals.push(iv);
    this.open.set(node, { iv, lastMs: atMs });
  }

  tick(nowMs: number, released: readonly string[]): void {
    for (const [node, o] of this.open) {
      if (released.includes(node) || nowMs - o.lastMs >= this.clearMs) {
        o.iv.toMs = nowMs;
        this.open.delete(node);
      }
    }
  }
}

const HOUR = 3_600_000;

export class XidOnly implements Detector {
  readonly name = 'xid-only';
  // An XID node fault holds the node until it is repaired and released.
  private readonly book = new AlarmBook(Number.POSITIVE_INFINITY);

  observe(w: WindowData): void {
    this.book.tick(w.nowMs, w.operator.filter((o) => o.action === 'release').map((o) => o.node));
    for (const x of w.xids) {
      if (xidFailureClass(x, DEFAULT_HEALTH_CONFIG).failureClass === FailureClass.FAILURE_CLASS_NODE_FAULT) this.book.raise(x.node, w.nowMs, `XID ${x.xid}`);
    }
  }

  result(): DetectorResult {
    return { name: this.name, alarms: this.book.intervals, shared: [], findings: [], lemons: [] };
  }
}

export class EccOnly implements Detector {
  readonly name = 'ecc-only';
  private readonly book = new AlarmBook(HOUR);

  observe(w: WindowData): void {
    this.book.tick(w.nowMs, w.operator.filter((o) => o.action === 'release').map((o) => o.node));
    for (const b of w.batches) {
      for (const g of b.gpus) {
        const why = (g.rates?.eccDoubleBitPerSecond ?? 0) > 0 ? 'DBE'
          : g.remappedRowsFailure ? 'remap failure'
            : g.remappedRowsPending ? 'remap pending'
              : g.retiredPagesPending ? 'retirement pending'
                : (g.rates?.eccSingleBitPerSecond ?? 0) > 0.05 ? 'SBE rate' : undefined;
        if (why) this.book.raise(b.node, w.nowMs, `${why} on GPU ${g.index}`);
      }
    }
  }

  result(): DetectorResult {
    return { name: this.name, alarms: this.book.intervals, shared: [], findings: [], lemons: [] };
  }
}

export class HeartbeatOnly implements Detector {
  readonly name = 'heartbeat-only';
  private readonly book = new AlarmBook(HOUR);

  constructor(private readonly timeoutMs = 15_000) {}

  observe(w: WindowData): void {
    this.book.tick(w.nowMs, w.operator.filter((o) => o.action === 'release').map((o) => o.node));
    for (const [node, hb] of Object.entries(w.heartbeats)) {
      const gap = Math.max(hb.longestGapMs ?? 0, w.nowMs - hb.lastSeenMs);
      if (gap > this.timeoutMs) this.book.raise(node, w.nowMs, `no heartbeat for ${Math.round(gap / 1000)}s`);
    }
  }

  result(): DetectorResult {
    return { name: this.name, alarms: this.book.intervals, shared: [], findings: [], lemons: [] };
  }
}

/** Gantry's detector: the health module's evaluator, one evaluation per window. */
export class Gantry implements Detector {
  readonly name = 'gantry';
  readonly evaluator: HealthEvaluator;
  private readonly alarms: Interval[] = [];
  private readonly open = new Map<string, Interval>();
  private readonly shared: SharedInterval[] = [];
  private readonly openShared = new Map<string, SharedInterval>();
  private readonly findings: ProgressFinding[] = [];
  private readonly lemons: LemonFlag[] = [];
  /** Milliseconds spent inside evaluate() (wall; process.cpuUsage per window costs more than it measures). */
  evalMs = 0;
  windows = 0;

  constructor(config: HealthConfigInput) {
    this.evaluator = new HealthEvaluator(resolveHealthConfig(config));
  }

  observe(w: WindowData): void {
    const t0 = performance.now();
    const out = this.evaluator.evaluate({
      nowMs: w.nowMs, batches: w.batches, xids: w.xids, heartbeats: w.heartbeats, nodes: w.nodes, jobs: w.jobs, operator: w.operator,
    });
    this.evalMs += performance.now() - t0;
    this.windows++;
    for (const d of out.nodes) {
      const bad = d.status !== 'READY';
      const o = this.open.get(d.node);
      if (bad && !o) {
        const t = d.transitions.find((x) => x.from === 'READY');
        const iv: Interval = { node: d.node, fromMs: w.nowMs, reason: t?.reason ?? d.hold?.reason ?? d.status, quarantined: d.status === 'QUARANTINED' };
        this.alarms.push(iv);
        this.open.set(d.node, iv);
      } else if (bad && o && d.status === 'QUARANTINED') {
        o.quarantined = true;
      } else if (!bad && o) {
        o.toMs = w.nowMs;
        this.open.delete(d.node);
      }
    }
    const active = new Set<string>();
    for (const f of out.sharedFaults.filter((x: SharedFaultFlag) => x.active)) {
      const key = `${f.kind}:${f.target}`;
      active.add(key);
      if (!this.openShared.has(key)) {
        const iv: SharedInterval = { kind: f.kind, target: f.target, fromMs: w.nowMs };
        this.shared.push(iv);
        this.openShared.set(key, iv);
      }
    }
    for (const [key, iv] of this.openShared) {
      if (!active.has(key)) {
        iv.toMs = w.nowMs;
        this.openShared.delete(key);
      }
    }
    this.findings.push(...out.findings);
    // A lemon flag lasts as long as its incidents stay in the window: keep every node flagged at any time.
    for (const l of out.lemons) if (!this.lemons.some((x) => x.node === l.node)) this.lemons.push(l);
  }

  result(): DetectorResult {
    return { name: this.name, alarms: this.alarms, shared: this.shared, findings: this.findings, lemons: this.lemons };
  }
}
