// The health config: every threshold the detector uses, typed, with defaults, meant to be
// stored beside the scheduling config (same YAML/JSON document style, same admin get/set
// path). parseHealthConfig validates a document and reports every problem with its path;
// resolveHealthConfig fills defaults into a trusted partial one.
import { DEFAULT_SIGNALS, SIGNAL_NAMES, isSignalName, type SignalName, type SignalSpec } from './signals.js';
import { Validator, join, type NumberRule } from '../config-validator.js';
import { DEFAULT_XID_POLICY, XID_ACTIONS, type XidAction, type XidPolicyEntry } from './xid-actions.js';

/**
 * READY -> SUSPECT after suspect.enterWindows windows at or above suspect.enter; back after
 * suspect.exitWindows below suspect.exit. READY|SUSPECT -> QUARANTINED after
 * quarantine.enterWindows at or above quarantine.enter; a quarantine the score caused (not an
 * XID or a missing GPU, which hold until remediated) ends, when autoRelease is on, after
 * quarantine.exitWindows below quarantine.exit, straight to READY.
 */
export interface HysteresisLevel {
  /** Score at or above which a window counts toward entering the state. */
  enter: number;
  /** Score below which a window counts toward leaving it (lower than enter: hysteresis). */
  exit: number;
  /** Consecutive windows at or above `enter` to enter. */
  enterWindows: number;
  /** Consecutive windows below `exit` to leave. */
  exitWindows: number;
}

export interface HealthConfig {
  /** The evaluation period the scheduler uses. Decay uses the real time between evaluations. */
  windowSec: number;
  /**
   * A node's own baseline: each signal keeps `buckets` samples, one per `bucketSec` (the mean
   * of the windows in it that were not anomalous), and is ready after `minBuckets`. A window
   * whose z-score against the baseline is `learnBelowZ` or more is not learned, so a fault
   * never becomes the node's normal.
   */
  baseline: { bucketSec: number; buckets: number; minBuckets: number; learnBelowZ: number };
  /** Fewer nodes reporting a signal than this and peers are not compared. */
  peers: { minPeers: number };
  /**
   * z-scores below deadZ count nothing; above, they count up to capZ; the result decays with
   * halfLifeSec (an exponentially weighted mean), so a single spike fades and a sustained
   * deviation builds up.
   */
  deviation: { deadZ: number; capZ: number; halfLifeSec: number };
  signals: Record<SignalName, SignalSpec>;
  states: { suspect: HysteresisLevel; quarantine: HysteresisLevel & { autoRelease: boolean } };
  xid: {
    policy: Record<number, XidPolicyEntry>;
    unknownAction: XidAction;
    /** Score points a `warn` XID adds; they decay with halfLifeSec and are capped per class. */
    warnPoints: number;
    halfLifeSec: number;
    maxPointsPerClass: number;
  };
  /** A GPU gone from the inventory for `missingBatches` batches in a row triggers `action`. */
  inventory: { action: XidAction; missingBatches: number };
  /**
   * A storage target, fabric segment (leaf switch) or management segment is degraded when at
   * least minNodes and minFraction of its nodes deviate (own z >= degradedZ) on its signals in
   * the same window; it is flagged after enterWindows such windows and cleared after
   * exitWindows without. While flagged, its signals do not count against its hosts, except a
   * host that stands out among the degraded ones by outlierZ (the source of a PFC storm).
   */
  shared: { minNodes: number; minFraction: number; degradedZ: number; enterWindows: number; exitWindows: number; outlierZ: number };
  /**
   * A job is hung when, for silentSec, it wrote no log line and either all its GPUs were idle
   * (below idleUtilPercent) or NCCL watchdog/timeout lines came from at least
   * minNcclNodeFraction of its nodes.
   */
  hang: { silentSec: number; idleUtilPercent: number; minNcclNodeFraction: number };
  /**
   * A node is a straggler when its effective throughput (utilisation x clock ratio) stays
   * below `ratio` x the median of its job's other nodes for `windows` windows, while those
   * run at minPeerUtil or more; jobs of fewer than minNodes nodes are not judged.
   */
  straggler: { ratio: number; minPeerUtil: number; windows: number; minNodes: number };
  /** `incidents` incidents (quarantines, hard XIDs, named hangs/stragglers) within windowSec make a lemon. */
  lemon: { incidents: number; windowSec: number };
  /** GPU gauges (temperature, clocks, power) are compared only on GPUs at least this busy. */
  busyUtilPercent: number;
}

const DAY = 86_400;

export const DEFAULT_HEALTH_CONFIG: HealthConfig = {
  windowSec: 60,
  baseline: { bucketSec: 3_600, buckets: 48, minBuckets: 6, learnBelowZ: 3 },
  peers: { minPeers: 5 },
  deviation: { deadZ: 3, capZ: 10, halfLifeSec: 600 },
  signals: { ...DEFAULT_SIGNALS },
  states: {
    suspect: { enter: 4, exit: 2, enterWindows: 2, exitWindows: 6 },
    quarantine: { enter: 12, exit: 2, enterWindows: 3, exitWindows: 12, autoRelease: true },
  },
  xid: { policy: { ...DEFAULT_XID_POLICY }, unknownAction: 'warn', warnPoints: 2.5, halfLifeSec: 6 * 3_600, maxPointsPerClass: 6 },
  inventory: { action: 'quarantine-now', missingBatches: 2 },
  shared: { minNodes: 3, minFraction: 0.25, degradedZ: 4, enterWindows: 1, exitWindows: 3, outlierZ: 6 },
  hang: { silentSec: 600, idleUtilPercent: 5, minNcclNodeFraction: 0.5 },
  straggler: { ratio: 0.8, minPeerUtil: 50, windows: 3, minNodes: 3 },
  lemon: { incidents: 3, windowSec: 14 * DAY },
  busyUtilPercent: 50,
};

type Section<T> = { [K in keyof T]?: T[K] };

/** What callers may pass: any subset; defaults fill the rest. */
export interface HealthConfigInput {
  windowSec?: number;
  baseline?: Section<HealthConfig['baseline']>;
  peers?: Section<HealthConfig['peers']>;
  deviation?: Section<HealthConfig['deviation']>;
  signals?: Partial<Record<SignalName, Partial<SignalSpec>>>;
  states?: { suspect?: Partial<HysteresisLevel>; quarantine?: Partial<HealthConfig['states']['quarantine']> };
  xid?: Omit<Section<HealthConfig['xid']>, 'policy'> & { policy?: Record<number, XidPolicyEntry> };
  inventory?: Section<HealthConfig['inventory']>;
  shared?: Section<HealthConfig['shared']>;
  hang?: Section<HealthConfig['hang']>;
  straggler?: Section<HealthConfig['straggler']>;
  lemon?: Section<HealthConfig['lemon']>;
  busyUtilPercent?: number;
}

function defined<T extends object>(o: T | undefined): Partial<T> {
  const out: Partial<T> = {};
  if (!o) return out;
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

export function resolveHealthConfig(input: HealthConfigInput = {}): HealthConfig {
  const d = DEFAULT_HEALTH_CONFIG;
  const signals = { ...d.signals };
  for (const [name, spec] of Object.entries(input.signals ?? {})) {
    if (isSignalName(name)) signals[name] = { ...signals[name], ...defined(spec) };
  }
  return {
    windowSec: input.windowSec ?? d.windowSec,
    baseline: { ...d.baseline, ...defined(input.baseline) },
    peers: { ...d.peers, ...defined(input.peers) },
    deviation: { ...d.deviation, ...defined(input.deviation) },
    signals,
    states: {
      suspect: { ...d.states.suspect, ...defined(input.states?.suspect) },
      quarantine: { ...d.states.quarantine, ...defined(input.states?.quarantine) },
    },
    xid: {
      ...d.xid,
      ...defined({ ...input.xid, policy: undefined }),
      // Overrides replace whole entries, merged over the seeded policy.
      policy: { ...d.xid.policy, ...(input.xid?.policy ?? {}) },
    },
    inventory: { ...d.inventory, ...defined(input.inventory) },
    shared: { ...d.shared, ...defined(input.shared) },
    hang: { ...d.hang, ...defined(input.hang) },
    straggler: { ...d.straggler, ...defined(input.straggler) },
    lemon: { ...d.lemon, ...defined(input.lemon) },
    busyUtilPercent: input.busyUtilPercent ?? d.busyUtilPercent,
  };
}

export class HealthConfigError extends Error {
  override readonly name = 'HealthConfigError';
  constructor(readonly issues: string[]) {
    super(`invalid health config:\n  ${issues.join('\n  ')}`);
  }
}

const POS: NumberRule = { above: 0 };
const NONNEG: NumberRule = { min: 0 };
const COUNT: NumberRule = { min: 1, integer: true };
const FRACTION: NumberRule = { above: 0, max: 1 };

const LEVEL_RULES = { enter: NONNEG, exit: NONNEG, enterWindows: COUNT, exitWindows: COUNT } as const;

/** Validates a parsed YAML/JSON document; throws HealthConfigError listing every problem. */
export function parseHealthConfig(doc: unknown): HealthConfig {
  const v = new Validator();
  const input: HealthConfigInput = {};
  const root = v.object(doc ?? {}, '', ['windowSec', 'baseline', 'peers', 'deviation', 'signals', 'states', 'xid', 'inventory',
    'shared', 'hang', 'straggler', 'lemon', 'busyUtilPercent']);
  if (root) {
    const windowSec = v.number(root.windowSec, 'windowSec', POS);
    if (windowSec !== undefined) input.windowSec = windowSec;
    const busy = v.number(root.busyUtilPercent, 'busyUtilPercent', { min: 0, max: 100 });
    if (busy !== undefined) input.busyUtilPercent = busy;
    if (root.baseline !== undefined) input.baseline = v.numbers(root.baseline, 'baseline', { bucketSec: POS, buckets: COUNT, minBuckets: COUNT, learnBelowZ: POS });
    if (root.peers !== undefined) input.peers = v.numbers(root.peers, 'peers', { minPeers: { min: 2, integer: true } });
    if (root.deviation !== undefined) input.deviation = v.numbers(root.deviation, 'deviation', { deadZ: NONNEG, capZ: POS, halfLifeSec: POS });
    if (root.signals !== undefined) input.signals = parseSignals(v, root.signals);
    if (root.states !== undefined) input.states = parseStates(v, root.states);
    if (root.xid !== undefined) input.xid = parseXid(v, root.xid);
    if (root.inventory !== undefined) {
      const o = v.object(root.inventory, 'inventory', ['action', 'missingBatches']);
      if (o) input.inventory = { action: v.oneOf(o.action, 'inventory.action', XID_ACTIONS), missingBatches: v.number(o.missingBatches, 'inventory.missingBatches', COUNT) };
    }
    if (root.shared !== undefined) {
      input.shared = v.numbers(root.shared, 'shared', { minNodes: { min: 2, integer: true }, minFraction: FRACTION, degradedZ: POS, enterWindows: COUNT, exitWindows: COUNT, outlierZ: POS });
    }
    if (root.hang !== undefined) input.hang = v.numbers(root.hang, 'hang', { silentSec: POS, idleUtilPercent: { min: 0, max: 100 }, minNcclNodeFraction: FRACTION });
    if (root.straggler !== undefined) {
      input.straggler = v.numbers(root.straggler, 'straggler', { ratio: { above: 0, max: 1 }, minPeerUtil: { min: 0, max: 100 }, windows: COUNT, minNodes: { min: 2, integer: true } });
    }
    if (root.lemon !== undefined) input.lemon = v.numbers(root.lemon, 'lemon', { incidents: COUNT, windowSec: POS });
  }
  if (v.issues.length === 0) checkConsistency(resolveHealthConfig(input), v.issues);
  if (v.issues.length > 0) throw new HealthConfigError(v.issues);
  return resolveHealthConfig(input);
}

function parseSignals(v: Validator, raw: unknown): HealthConfigInput['signals'] {
  const o = v.object(raw, 'signals', SIGNAL_NAMES);
  if (!o) return undefined;
  const out: NonNullable<HealthConfigInput['signals']> = {};
  for (const name of SIGNAL_NAMES) {
    if (o[name] === undefined) continue;
    const path = `signals.${name}`;
    const s = v.object(o[name], path, ['weight', 'floor', 'direction', 'mode', 'group', 'aggregate', 'unit', 'sharedEvidence']);
    if (!s) continue;
    const spec: Partial<SignalSpec> = {};
    const weight = v.number(s.weight, `${path}.weight`, NONNEG);
    if (weight !== undefined) spec.weight = weight;
    const floor = v.number(s.floor, `${path}.floor`, POS);
    if (floor !== undefined) spec.floor = floor;
    const direction = v.oneOf(s.direction, `${path}.direction`, ['high', 'low', 'both'] as const);
    if (direction !== undefined) spec.direction = direction;
    const mode = v.oneOf(s.mode, `${path}.mode`, ['relative', 'absolute', 'flag'] as const);
    if (mode !== undefined) spec.mode = mode;
    const group = v.oneOf(s.group, `${path}.group`, ['storage', 'fabric', 'management'] as const);
    if (group !== undefined) spec.group = group;
    const aggregate = v.oneOf(s.aggregate, `${path}.aggregate`, ['mean', 'max'] as const);
    if (aggregate !== undefined) spec.aggregate = aggregate;
    const se = v.boolean(s.sharedEvidence, `${path}.sharedEvidence`);
    if (se !== undefined) spec.sharedEvidence = se;
    if (s.unit !== undefined) {
      if (typeof s.unit === 'string') spec.unit = s.unit;
      else v.issues.push(`${path}.unit: expected a string`);
    }
    out[name] = spec;
  }
  return out;
}

function parseStates(v: Validator, raw: unknown): HealthConfigInput['states'] {
  const o = v.object(raw, 'states', ['suspect', 'quarantine']);
  if (!o) return undefined;
  const out: NonNullable<HealthConfigInput['states']> = {};
  if (o.suspect !== undefined) out.suspect = v.numbers(o.suspect, 'states.suspect', LEVEL_RULES);
  if (o.quarantine !== undefined) {
    const q = v.object(o.quarantine, 'states.quarantine', [...Object.keys(LEVEL_RULES), 'autoRelease']);
    if (q) {
      const { autoRelease, ...levels } = q;
      const parsed = v.numbers(levels, 'states.quarantine', LEVEL_RULES) ?? {};
      const ar = v.boolean(autoRelease, 'states.quarantine.autoRelease');
      out.quarantine = { ...parsed, ...(ar !== undefined ? { autoRelease: ar } : {}) };
    }
  }
  return out;
}

function parseXid(v: Validator, raw: unknown): HealthConfigInput['xid'] {
  const o = v.object(raw, 'xid', ['policy', 'unknownAction', 'warnPoints', 'halfLifeSec', 'maxPointsPerClass']);
  if (!o) return undefined;
  const out: NonNullable<HealthConfigInput['xid']> = {};
  const unknown = v.oneOf(o.unknownAction, 'xid.unknownAction', XID_ACTIONS);
  if (unknown !== undefined) out.unknownAction = unknown;
  const wp = v.number(o.warnPoints, 'xid.warnPoints', NONNEG);
  if (wp !== undefined) out.warnPoints = wp;
  const hl = v.number(o.halfLifeSec, 'xid.halfLifeSec', POS);
  if (hl !== undefined) out.halfLifeSec = hl;
  const mp = v.number(o.maxPointsPerClass, 'xid.maxPointsPerClass', NONNEG);
  if (mp !== undefined) out.maxPointsPerClass = mp;
  if (o.policy !== undefined) {
    const p = v.object(o.policy, 'xid.policy');
    if (p) {
      out.policy = {};
      for (const [key, entry] of Object.entries(p)) {
        const path = join('xid.policy', key);
        const xid = Number(key);
        if (!/^\d+$/.test(key) || xid > 65_535) {
          v.issues.push(`${path}: expected an XID number as the key`);
          continue;
        }
        const parsed = parseXidEntry(v, entry, path);
        if (parsed) out.policy[xid] = parsed;
      }
    }
  }
  return out;
}

/** An entry is an action name ("reset-gpu") or {action, nonfatalAction?, remapFailureAction?, repeat?}. */
function parseXidEntry(v: Validator, raw: unknown, path: string): XidPolicyEntry | undefined {
  if (typeof raw === 'string') {
    const action = v.oneOf(raw, path, XID_ACTIONS);
    return action ? { action } : undefined;
  }
  const o = v.object(raw, path, ['action', 'nonfatalAction', 'remapFailureAction', 'repeat']);
  if (!o) return undefined;
  if (o.action === undefined) v.issues.push(`${path}.action: required`);
  const action = v.oneOf(o.action, `${path}.action`, XID_ACTIONS);
  const entry: XidPolicyEntry = { action: action ?? 'warn' };
  const nonfatal = v.oneOf(o.nonfatalAction, `${path}.nonfatalAction`, XID_ACTIONS);
  if (nonfatal) entry.nonfatalAction = nonfatal;
  const remap = v.oneOf(o.remapFailureAction, `${path}.remapFailureAction`, XID_ACTIONS);
  if (remap) entry.remapFailureAction = remap;
  if (o.repeat !== undefined) {
    const r = v.object(o.repeat, `${path}.repeat`, ['count', 'withinSec', 'action']);
    if (r) {
      const count = v.number(r.count, `${path}.repeat.count`, { min: 2, integer: true });
      const withinSec = v.number(r.withinSec, `${path}.repeat.withinSec`, POS);
      const ra = v.oneOf(r.action, `${path}.repeat.action`, XID_ACTIONS);
      for (const [k, val] of [['count', count], ['withinSec', withinSec], ['action', ra]] as const) {
        if (val === undefined && r[k] === undefined) v.issues.push(`${path}.repeat.${k}: required`);
      }
      if (count !== undefined && withinSec !== undefined && ra !== undefined) entry.repeat = { count, withinSec, action: ra };
    }
  }
  return action ? entry : undefined;
}

/** Relations between fields that no single field's rule can see. */
function checkConsistency(c: HealthConfig, issues: string[]): void {
  for (const level of ['suspect', 'quarantine'] as const) {
    const l = c.states[level];
    if (l.exit > l.enter) issues.push(`states.${level}.exit: must not exceed states.${level}.enter (${l.enter}), got ${l.exit}`);
  }
  // Leaving QUARANTINED lands in READY (the node state table has no QUARANTINED -> SUSPECT),
  // so it must not land at a score that would count toward SUSPECT again at once.
  if (c.states.quarantine.exit > c.states.suspect.enter) {
    issues.push(`states.quarantine.exit: must not exceed states.suspect.enter (${c.states.suspect.enter}), got ${c.states.quarantine.exit}`);
  }
  if (c.states.quarantine.enter < c.states.suspect.enter) {
    issues.push(`states.quarantine.enter: must be at least states.suspect.enter (${c.states.suspect.enter}), got ${c.states.quarantine.enter}`);
  }
  if (c.deviation.capZ <= c.deviation.deadZ) issues.push(`deviation.capZ: must exceed deviation.deadZ (${c.deviation.deadZ}), got ${c.deviation.capZ}`);
  if (c.baseline.minBuckets > c.baseline.buckets) issues.push(`baseline.minBuckets: must not exceed baseline.buckets (${c.baseline.buckets}), got ${c.baseline.minBuckets}`);
  if (c.baseline.bucketSec < c.windowSec) issues.push(`baseline.bucketSec: must be at least windowSec (${c.windowSec}), got ${c.baseline.bucketSec}`);
}
