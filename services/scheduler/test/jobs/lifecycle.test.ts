import { describe, expect, it } from 'vitest';
import { FailureClass, Job, JobSpec, JobState, RankPhase, RankPlacement } from '@gantry/proto';
import { applyRankReport, endJob, gpuRefs, liveRanks, preemptJob, requeueJob, schedule, wantsRank, type RankReport } from '../../src/jobs/lifecycle.js';
import { rankEnv } from '../../src/dispatch/rank-env.js';

const t0 = new Date('2026-11-25T10:00:00Z');
const placement = [
  RankPlacement.create({ rank: 0, node: 'a', gpuIndices: [0, 1], address: '10.0.0.1' }),
  RankPlacement.create({ rank: 1, node: 'b', gpuIndices: [4, 5], address: '10.0.0.2' }),
];

function pending(): Job {
  return Job.create({ id: 'j-1', state: JobState.JOB_STATE_PENDING, spec: JobSpec.create({ nodes: 2, gpusPerNode: 2, command: ['x'], env: { A: '1' } }) });
}

const started = (rank: number, attempt = 1): RankReport => ({ attempt, rank, phase: RankPhase.RANK_PHASE_STARTED, pid: 100 + rank, signal: '', node: rank ? 'b' : 'a', time: t0 });
const exited = (rank: number, exitCode: number | undefined, signal = '', attempt = 1): RankReport => ({ attempt, rank, phase: RankPhase.RANK_PHASE_EXITED, pid: 100 + rank, exitCode, signal, node: rank ? 'b' : 'a', time: t0 });

function apply(job: Job, r: RankReport): Job {
  const out = applyRankReport(job, r);
  return out.job ?? job;
}

describe('job lifecycle', () => {
  it('schedules a new numbered attempt with every rank ASSIGNED', () => {
    const j = schedule(pending(), placement, t0);
    expect(j.state).toBe(JobState.JOB_STATE_SCHEDULED);
    expect(j.attempt).toBe(1);
    expect(j.attempts[0]!.ranks.map((r) => r.phase)).toEqual([RankPhase.RANK_PHASE_ASSIGNED, RankPhase.RANK_PHASE_ASSIGNED]);
    expect(gpuRefs(j, 1).map((g) => `${g.node}/${g.gpu}/${g.owner}`)).toEqual(['a/0/j-1:1:0', 'a/1/j-1:1:0', 'b/4/j-1:1:1', 'b/5/j-1:1:1']);
  });

  it('is RUNNING once every rank started and SUCCEEDED once all exited 0', () => {
    let j = schedule(pending(), placement, t0);
    j = apply(j, started(0));
    expect(j.state).toBe(JobState.JOB_STATE_SCHEDULED);
    j = apply(j, started(1));
    expect(j.state).toBe(JobState.JOB_STATE_RUNNING);
    j = apply(j, exited(0, 0));
    expect(j.state).toBe(JobState.JOB_STATE_RUNNING);
    const last = applyRankReport(j, exited(1, 0));
    expect(last.job!.state).toBe(JobState.JOB_STATE_SUCCEEDED);
    expect(last.releases.map((g) => g.gpu)).toEqual([4, 5]);
  });

  it('goes RECOVERING at the first failing rank, recording the exit and its error; blame waits for attribution', () => {
    let j = apply(apply(schedule(pending(), placement, t0), started(0)), started(1));
    const out = applyRankReport(j, { ...exited(1, 3), error: 'ValueError: bad batch', errorTime: t0 });
    j = out.job!;
    expect(j.state).toBe(JobState.JOB_STATE_RECOVERING);
    expect(out.reason).toBe('node-rank 1 on b exited with code 3; stopping the attempt and attributing the failure');
    expect(j.recovery).toMatchObject({ detectedAt: t0, decided: false });
    expect(j.attempts[0]!.ranks[1]).toMatchObject({ exitCode: 3, error: 'ValueError: bad batch' });
    expect(liveRanks(j).map((p) => p.rank)).toEqual([0]);
    expect(wantsRank(j, 1, 0)).toBe(false);
    // The other rank's exit after the failure is recorded, the state stays RECOVERING.
    const after = apply(j, exited(0, undefined, 'SIGTERM'));
    expect(after.state).toBe(JobState.JOB_STATE_RECOVERING);
    expect(after.attempts[0]!.ranks[0]!.signal).toBe('SIGTERM');
    expect(liveRanks(after)).toEqual([]);
  });

  it('treats a signal as a failure', () => {
    const j = apply(apply(schedule(pending(), placement, t0), started(0)), started(1));
    const out = applyRankReport(j, exited(0, undefined, 'SIGKILL'));
    expect(out.job!.state).toBe(JobState.JOB_STATE_RECOVERING);
    expect(out.reason).toBe('node-rank 0 on a was killed by SIGKILL; stopping the attempt and attributing the failure');
  });

  it('is idempotent: a repeated report changes nothing but still releases', () => {
    let j = apply(apply(schedule(pending(), placement, t0), started(0)), started(1));
    expect(applyRankReport(j, started(1)).job).toBeUndefined();
    j = apply(j, exited(0, 0));
    const again = applyRankReport(j, exited(0, 0));
    expect(again.job).toBeUndefined();
    expect(again.releases).toHaveLength(2);
    expect(applyRankReport(j, started(5)).job).toBeUndefined();
    expect(applyRankReport(j, started(0, 9)).job).toBeUndefined();
  });

  it('a job whose ranks all finish before their starts were seen goes straight to SUCCEEDED', () => {
    let j = schedule(pending(), placement, t0);
    j = apply(j, exited(0, 0));
    j = apply(j, exited(1, 0));
    expect(j.state).toBe(JobState.JOB_STATE_SUCCEEDED);
  });

  it('ends a job for outside reasons, keeping the failure on the attempt', () => {
    const j = endJob(schedule(pending(), placement, t0), JobState.JOB_STATE_FAILED, 'exceeded its time limit of 60s', t0, FailureClass.FAILURE_CLASS_TIME_LIMIT);
    expect(j.attempts[0]!.failure).toMatchObject({ reason: 'exceeded its time limit of 60s', failureClass: FailureClass.FAILURE_CLASS_TIME_LIMIT });
    expect(wantsRank(j, 1, 0)).toBe(false);
  });
});

describe('rank environment', () => {
  it('gives each node rank the launcher variables torchrun expects', () => {
    const j = schedule(pending(), placement, t0);
    const env = rankEnv(j, 1, placement, placement[1]!);
    expect(env).toMatchObject({
      A: '1', MASTER_ADDR: '10.0.0.1', MASTER_PORT: '29500', WORLD_SIZE: '4', NODE_RANK: '1', NNODES: '2', LOCAL_WORLD_SIZE: '2',
      CUDA_VISIBLE_DEVICES: '4,5', GANTRY_JOB_ID: 'j-1', GANTRY_ATTEMPT: '1', PET_NODE_RANK: '1', PET_NPROC_PER_NODE: '2',
    });
  });
});

describe('preemption lifecycle', () => {
  it('ends the attempt with the reason, and requeues only once no rank can still run', () => {
    let j = apply(apply(schedule(pending(), placement, t0), started(0)), started(1));
    j = preemptJob(j, 'preempted for j-9: lower priority', t0);
    expect(j).toMatchObject({ state: JobState.JOB_STATE_PREEMPTED, preemptedAt: t0 });
    expect(j.attempts[0]!.failure?.reason).toBe('preempted for j-9: lower priority');
    expect(requeueJob(j)).toBeUndefined(); // both ranks may still be running
    j = apply(apply(j, exited(0, undefined, 'SIGTERM')), exited(1, undefined, 'SIGTERM'));
    expect(j.state).toBe(JobState.JOB_STATE_PREEMPTED); // exits after a preemption do not fail the job
    const back = requeueJob(j)!;
    expect(back.state).toBe(JobState.JOB_STATE_PENDING);
    expect(schedule(back, placement, t0).attempt).toBe(2);
  });
});
