// Whether and how a failed attempt is tried again. Pure: the job's retry policy (falling back
// to the scheduling config's defaults), the attribution and which nodes are healthy give the
// decision: fail, or retry after a backoff with the cheapest grade that can work.
import { FailureClass, RecoveryGrade, failureClassName, parseFailureClass, recoveryGradeName, type Job, type RankPlacement, type RetryPolicy } from '@gantry/proto';
import type { RetryableClass, SchedulingConfig } from '../placement/index.js';
import type { Attribution } from './attribution.js';

/** Class and grade names as metrics, logs and the config write them. */
export const className = failureClassName;
export const gradeName = recoveryGradeName;

export interface ResolvedRetryPolicy {
  maxRecoveries: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  backoffJitter: number;
  retryOn: Set<FailureClass>;
}

export function resolveRetryPolicy(spec: RetryPolicy | undefined, defaults: SchedulingConfig['recovery']): ResolvedRetryPolicy {
  const retryOn = spec && spec.retryOn.length > 0
    ? new Set(spec.retryOn)
    : new Set(defaults.retryOn.map((n: RetryableClass) => parseFailureClass(n)!));
  return {
    maxRecoveries: spec?.maxRecoveries ?? defaults.maxRecoveries,
    backoffInitialMs: spec?.backoffInitialMs ?? defaults.backoffInitialMs,
    backoffMaxMs: spec?.backoffMaxMs ?? defaults.backoffMaxMs,
    backoffJitter: spec?.backoffJitter ?? defaults.backoffJitter,
    retryOn,
  };
}

/** Delay before the next attempt: exponential in the recoveries used, capped, plus jitter (rand in [0, 1)). */
export function backoffMs(p: ResolvedRetryPolicy, recoveriesUsed: number, rand: number): number {
  const base = Math.min(p.backoffMaxMs, p.backoffInitialMs * 2 ** Math.min(recoveriesUsed, 30));
  return Math.round(base * (1 + p.backoffJitter * rand));
}

export type RecoveryDecision =
  | { retry: false; reason: string }
  | { retry: true; grade: RecoveryGrade; gradeReason: string; notBefore: Date; keep: RankPlacement[]; faultyNodes: string[] };

/**
 * Decides what follows a failed attempt. `unhealthy` names nodes of the placement that may
 * not be reused (not READY); kept ranks must sit on healthy nodes.
 */
export function decideRecovery(job: Job, placement: RankPlacement[], a: Attribution, p: ResolvedRetryPolicy, unhealthy: ReadonlySet<string>, now: Date, rand: number): RecoveryDecision {
  const cls = className(a.failureClass);
  if (!p.retryOn.has(a.failureClass)) return { retry: false, reason: `${cls} failures are not retried by the job's retry policy` };
  if (job.recoveries >= p.maxRecoveries) return { retry: false, reason: `recovery budget spent (${job.recoveries} of ${p.maxRecoveries})` };
  const notBefore = new Date(now.getTime() + backoffMs(p, job.recoveries, rand));
  const faulty = new Set([...a.faultyNodes, ...placement.map((r) => r.node).filter((n) => unhealthy.has(n))]);
  const healthy = placement.filter((r) => !faulty.has(r.node));
  const faultyNodes = [...faulty];
  if (faulty.size === 0) {
    return { retry: true, grade: RecoveryGrade.RECOVERY_GRADE_RESTART_IN_PLACE, gradeReason: `${cls} on healthy nodes: all ranks restart in place`, notBefore, keep: placement, faultyNodes };
  }
  if (healthy.length > 0) {
    return {
      retry: true, grade: RecoveryGrade.RECOVERY_GRADE_REPLACE_NODES, notBefore, keep: healthy, faultyNodes,
      gradeReason: `${cls}: replacing ${faultyNodes.join(', ')}, keeping ${healthy.length} healthy node${healthy.length === 1 ? '' : 's'}`,
    };
  }
  return { retry: true, grade: RecoveryGrade.RECOVERY_GRADE_REPLACE_GANG, gradeReason: `${cls}: no healthy node of the gang left; placing it anew`, notBefore, keep: [], faultyNodes };
}
