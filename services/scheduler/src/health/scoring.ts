// Per-signal judgement: z-scores against the node's own baseline and against its peers, the
// decayed evidence that turns them into score points, and the baseline learning. Kept as
// small functions over one node at a time (the per-window hot path of the detector).
import type { HealthConfig } from './config.js';
import { clamp, medianAndMad, robustZ, summarize, MAD_TO_SIGMA, type RobustSummary } from './robust.js';
import { parseSignalKey, type SignalSpec } from './signals.js';
import { newSignal, type NodeRecord, type SignalRecord } from './state.js';
import type { SignalValue } from './extract.js';
import type { HealthReason } from './types.js';

export interface Scored {
  key: string;
  spec: SignalSpec;
  sig: SignalRecord | undefined;
  target: string | undefined;
  value: number | undefined;
  gpu: number | undefined;
  ownMedian: number | undefined;
  peerMedian: number | undefined;
  zOwn: number | undefined;
  zPeer: number | undefined;
  /** The z-score that counts (by the signal's mode), before the dead band. */
  z: number;
  /** Set when a shared fault took this signal off the host's score. */
  attributedTo: string | undefined;
}

/** No signal's reading comes anywhere near 1e15 (rates, gauges, counts); beyond it is garbage. */
export const MAX_READING = 1e15;
const plausible = (x: number): boolean => Number.isFinite(x) && Math.abs(x) <= MAX_READING;

const keyCache = new Map<string, ReturnType<typeof parseSignalKey>>();

/** Signal keys repeat every window; parse each once (bounded by the key space). */
export function parsedKey(key: string): ReturnType<typeof parseSignalKey> {
  let p = keyCache.get(key);
  if (p === undefined && !keyCache.has(key)) {
    p = parseSignalKey(key);
    if (keyCache.size < 100_000) keyCache.set(key, p);
  }
  return p;
}

/** Peer statistics per (peer group, signal key), computed lazily once per window. */
export class PeerTable {
  private readonly values = new Map<string, Map<string, number[]>>();
  private readonly stats = new Map<string, Map<string, RobustSummary | undefined>>();

  constructor(private readonly minPeers: number) {}

  add(group: string, key: string, value: number): void {
    if (!plausible(value)) return;
    let byKey = this.values.get(group);
    if (!byKey) this.values.set(group, (byKey = new Map()));
    const l = byKey.get(key);
    if (l) l.push(value);
    else byKey.set(key, [value]);
  }

  summary(group: string, key: string, floor: number): RobustSummary | undefined {
    let byKey = this.stats.get(group);
    if (!byKey) this.stats.set(group, (byKey = new Map()));
    let s = byKey.get(key);
    if (s === undefined && !byKey.has(key)) {
      const vals = this.values.get(group)?.get(key) ?? [];
      s = vals.length >= this.minPeers ? summarize(vals, floor) : undefined;
      byKey.set(key, s);
    }
    return s;
  }
}

/** robustZ without building a summary object (the per-signal hot path). */
function zOf(x: number, median: number, scale: number, direction: SignalSpec['direction']): number {
  const z = (x - median) / scale;
  const out = direction === 'high' ? z : direction === 'low' ? -z : Math.abs(z);
  return Number.isFinite(out) ? out : 0;
}

/** GPU signals are compared only among nodes with the same GPU model. */
export function peerGroup(model: string | undefined, key: string): string {
  return key.charCodeAt(0) === 103 /* g */ && key.startsWith('gpu.') ? model ?? '?' : '';
}

/** Every signal the node has a value or a record for, with its z-scores. */
export function scoreNode(rec: NodeRecord, values: ReadonlyMap<string, SignalValue>, model: string | undefined, peers: PeerTable, config: HealthConfig): Scored[] {
  const { capZ } = config.deviation;
  const minBuckets = config.baseline.minBuckets;
  const out: Scored[] = [];
  const one = (key: string, v: SignalValue | undefined, sig: SignalRecord | undefined): void => {
    const parsed = parsedKey(key);
    if (!parsed) return;
    const spec = config.signals[parsed.name];
    // Every field assigned up front: one object shape for all signals.
    const sc: Scored = {
      key, spec, sig, target: parsed.target, value: undefined, gpu: undefined, ownMedian: undefined, peerMedian: undefined,
      zOwn: undefined, zPeer: undefined, z: 0, attributedTo: undefined,
    };
    out.push(sc);
    // Non-finite or absurd readings are no readings: nothing stored may become NaN or
    // overflow to Infinity (neither survives JSON).
    if (!v || !plausible(v.value)) return;
    const x = v.value;
    sc.value = x;
    sc.gpu = v.gpu;
    if (sig && sig.ring.length >= minBuckets) {
      sc.ownMedian = sig.med;
      sc.zOwn = zOf(x, sig.med, Math.max(MAD_TO_SIGMA * sig.mad, spec.floor), spec.direction);
    }
    const peer = peers.summary(peerGroup(model, key), key, spec.floor);
    if (peer) {
      sc.peerMedian = peer.median;
      sc.zPeer = robustZ(x, peer, spec.direction);
    }
    if (spec.mode === 'flag') sc.z = x > 0 ? capZ : 0;
    else if (spec.mode === 'absolute') sc.z = sc.zPeer ?? zOf(x, 0, spec.floor, spec.direction);
    else sc.z = sc.zOwn === undefined ? 0 : sc.zPeer === undefined ? sc.zOwn : Math.min(sc.zOwn, sc.zPeer);
  };
  for (const [key, v] of values) one(key, v, rec.signals[key]);
  for (const key in rec.signals) if (!values.has(key)) one(key, undefined, rec.signals[key]);
  return out;
}

export interface EvidenceResult {
  score: number;
  reasons: HealthReason[];
}

/**
 * Decays each signal's evidence toward its new z (above the dead band), learns normal
 * windows into the baseline, closes baseline buckets, and sums the score.
 */
export function updateEvidence(rec: NodeRecord, scored: readonly Scored[], nowMs: number, decay: number, config: HealthConfig): EvidenceResult {
  const { deadZ, capZ } = config.deviation;
  const b = config.baseline;
  const bucketMs = b.bucketSec * 1000;
  const staleMs = b.buckets * bucketMs;
  const reasons: HealthReason[] = [];
  let score = 0;
  for (const s of scored) {
    const sig = s.sig ?? newSignal(nowMs);
    const has = s.value !== undefined;
    const zPlus = has ? clamp(s.z - deadZ, 0, capZ - deadZ) : 0;
    let e = s.attributedTo ? 0 : sig.evidence * decay + (1 - decay) * zPlus;
    if (e < 1e-6) e = 0;
    sig.evidence = e;
    if (has) {
      sig.lastMs = nowMs;
      // A fault must never become the node's normal: learn only unremarkable windows of a READY node.
      const normal = sig.ring.length >= b.minBuckets ? (s.zOwn ?? 0) < b.learnBelowZ : s.spec.mode === 'relative' || s.z < b.learnBelowZ;
      // (A sum of huge finite readings can still overflow; such a window is not learned.)
      const sum = sig.accSum + s.value!;
      if (s.spec.mode !== 'flag' && rec.status === 'READY' && !s.attributedTo && normal && Number.isFinite(sum)) {
        sig.accSum = sum;
        sig.accN += 1;
      }
    }
    if (nowMs - sig.bucketStartMs >= bucketMs) closeBucket(sig, nowMs, b.buckets);
    if (!has && e === 0 && nowMs - sig.lastMs > staleMs) {
      delete rec.signals[s.key];
      continue;
    }
    if (!s.sig) rec.signals[s.key] = sig;
    const contribution = s.spec.weight * e;
    score += contribution;
    if (has && (contribution >= 0.05 || s.attributedTo)) reasons.push(reasonOf(s, contribution));
  }
  return { score, reasons };
}

function closeBucket(sig: SignalRecord, nowMs: number, buckets: number): void {
  if (sig.accN > 0) {
    const ring = sig.ring.length >= buckets ? sig.ring.slice(1 - buckets) : sig.ring.slice();
    // `+ 0` turns an underflowed -0 into 0: JSON cannot carry -0, and a replica must resume
    // from exactly what was saved.
    ring.push(sig.accSum / sig.accN + 0);
    sig.ring = ring;
    const mm = medianAndMad(ring);
    sig.med = (mm?.median ?? 0) + 0;
    sig.mad = (mm?.mad ?? 0) + 0;
  }
  sig.accSum = 0;
  sig.accN = 0;
  sig.bucketStartMs = nowMs;
}

function reasonOf(s: Scored, contribution: number): HealthReason {
  const r: HealthReason = { signal: s.key, value: s.value!, weight: s.spec.weight, contribution };
  if (s.ownMedian !== undefined) r.baseline = s.ownMedian;
  if (s.peerMedian !== undefined) r.peerMedian = s.peerMedian;
  if (s.zOwn !== undefined) r.zOwn = s.zOwn;
  if (s.zPeer !== undefined) r.zPeer = s.zPeer;
  if (s.gpu !== undefined) r.gpu = s.gpu;
  if (s.attributedTo) r.attributedTo = s.attributedTo;
  return r;
}
