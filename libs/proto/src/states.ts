// Short, stable names for the enum values (what the CLI prints and Redis stores), and the
// allowed transitions of the job and node state machines. One table each, used by the
// scheduler (validation), the store (Lua pre-conditions) and the tests.
import { FailureClass, JobState, RecoveryGrade } from './gen/gantry/v1/job.js';
import { NodeState } from './gen/gantry/v1/node.js';

export function jobStateName(s: JobState): string {
  return (JobState[s] ?? 'UNRECOGNIZED').replace(/^JOB_STATE_/, '');
}

export function nodeStateName(s: NodeState): string {
  return (NodeState[s] ?? 'UNRECOGNIZED').replace(/^NODE_STATE_/, '');
}

export function parseJobState(name: string): JobState | undefined {
  const v = (JobState as unknown as Record<string, number>)[`JOB_STATE_${name.toUpperCase()}`];
  return v === undefined || v === JobState.JOB_STATE_UNSPECIFIED ? undefined : (v as JobState);
}

export function parseNodeState(name: string): NodeState | undefined {
  const v = (NodeState as unknown as Record<string, number>)[`NODE_STATE_${name.toUpperCase()}`];
  return v === undefined || v === NodeState.NODE_STATE_UNSPECIFIED ? undefined : (v as NodeState);
}

const J = JobState;
export const JOB_TRANSITIONS: ReadonlyMap<JobState, readonly JobState[]> = new Map([
  [J.JOB_STATE_PENDING, [J.JOB_STATE_SCHEDULED, J.JOB_STATE_CANCELLED, J.JOB_STATE_FAILED]],
  // SCHEDULED -> SUCCEEDED: every rank ran and exited before all their starts were seen.
  [J.JOB_STATE_SCHEDULED, [J.JOB_STATE_RUNNING, J.JOB_STATE_SUCCEEDED, J.JOB_STATE_FAILED, J.JOB_STATE_CANCELLED, J.JOB_STATE_RECOVERING, J.JOB_STATE_PREEMPTED]],
  [J.JOB_STATE_RUNNING, [J.JOB_STATE_SUCCEEDED, J.JOB_STATE_FAILED, J.JOB_STATE_CANCELLED, J.JOB_STATE_RECOVERING, J.JOB_STATE_PREEMPTED]],
  // RECOVERING: the attempt's ranks are stopped and its failure attributed; then the job
  // waits (PENDING, with a not-before time and its excluded nodes) for the next attempt, or
  // fails when the class is not retried or the budget is spent.
  [J.JOB_STATE_RECOVERING, [J.JOB_STATE_PENDING, J.JOB_STATE_FAILED, J.JOB_STATE_CANCELLED]],
  [J.JOB_STATE_PREEMPTED, [J.JOB_STATE_PENDING, J.JOB_STATE_CANCELLED]],
  [J.JOB_STATE_SUCCEEDED, []],
  // FAILED -> PENDING only by an operator's retry (gantry job retry), once no rank is left.
  [J.JOB_STATE_FAILED, [J.JOB_STATE_PENDING]],
  [J.JOB_STATE_CANCELLED, []],
]);

export function isTerminalJobState(s: JobState): boolean {
  return s === J.JOB_STATE_SUCCEEDED || s === J.JOB_STATE_FAILED || s === J.JOB_STATE_CANCELLED;
}

export function canTransitionJob(from: JobState, to: JobState): boolean {
  return JOB_TRANSITIONS.get(from)?.includes(to) ?? false;
}

const N = NodeState;
export const NODE_TRANSITIONS: ReadonlyMap<NodeState, readonly NodeState[]> = new Map([
  [N.NODE_STATE_REGISTERING, [N.NODE_STATE_READY, N.NODE_STATE_LOST]],
  [N.NODE_STATE_READY, [N.NODE_STATE_SUSPECT, N.NODE_STATE_DRAINING, N.NODE_STATE_LOST, N.NODE_STATE_QUARANTINED]],
  [N.NODE_STATE_SUSPECT, [N.NODE_STATE_READY, N.NODE_STATE_QUARANTINED, N.NODE_STATE_DRAINING, N.NODE_STATE_LOST]],
  // Released but still deviating: watched as SUSPECT.
  [N.NODE_STATE_QUARANTINED, [N.NODE_STATE_READY, N.NODE_STATE_SUSPECT, N.NODE_STATE_LOST]],
  // A fault found while draining takes the node out at once.
  [N.NODE_STATE_DRAINING, [N.NODE_STATE_DRAINED, N.NODE_STATE_READY, N.NODE_STATE_LOST, N.NODE_STATE_QUARANTINED]],
  [N.NODE_STATE_DRAINED, [N.NODE_STATE_READY, N.NODE_STATE_LOST, N.NODE_STATE_QUARANTINED]],
  // A lost node comes back through registration and reconciliation.
  [N.NODE_STATE_LOST, [N.NODE_STATE_READY, N.NODE_STATE_SUSPECT, N.NODE_STATE_QUARANTINED, N.NODE_STATE_DRAINING, N.NODE_STATE_DRAINED]],
]);

export function canTransitionNode(from: NodeState, to: NodeState): boolean {
  return NODE_TRANSITIONS.get(from)?.includes(to) ?? false;
}

/** The priority classes a job spec may name (JobSpec.priority_class), highest first; '' = normal. */
export const PRIORITY_CLASS_NAMES = ['critical', 'high', 'normal', 'low', 'preemptible'] as const;

/** Short names of failure classes and recovery grades, as retry policies, the CLI and metrics write them. */
export function failureClassName(c: FailureClass): string {
  return (FailureClass[c] ?? 'UNKNOWN').replace(/^FAILURE_CLASS_/, '').toLowerCase().replace(/_/g, '-').replace(/^unspecified$/, 'unknown');
}

export function parseFailureClass(name: string): FailureClass | undefined {
  const v = (FailureClass as unknown as Record<string, number>)[`FAILURE_CLASS_${name.toUpperCase().replace(/-/g, '_')}`];
  return v === undefined || v === FailureClass.FAILURE_CLASS_UNSPECIFIED ? undefined : (v as FailureClass);
}

export function recoveryGradeName(g: RecoveryGrade): string {
  return g === RecoveryGrade.RECOVERY_GRADE_UNSPECIFIED ? '' : (RecoveryGrade[g] ?? '').replace(/^RECOVERY_GRADE_/, '').toLowerCase().replace(/_/g, '-');
}
