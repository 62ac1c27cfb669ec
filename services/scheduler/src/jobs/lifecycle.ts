// Pure job lifecycle rules: given a job and something that happened (placement, a rank
// started or exited, a node lost, a cancel request), the next job value and the state it
// should move to. No I/O: the caller commits the result with compare-and-set.
import {
  Attempt, FailureClass, FaultSignal, Job, JobFailure, JobState, RankPhase, RankPlacement, RankStatus, Recovery, RecoveryGrade, isTerminalJobState,
} from '@gantry/proto';
import { allocationOwner, type GpuRef } from '@gantry/store';

export function isActive(job: Job): boolean {
  return job.state === JobState.JOB_STATE_SCHEDULED || job.state === JobState.JOB_STATE_RUNNING;
}

export function currentAttempt(job: Job): Attempt | undefined {
  return job.attempts.find((a) => a.number === job.attempt);
}

function clone(job: Job): Job {
  return Job.fromJSON(Job.toJSON(job));
}

/** GPU references of the given ranks (all ranks when omitted) of an attempt. */
export function gpuRefs(job: Job, attemptNumber: number, ranks?: number[]): GpuRef[] {
  const attempt = job.attempts.find((a) => a.number === attemptNumber);
  if (!attempt) return [];
  return attempt.placement
    .filter((p) => ranks === undefined || ranks.includes(p.rank))
    .flatMap((p) => p.gpuIndices.map((gpu) => ({ node: p.node, gpu, owner: allocationOwner(job.id, attemptNumber, p.rank) })));
}

export interface AttemptOrigin {
  grade: RecoveryGrade;
  gradeReason: string;
  /** GANTRY_RESUME_FROM: the newest committed checkpoint when the attempt is placed. */
  resumeFrom: string;
  excludedNodes: string[];
}

/** PENDING -> SCHEDULED with a new attempt on the given placement; a recovery ends here. */
export function schedule(job: Job, placement: RankPlacement[], now: Date, origin?: AttemptOrigin): Job {
  const next = clone(job);
  const number = job.attempt + 1;
  next.attempt = number;
  next.state = JobState.JOB_STATE_SCHEDULED;
  next.recovery = undefined;
  next.attempts.push(Attempt.create({
    number,
    placement,
    ranks: placement.map((p) => RankStatus.create({ rank: p.rank, phase: RankPhase.RANK_PHASE_ASSIGNED })),
    scheduledAt: now,
    grade: origin?.grade ?? RecoveryGrade.RECOVERY_GRADE_UNSPECIFIED,
    gradeReason: origin?.gradeReason ?? '',
    resumedFromCheckpoint: origin?.resumeFrom ?? '',
    excludedNodes: origin?.excludedNodes ?? [],
  }));
  return next;
}

export interface RankReport {
  attempt: number;
  rank: number;
  phase: RankPhase.RANK_PHASE_STARTED | RankPhase.RANK_PHASE_EXITED;
  pid: number;
  exitCode?: number;
  signal: string;
  node: string;
  time: Date;
  /** The error the rank reported on exit, and when it was raised. */
  error?: string;
  errorTime?: Date;
}

export interface RankOutcome {
  /** The job with the rank recorded (and the state it should move to), or undefined when the report changes nothing. */
  job: Job | undefined;
  reason: string;
  /** GPUs to release now (the rank has exited). */
  releases: GpuRef[];
}

function failedExit(r: RankReport): boolean {
  return r.signal !== '' || (r.exitCode ?? 0) !== 0;
}

function describeExit(r: RankReport): string {
  return r.signal ? `node-rank ${r.rank} on ${r.node} was killed by ${r.signal}` : `node-rank ${r.rank} on ${r.node} exited with code ${r.exitCode ?? 0}`;
}

/** Applies a rank start or exit. Idempotent: a repeated report returns job undefined. */
export function applyRankReport(job: Job, r: RankReport): RankOutcome {
  const attempt = job.attempts.find((a) => a.number === r.attempt);
  const status = attempt?.ranks.find((s) => s.rank === r.rank);
  if (!attempt || !status) return { job: undefined, reason: 'unknown attempt or rank', releases: [] };
  const releases = r.phase === RankPhase.RANK_PHASE_EXITED ? gpuRefs(job, r.attempt, [r.rank]) : [];
  if (status.phase === RankPhase.RANK_PHASE_EXITED || (status.phase === r.phase)) {
    return { job: undefined, reason: 'already recorded', releases };
  }
  const next = clone(job);
  const a = next.attempts.find((x) => x.number === r.attempt)!;
  const s = a.ranks.find((x) => x.rank === r.rank)!;
  s.phase = r.phase;
  if (r.pid) s.pid = r.pid;
  if (r.phase === RankPhase.RANK_PHASE_STARTED) {
    s.startedAt = r.time;
  } else {
    s.startedAt ??= r.time;
    s.finishedAt = r.time;
    s.exitCode = r.exitCode;
    s.signal = r.signal;
    s.error = r.error ?? '';
    s.errorTime = r.errorTime;
  }
  // Reports for an older attempt, or for a job that has already ended or is recovering, only
  // record the rank (a recovering job's attribution reads every exit from the record).
  if (r.attempt !== job.attempt || !isActive(job)) return { job: next, reason: `node-rank ${r.rank} recorded`, releases };

  if (r.phase === RankPhase.RANK_PHASE_EXITED && failedExit(r)) {
    // Not yet blamed: the first exit is often a healthy rank that lost its peer. Recovery
    // collects the other exits and XIDs for a settle window, then attributes the failure.
    const reason = `${describeExit(r)}; stopping the attempt and attributing the failure`;
    return { job: beginRecovery(next, r.time), reason, releases };
  }
  const allStarted = a.ranks.every((x) => x.phase === RankPhase.RANK_PHASE_STARTED || x.phase === RankPhase.RANK_PHASE_EXITED);
  const allDone = a.ranks.every((x) => x.phase === RankPhase.RANK_PHASE_EXITED);
  if (allDone) {
    next.state = JobState.JOB_STATE_SUCCEEDED;
    a.startedAt ??= r.time;
    a.finishedAt = r.time;
    next.finishedAt = r.time;
    return { job: next, reason: `all ${a.ranks.length} ranks exited with code 0`, releases };
  }
  if (allStarted && job.state === JobState.JOB_STATE_SCHEDULED) {
    next.state = JobState.JOB_STATE_RUNNING;
    a.startedAt = r.time;
    return { job: next, reason: `all ${a.ranks.length} ranks started`, releases };
  }
  return { job: next, reason: `node-rank ${r.rank} ${r.phase === RankPhase.RANK_PHASE_STARTED ? 'started' : 'exited with code 0'}`, releases };
}

/**
 * Ends a job for a reason outside its processes (cancelled, time limit, a failure recovery
 * will not retry). An attempt that already has a failure (attributed by recovery) keeps it.
 */
export function endJob(job: Job, state: JobState.JOB_STATE_FAILED | JobState.JOB_STATE_CANCELLED, reason: string, now: Date, failureClass = FailureClass.FAILURE_CLASS_UNSPECIFIED): Job {
  const next = clone(job);
  next.state = state;
  next.finishedAt = now;
  next.recovery = undefined;
  const a = currentAttempt(next);
  if (a) {
    a.finishedAt ??= now;
    const cls = state === JobState.JOB_STATE_CANCELLED ? FailureClass.FAILURE_CLASS_CANCELLED : failureClass;
    if (!a.failure || state === JobState.JOB_STATE_CANCELLED) a.failure = JobFailure.create({ reason, failureClass: cls, time: now });
  }
  return next;
}

/**
 * RUNNING/SCHEDULED -> RECOVERING (or, already recovering and not yet decided, one more
 * signal). The caller stops the ranks; the recovery controller attributes and decides.
 */
export function beginRecovery(job: Job, now: Date, signal?: FaultSignal): Job {
  const next = clone(job);
  if (isActive(job)) {
    next.state = JobState.JOB_STATE_RECOVERING;
    next.recovery = Recovery.create({ detectedAt: now });
  }
  if (signal && next.recovery && !next.recovery.decided && !next.recovery.signals.some((s) => sameSignal(s, signal))) next.recovery.signals.push(signal);
  return next;
}

function sameSignal(a: FaultSignal, b: FaultSignal): boolean {
  return a.kind === b.kind && a.node === b.node && a.gpu === b.gpu && a.xid === b.xid;
}

/** RUNNING/SCHEDULED -> PREEMPTED: the attempt ends with the reason; ranks are stopped by the caller. */
export function preemptJob(job: Job, reason: string, now: Date): Job {
  const next = clone(job);
  next.state = JobState.JOB_STATE_PREEMPTED;
  next.preemptedAt = now;
  const a = currentAttempt(next);
  if (a) {
    a.finishedAt = now;
    a.failure = JobFailure.create({ reason, failureClass: FailureClass.FAILURE_CLASS_PREEMPTED, time: now });
  }
  return next;
}

/** PREEMPTED -> PENDING once no rank of it can still be running; its next placement is a new attempt. */
export function requeueJob(job: Job): Job | undefined {
  if (job.state !== JobState.JOB_STATE_PREEMPTED || liveRanks(job).length > 0) return undefined;
  return { ...clone(job), state: JobState.JOB_STATE_PENDING };
}

/** Records ranks of the current attempt as ended because their node was lost (they cannot report). */
export function markRanksLost(job: Job, ranks: number[], now: Date): Job {
  const next = clone(job);
  markLost(next, ranks, now);
  return next;
}

function markLost(next: Job, ranks: number[], now: Date): void {
  for (const s of currentAttempt(next)?.ranks ?? []) {
    if (ranks.includes(s.rank) && s.phase !== RankPhase.RANK_PHASE_EXITED) {
      s.phase = RankPhase.RANK_PHASE_EXITED;
      s.finishedAt = now;
      s.signal = 'NODE_LOST';
    }
  }
}

/** Ranks of the current attempt that have not exited and so may still have processes. */
export function liveRanks(job: Job): RankPlacement[] {
  const a = currentAttempt(job);
  if (!a) return [];
  const live = new Set(a.ranks.filter((s) => s.phase !== RankPhase.RANK_PHASE_EXITED).map((s) => s.rank));
  return a.placement.filter((p) => live.has(p.rank));
}

/** Whether the scheduler still wants this rank running. */
export function wantsRank(job: Job, attempt: number, rank: number): boolean {
  if (isTerminalJobState(job.state) || !isActive(job) || attempt !== job.attempt) return false;
  const s = currentAttempt(job)?.ranks.find((x) => x.rank === rank);
  return s !== undefined && s.phase !== RankPhase.RANK_PHASE_EXITED;
}
