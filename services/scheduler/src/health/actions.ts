// What XIDs, a missing GPU and operators do to a node record: actions for the scheduler and
// holds that keep the node out until it is remediated or released.
import type { XidEvent } from '@gantry/proto';
import type { HealthConfig } from './config.js';
import { move } from './hysteresis.js';
import type { NodeRecord } from './state.js';
import type { HealthAction, HealthTransition, HealthWindowInput } from './types.js';
import { ACTION_RANK, decideXid, isHardAction, type XidAction } from './xid-actions.js';

const SEEN_XID_CAP = 200;
const XID_HISTORY_MS = 7 * 86_400_000;

export const timeOf = (x: { time?: Date | undefined }, fallback: number): number => x.time?.getTime() ?? fallback;

/** Clears what a release or remediation makes stale: evidence, XID points, missing GPUs, learned inventory. */
export function clearEvidence(rec: NodeRecord): void {
  for (const s of Object.values(rec.signals)) s.evidence = 0;
  rec.xidPoints = {};
  rec.streak = { suspectAbove: 0, suspectBelow: 0, quarantineAbove: 0, quarantineBelow: 0 };
  rec.inventory = [];
  for (const [uuid, g] of Object.entries(rec.gpus)) {
    // A GPU still gone after the repair is forgotten; it comes back as new if it returns.
    if (g.missing > 0) {
      delete rec.gpus[uuid];
      continue;
    }
    g.nvlink = null;
    g.missingReported = false;
  }
}

export function applyOperator(rec: NodeRecord, node: string, input: HealthWindowInput, out: HealthTransition[]): void {
  for (const op of input.operator ?? []) {
    if (op.node !== node) continue;
    const why = op.reason ? `: ${op.reason}` : '';
    if (op.action === 'quarantine') {
      rec.hold = { action: 'quarantine-now', reason: `quarantined by operator${why}`, sinceMs: input.nowMs };
      continue;
    }
    delete rec.hold;
    clearEvidence(rec);
    if (op.action === 'release') {
      rec.quarantineByScore = false;
      move(rec, node, 'READY', input.nowMs, `released by operator${why}`, out);
    } else if (rec.status === 'QUARANTINED') {
      // Remediated: the node must now stay clean for quarantine.exitWindows to be READY.
      rec.quarantineByScore = true;
    }
  }
}

/** Strongest hold wins; a new hold of equal strength does not replace an older one. */
export function hold(rec: NodeRecord, action: XidAction, reason: string, atMs: number): boolean {
  if (!isHardAction(action)) return false;
  if (rec.hold && ACTION_RANK[rec.hold.action] >= ACTION_RANK[action]) return false;
  rec.hold = { action, reason, sinceMs: atMs };
  return true;
}

/** Decays XID points by cause class. */
export function decayXidPoints(rec: NodeRecord, factor: number): void {
  for (const [cls, pts] of Object.entries(rec.xidPoints)) {
    const d = pts * factor;
    if (d < 0.01) delete rec.xidPoints[cls];
    else rec.xidPoints[cls] = d;
  }
}

/** Applies the window's XIDs, de-duplicated by event id (a redelivered event is not acted on twice). */
export function applyXids(rec: NodeRecord, node: string, events: readonly XidEvent[], nowMs: number, config: HealthConfig): HealthAction[] {
  const out: HealthAction[] = [];
  for (const x of [...events].sort((a, b) => timeOf(a, nowMs) - timeOf(b, nowMs))) {
    if (x.eventId && rec.seenXids.includes(x.eventId)) continue;
    if (x.eventId) rec.seenXids = [...rec.seenXids, x.eventId].slice(-SEEN_XID_CAP);
    const a = applyXid(rec, node, x, nowMs, config);
    if (a) out.push(a);
  }
  return out;
}

function applyXid(rec: NodeRecord, node: string, x: XidEvent, nowMs: number, config: HealthConfig): HealthAction | undefined {
  const at = timeOf(x, nowMs);
  const gpuKey = (x.gpuUuid && rec.gpus[x.gpuUuid] ? x.gpuUuid : undefined)
    ?? Object.keys(rec.gpus).find((u) => x.gpuIndex !== undefined && rec.gpus[u]!.index === x.gpuIndex);
  const gpu = gpuKey ? rec.gpus[gpuKey] : undefined;
  const within = (config.xid.policy[x.xid]?.repeat?.withinSec ?? 0) * 1000;
  const earlier = gpu ? gpu.xids.filter(([t, id]) => id === x.xid && t >= at - within).length : 0;
  const d = decideXid(x, config.xid.policy, config.xid.unknownAction, { remapFailure: gpu?.remapFailure ?? false, earlierOnGpu: earlier });
  if (gpu) gpu.xids = [...gpu.xids.filter(([t]) => t >= at - XID_HISTORY_MS), [at, x.xid] as [number, number]].slice(-20);
  if (d.action === 'warn') {
    const cls = x.causeClass || 'unknown';
    rec.xidPoints[cls] = Math.min(config.xid.maxPointsPerClass, (rec.xidPoints[cls] ?? 0) + config.xid.warnPoints);
  }
  if (d.action === 'ignore') return undefined;
  const where = x.gpuIndex !== undefined ? ` on GPU ${x.gpuIndex}` : '';
  const reason = `${d.rule} (${x.mnemonic || 'XID'}${where})`;
  hold(rec, d.action, reason, at);
  const a: HealthAction = { node, action: d.action, atMs: at, reason, xid: x.xid };
  if (x.gpuIndex !== undefined) a.gpu = x.gpuIndex;
  if (x.gpuUuid) a.gpuUuid = x.gpuUuid;
  if (x.eventId) a.eventId = x.eventId;
  return a;
}

/** GPUs gone from the inventory: the configured action, as for an XID. */
export function applyMissing(rec: NodeRecord, node: string, missing: ReadonlyArray<{ uuid: string; index: number }>, nowMs: number, config: HealthConfig): HealthAction[] {
  const out: HealthAction[] = [];
  for (const m of missing) {
    const reason = `GPU ${m.uuid}${m.index >= 0 ? ` (index ${m.index})` : ''} is missing from the inventory`;
    const a: HealthAction = { node, action: config.inventory.action, atMs: nowMs, reason, gpuUuid: m.uuid };
    if (m.index >= 0) a.gpu = m.index;
    out.push(a);
    hold(rec, config.inventory.action, reason, nowMs);
  }
  return out;
}
