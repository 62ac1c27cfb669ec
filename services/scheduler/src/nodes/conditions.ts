// Node conditions (gantry.v1.NodeCondition), one per concern. Each writer owns its types:
// the health monitor Healthy, Held and RepeatOffender; operator operations Cordoned,
// Draining and Quarantined. `since` moves only when a condition's status changes, so it says
// how long the node has been that way.
import { NodeCondition, type Node } from '@gantry/proto';

export const CONDITION = {
  healthy: 'Healthy',
  held: 'Held',
  repeatOffender: 'RepeatOffender',
  cordoned: 'Cordoned',
  draining: 'Draining',
  quarantined: 'Quarantined',
} as const;

export interface ConditionInput {
  type: string;
  status: boolean;
  reason: string;
  message: string;
  evidence?: string[];
  since?: Date;
}

export function findCondition(node: Node, type: string): NodeCondition | undefined {
  return node.conditions.find((c) => c.type === type);
}

/** The node's conditions with `c` set (its `since` kept while the status does not change). */
export function withCondition(conditions: readonly NodeCondition[], c: ConditionInput, now: Date): NodeCondition[] {
  const prev = conditions.find((x) => x.type === c.type);
  const since = prev && prev.status === c.status ? prev.since : (c.since ?? now);
  const next = NodeCondition.create({ type: c.type, status: c.status, reason: c.reason, message: c.message, evidence: c.evidence ?? [], since });
  return prev ? conditions.map((x) => (x.type === c.type ? next : x)) : [...conditions, next];
}

export function withoutCondition(conditions: readonly NodeCondition[], type: string): NodeCondition[] {
  return conditions.filter((c) => c.type !== type);
}

/** Equal for the purpose of "did anything change" (times compared by value). */
export function sameConditions(a: readonly NodeCondition[], b: readonly NodeCondition[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((x, i) => {
    const y = b[i]!;
    return x.type === y.type && x.status === y.status && x.reason === y.reason && x.message === y.message
      && x.since?.getTime() === y.since?.getTime() && x.evidence.length === y.evidence.length && x.evidence.every((e, j) => e === y.evidence[j]);
  });
}

/** A Quarantined condition an operator set: the detector never lifts it. */
export function operatorQuarantined(node: Node): boolean {
  return findCondition(node, CONDITION.quarantined)?.status === true;
}

/** Draining (or drained) because an operator asked, not because of an XID policy. */
export function operatorDraining(node: Node): boolean {
  const c = findCondition(node, CONDITION.draining);
  return c?.status === true && c.reason === 'OperatorDrain';
}
