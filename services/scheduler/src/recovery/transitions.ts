// The two steps of a recovery after it began, as pure functions of the job (the controller
// commits them with compare-and-set; the property tests drive them directly):
//   decide:  attribute the failure and either fail the job or record how it is retried;
//   requeue: once no rank can still run (ranks on lost nodes count as gone), back to PENDING.
import { JobState, type FailureClass, type Job } from '@gantry/proto';
import type { SchedulingConfig } from '../placement/index.js';
import { currentAttempt, endJob, liveRanks, markRanksLost } from '../jobs/lifecycle.js';
import { attributeFailure, failureOf } from './attribution.js';
import { className, decideRecovery, gradeName, resolveRetryPolicy } from './policy.js';

export interface Decided {
  next: Job;
  reason: string;
  /** Nodes blamed for a node fault (excluded for the job, scored down for everyone). */
  blamed: string[];
  failureClass: FailureClass;
  /** The grade's name, or 'none' when the job fails. */
  grade: string;
}

/** RECOVERING, undecided -> decided (still RECOVERING) or FAILED; undefined when there is nothing to decide. */
export function decideStep(j: Job, config: SchedulingConfig, unhealthy: ReadonlySet<string>, now: Date, rand: number): Decided | undefined {
  const attempt = currentAttempt(j);
  if (j.state !== JobState.JOB_STATE_RECOVERING || j.recovery?.decided || !attempt) return undefined;
  const attribution = attributeFailure(attempt, j.recovery?.signals ?? [], j.recovery?.detectedAt ?? now);
  const policy = resolveRetryPolicy(j.spec?.retry, config.recovery);
  const decision = decideRecovery(j, attempt.placement, attribution, policy, unhealthy, now, rand);
  const next: Job = { ...j, maxRecoveries: policy.maxRecoveries };
  next.attempts = j.attempts.map((x) => (x.number === attempt.number ? { ...x, failure: failureOf(attribution), finishedAt: x.finishedAt ?? now } : x));
  next.excludedNodes = [...new Set([...j.excludedNodes, ...attribution.faultyNodes])];
  const base = { blamed: attribution.faultyNodes, failureClass: attribution.failureClass };
  if (!decision.retry) {
    const reason = `${attribution.reason}; ${decision.reason}`;
    return { ...base, next: endJob(next, JobState.JOB_STATE_FAILED, reason, now, attribution.failureClass), reason, grade: 'none' };
  }
  next.recovery = {
    ...j.recovery!, decided: true, retry: true, grade: decision.grade, gradeReason: decision.gradeReason,
    notBefore: decision.notBefore, faultyNodes: decision.faultyNodes, keep: decision.keep,
  };
  const wait = Math.ceil((decision.notBefore.getTime() - now.getTime()) / 1000);
  const excluding = next.excludedNodes.length > 0 ? `, excluding ${next.excludedNodes.join(', ')}` : '';
  next.reason = `${attribution.reason}; recovering (attempt ${j.attempt + 1} of ${policy.maxRecoveries + 1}, ${gradeName(decision.grade)} in ${wait}s${excluding})`;
  return { ...base, next, reason: next.reason, grade: gradeName(decision.grade) };
}

/** Decided to retry and no rank can still run: RECOVERING -> PENDING; undefined when not yet. */
export function requeueStep(j: Job, lost: ReadonlySet<string>, now: Date): { next: Job; reason: string } | undefined {
  if (j.state !== JobState.JOB_STATE_RECOVERING || !j.recovery?.decided || !j.recovery.retry || liveRanks(j).some((p) => !lost.has(p.node))) return undefined;
  // Ranks on a lost node cannot report: recorded as lost, so nothing waits for them.
  const next = markRanksLost(j, liveRanks(j).map((p) => p.rank), now);
  next.state = JobState.JOB_STATE_PENDING;
  next.recoveries = j.recoveries + 1;
  const a = currentAttempt(next);
  if (a) a.nextTryAt = j.recovery.notBefore;
  const wait = Math.max(0, (j.recovery.notBefore?.getTime() ?? now.getTime()) - now.getTime());
  return { next, reason: `recovery ${next.recoveries} of ${j.maxRecoveries}: ${gradeName(j.recovery.grade)} ${wait > 0 ? `in ${Math.ceil(wait / 1000)}s` : 'now'}` };
}

export { className };
