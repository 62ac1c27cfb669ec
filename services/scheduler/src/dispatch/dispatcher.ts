// Turns a job's current attempt into commands for agents: assignments for ranks not yet
// started, stops for ranks that must end.
import { RankPhase, StopRank, type Job, type RankAssignment, type RankPlacement } from '@gantry/proto';
import type { SchedulerContext } from '../context.js';
import { currentAttempt, liveRanks } from '../jobs/lifecycle.js';
import { localProcesses, rankEnv } from './rank-env.js';

export function assignmentFor(job: Job, placement: RankPlacement[], rank: RankPlacement, stopGraceSeconds: number): RankAssignment {
  const spec = job.spec!;
  // Every field given: create() would copy the environment just built, entry by entry.
  return {
    jobId: job.id,
    attempt: job.attempt,
    rank: rank.rank,
    command: [...spec.command],
    env: rankEnv(job, job.attempt, placement, rank, currentAttempt(job)?.resumedFromCheckpoint ?? ''),
    workingDir: spec.workingDir,
    runAsUser: spec.runAsUser,
    gpuIndices: [...rank.gpuIndices],
    stopGraceSeconds: spec.stopGraceSeconds || stopGraceSeconds,
    processes: localProcesses(job, placement, rank),
  };
}

/** Sends assignments for the ranks of the current attempt that have not started (optionally only on one node). */
export async function dispatchAssignments(ctx: SchedulerContext, job: Job, onlyNode?: string, force = false): Promise<void> {
  const a = currentAttempt(job);
  if (!a) return;
  const pending = new Set(a.ranks.filter((r) => r.phase === RankPhase.RANK_PHASE_ASSIGNED).map((r) => r.rank));
  await Promise.all(a.placement
    .filter((p) => pending.has(p.rank) && (onlyNode === undefined || p.node === onlyNode))
    .map((p) => ctx.commander.assign(p.node, assignmentFor(job, a.placement, p, ctx.settings.stopGraceSeconds), force)));
}

/** Stops every rank of the current attempt that may still be running, except on `skipNode`. */
export async function stopLiveRanks(ctx: SchedulerContext, job: Job, reason: string, skipNode?: string, force = true): Promise<void> {
  const grace = job.spec?.stopGraceSeconds || ctx.settings.stopGraceSeconds;
  await Promise.all(liveRanks(job)
    .filter((p) => p.node !== skipNode)
    .map((p) => ctx.commander.stop(p.node, StopRank.create({ jobId: job.id, attempt: job.attempt, rank: p.rank, reason, graceSeconds: grace }), force)));
}
