// The cross-node aggregator. A per-node view cannot tell "this host's NFS client is sick"
// from "the NFS server is sick": both look like high RTT on the host. Across nodes it can:
// when many of the nodes on one storage target (server:/export), one leaf switch, or one
// management segment deviate from their OWN baselines in the same window, the cause is the
// shared thing. The target is flagged and its signals are taken off its hosts' scores, so a
// storage or fabric fault never quarantines the hosts behind it.
import type { HealthConfig } from './config.js';
import { robustZ, summarize, type RobustSummary } from './robust.js';
import type { SharedGroup, SignalSpec } from './signals.js';
import type { SharedRecord } from './state.js';
import type { SharedFaultFlag } from './types.js';

export interface GroupSignal {
  key: string;
  spec: SignalSpec;
  /** z against the node's own baseline when it has one, else the scoring z. */
  degradeZ: number;
}

export interface NodeGroupView {
  node: string;
  /** Storage targets the node mounts. */
  mounts: readonly string[];
  /** Fabric / management segment (leaf switch); nodes without one share "cluster". */
  segment: string;
  /** Whether the node reported fabric signals / heartbeats this window (membership). */
  fabric: boolean;
  management: boolean;
  signals: readonly GroupSignal[];
}

/** Which shared target a grouped signal of a node belongs to. */
export function targetOf(group: SharedGroup, keyTarget: string | undefined, segment: string): string | undefined {
  if (group === 'storage') return keyTarget === undefined ? undefined : `storage:${keyTarget}`;
  return `${group}:${segment}`;
}

export interface SharedResult {
  records: Record<string, SharedRecord>;
  /** Flags active now or cleared in this window. */
  flags: SharedFaultFlag[];
  /** Active target ids, and per target the nodes degraded in this window. */
  active: Map<string, Set<string>>;
}

export function aggregateShared(
  views: readonly NodeGroupView[],
  prev: Readonly<Record<string, SharedRecord>>,
  nowMs: number,
  config: HealthConfig,
): SharedResult {
  const c = config.shared;
  const members = new Map<string, Set<string>>();
  const degraded = new Map<string, Set<string>>();
  const why = new Map<string, Set<string>>();
  const add = (m: Map<string, Set<string>>, k: string, v: string): void => {
    let s = m.get(k);
    if (!s) m.set(k, (s = new Set()));
    s.add(v);
  };
  for (const v of views) {
    for (const t of v.mounts) add(members, `storage:${t}`, v.node);
    if (v.fabric) add(members, `fabric:${v.segment}`, v.node);
    if (v.management) add(members, `management:${v.segment}`, v.node);
    for (const s of v.signals) {
      if (!s.spec.group || s.spec.sharedEvidence === false || s.degradeZ < c.degradedZ) continue;
      const at = s.key.indexOf('@');
      const target = targetOf(s.spec.group, at < 0 ? undefined : s.key.slice(at + 1), v.segment);
      if (!target) continue;
      add(degraded, target, v.node);
      add(why, target, at < 0 ? s.key : s.key.slice(0, at));
    }
  }

  const records: Record<string, SharedRecord> = {};
  const flags: SharedFaultFlag[] = [];
  const active = new Map<string, Set<string>>();
  const ids = new Set([...Object.keys(prev), ...degraded.keys()]);
  for (const id of [...ids].sort()) {
    const total = members.get(id)?.size ?? 0;
    const bad = degraded.get(id) ?? new Set<string>();
    const hit = bad.size >= c.minNodes && total > 0 && bad.size / total >= c.minFraction;
    const kind = id.slice(0, id.indexOf(':')) as SharedRecord['kind'];
    const target = id.slice(id.indexOf(':') + 1);
    const p = prev[id] ?? { kind, target, active: false, sinceMs: nowMs, above: 0, below: 0 };
    const r: SharedRecord = { ...p, above: hit ? p.above + 1 : 0, below: hit ? 0 : p.below + 1 };
    let cleared = false;
    if (!r.active && r.above >= c.enterWindows) {
      r.active = true;
      r.sinceMs = nowMs;
    } else if (r.active && r.below >= c.exitWindows) {
      r.active = false;
      cleared = true;
    }
    // Forget targets that are quiet and inactive; they come back when they degrade.
    if (r.active || r.above > 0 || cleared) records[id] = r;
    if (r.active) active.set(id, bad);
    if (r.active || cleared) {
      flags.push({
        kind, target, active: r.active, sinceMs: r.sinceMs, ...(cleared ? { clearedMs: nowMs } : {}),
        degradedNodes: [...bad].sort(), totalNodes: total, signals: [...(why.get(id) ?? [])].sort(),
      });
    }
  }
  return { records, flags, active };
}

export interface GroupScored {
  key: string;
  spec: SignalSpec;
  target: string | undefined;
  value: number | undefined;
  z: number;
  attributedTo: string | undefined;
}

/**
 * Takes the signals of active shared faults off their hosts' scores. Each host is judged
 * only against the other degraded nodes of the target: one that stands far out even among
 * them (the source of a PFC storm) keeps its score for that signal.
 */
export function attributeShared(
  scored: ReadonlyMap<string, readonly GroupScored[]>,
  valueOf: (node: string, key: string) => number | undefined,
  segmentOf: (node: string) => string,
  active: ReadonlyMap<string, ReadonlySet<string>>,
  config: HealthConfig,
): void {
  if (active.size === 0) return;
  const among = new Map<string, RobustSummary | undefined>();
  for (const [node, list] of scored) {
    for (const s of list) {
      if (!s.spec.group || s.value === undefined) continue;
      const target = targetOf(s.spec.group, s.target, segmentOf(node));
      const bad = target ? active.get(target) : undefined;
      if (!bad || !target) continue;
      const k = `${target}|${s.key}`;
      if (!among.has(k)) {
        const vals = [...bad].map((n) => valueOf(n, s.key)).filter((x): x is number => x !== undefined);
        among.set(k, vals.length >= config.shared.minNodes ? summarize(vals, s.spec.floor) : undefined);
      }
      const sum = among.get(k);
      const z = sum ? robustZ(s.value, sum, s.spec.direction) : 0;
      if (z >= config.shared.outlierZ) s.z = Math.min(s.z, z);
      else {
        s.z = 0;
        s.attributedTo = target;
      }
    }
  }
}
