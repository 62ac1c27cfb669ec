// What one health evaluation means for a node record: its state (READY, SUSPECT,
// QUARANTINED, or DRAINING for a drain-after-job XID), its Healthy / Held / RepeatOffender
// conditions, its lemon flag and score. Pure; the monitor commits the result through the
// node's compare-and-set path.
//
// The detector owns a node's state only while nobody else does: an operator's quarantine,
// drain or cordon, and LOST or REGISTERING, are left alone (the conditions still change).
// A hard fault (the detector quarantines) overrides an operator's drain.
import { Node, NodeState, canTransitionNode } from '@gantry/proto';
import type { HealthConfig, HealthReason, NodeDecision } from '../health/index.js';
import { CONDITION, operatorDraining, operatorQuarantined, sameConditions, withCondition, withoutCondition } from '../nodes/conditions.js';

export interface HealthNodeUpdate {
  next: Node;
  /** For the node event (used when the state changes). */
  reason: string;
  /** The node left service in this evaluation: the jobs on it go to recovery. */
  evictJobs: boolean;
}

const S = NodeState;

/** "gpu.ecc_sbe_rate=120 (own 2, peers 3) +5.1 GPU 3" */
export function describeReason(r: HealthReason): string {
  const fmt = (n: number) => (Math.abs(n) >= 100 || Number.isInteger(n) ? n.toFixed(0) : n.toPrecision(3));
  const base = [r.baseline !== undefined ? `own ${fmt(r.baseline)}` : '', r.peerMedian !== undefined ? `peers ${fmt(r.peerMedian)}` : ''].filter(Boolean).join(', ');
  const where = r.gpu !== undefined ? ` GPU ${r.gpu}` : '';
  const shared = r.attributedTo ? ` (shared fault: ${r.attributedTo})` : '';
  return `${r.signal}=${fmt(r.value)}${base ? ` (${base})` : ''} +${r.contribution.toFixed(1)}${where}${r.detail ? ` ${r.detail}` : ''}${shared}`;
}

function wantedState(d: NodeDecision): NodeState {
  if (d.status === 'QUARANTINED') return S.NODE_STATE_QUARANTINED;
  if (d.hold?.action === 'drain-after-job') return S.NODE_STATE_DRAINING;
  return d.status === 'SUSPECT' ? S.NODE_STATE_SUSPECT : S.NODE_STATE_READY;
}

/** The state the detector moves the node to, or the node's own when the detector must not. */
function nextState(node: Node, want: NodeState): NodeState {
  const cur = node.state;
  if (cur === S.NODE_STATE_LOST || cur === S.NODE_STATE_REGISTERING || cur === S.NODE_STATE_UNSPECIFIED) return cur;
  if (operatorQuarantined(node)) return cur;
  if (want === S.NODE_STATE_QUARANTINED) return want;
  if (operatorDraining(node)) return cur;
  // A drain the detector started ends only when the detector's hold does.
  if (cur === S.NODE_STATE_DRAINED && want === S.NODE_STATE_DRAINING) return cur;
  return cur === want || canTransitionNode(cur, want) ? want : cur;
}

function healthyCondition(d: NodeDecision, config: HealthConfig): { status: boolean; reason: string; message: string } {
  const top = d.reasons.filter((r) => r.contribution > 0).slice(0, 3).map(describeReason).join('; ');
  if (d.hold) return { status: false, reason: 'Held', message: d.hold.reason };
  if (d.status === 'QUARANTINED') return { status: false, reason: 'ScoreAboveQuarantine', message: `score ${d.score.toFixed(1)} (quarantine at ${config.states.quarantine.enter}): ${top}` };
  if (d.status === 'SUSPECT') return { status: false, reason: 'ScoreAboveSuspect', message: `score ${d.score.toFixed(1)} (suspect at ${config.states.suspect.enter}): ${top}` };
  return { status: true, reason: 'ScoreBelowThreshold', message: `score ${d.score.toFixed(1)}` };
}

const round = (n: number) => Math.round(n * 10) / 10;

export function applyHealthDecision(node: Node, d: NodeDecision, config: HealthConfig, now: Date): HealthNodeUpdate | undefined {
  const healthy = healthyCondition(d, config);
  const evidence = d.reasons.filter((r) => r.contribution > 0 || r.attributedTo).slice(0, 8).map(describeReason);
  let conditions = withCondition(node.conditions, { type: CONDITION.healthy, ...healthy, evidence }, now);
  conditions = d.hold
    ? withCondition(conditions, { type: CONDITION.held, status: true, reason: actionReason(d.hold.action), message: d.hold.reason, since: new Date(d.hold.sinceMs) }, now)
    : withoutCondition(conditions, CONDITION.held);
  conditions = d.lemon
    ? withCondition(conditions, { type: CONDITION.repeatOffender, status: true, reason: 'RepeatedIncidents', message: `${config.lemon.incidents}+ incidents within ${Math.round(config.lemon.windowSec / 86_400)} days` }, now)
    : withoutCondition(conditions, CONDITION.repeatOffender);
  const want = wantedState(d);
  const to = nextState(node, want);
  const detectorDrain = to === S.NODE_STATE_DRAINING && !operatorDraining(node);
  if (detectorDrain) conditions = withCondition(conditions, { type: CONDITION.draining, status: true, reason: 'XidDrainAfterJob', message: d.hold?.reason ?? 'drain after the job' }, now);
  else if (!operatorDraining(node) && to !== S.NODE_STATE_DRAINING && to !== S.NODE_STATE_DRAINED) conditions = withoutCondition(conditions, CONDITION.draining);
  const score = round(d.score);
  const changed = to !== node.state || d.lemon !== node.lemon || score !== round(node.healthScore) || !sameConditions(conditions, node.conditions);
  if (!changed) return undefined;
  const next = Node.create({ ...node, state: to, conditions, lemon: d.lemon, healthScore: score });
  const evictJobs = to === S.NODE_STATE_QUARANTINED && node.state !== S.NODE_STATE_QUARANTINED;
  const reason = to === S.NODE_STATE_READY ? `healthy again: ${healthy.message}` : `${healthy.reason}: ${healthy.message}`;
  return { next, reason, evictJobs };
}

/** "quarantine-now" -> "QuarantineNow": a condition reason is one CamelCase word. */
function actionReason(action: string): string {
  return action.split('-').map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('');
}
