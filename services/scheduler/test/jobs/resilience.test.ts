import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Job, JobSpec, JobState, Node, NodeState, RankPhase, RankPlacement } from '@gantry/proto';
import type { LeaderLease } from '@gantry/store';
import { liveRanks, markRanksLost, schedule } from '../../src/jobs/lifecycle.js';
import { LeaderElector } from '../../src/leader.js';
import { WakeableLoop } from '../../src/wakeable-loop.js';
import { returningState } from '../../src/agents/node-registry.js';

const log = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('lost ranks of a preempted job', () => {
  it('are recorded as ended so the job can be requeued', () => {
    const placement = [RankPlacement.create({ rank: 0, node: 'a', gpuIndices: [0] }), RankPlacement.create({ rank: 1, node: 'b', gpuIndices: [0] })];
    const job = { ...schedule(Job.create({ id: 'j', state: JobState.JOB_STATE_PENDING, spec: JobSpec.create({ nodes: 2, gpusPerNode: 1 }) }), placement, new Date()), state: JobState.JOB_STATE_PREEMPTED };
    const after = markRanksLost(job, [1], new Date());
    expect(liveRanks(after).map((p) => p.rank)).toEqual([0]);
    expect(after.attempts[0]!.ranks[1]).toMatchObject({ phase: RankPhase.RANK_PHASE_EXITED, signal: 'NODE_LOST' });
  });
});

describe('a node heard from again', () => {
  it('returns to the state an operator or health decision held it in, else READY', () => {
    const lost = (before: NodeState) => Node.create({ name: 'n', state: NodeState.NODE_STATE_LOST, stateBeforeLost: before });
    expect(returningState(lost(NodeState.NODE_STATE_QUARANTINED))).toBe(NodeState.NODE_STATE_QUARANTINED);
    expect(returningState(lost(NodeState.NODE_STATE_DRAINED))).toBe(NodeState.NODE_STATE_DRAINED);
    expect(returningState(lost(NodeState.NODE_STATE_READY))).toBe(NodeState.NODE_STATE_READY);
    expect(returningState(lost(NodeState.NODE_STATE_UNSPECIFIED))).toBe(NodeState.NODE_STATE_READY);
    expect(returningState(Node.create({ state: NodeState.NODE_STATE_READY }))).toBe(NodeState.NODE_STATE_READY);
  });
});

describe('leader elector', () => {
  it('steps down and campaigns again when taking over fails half-way', async () => {
    let acquires = 0;
    let released = 0;
    const lease = { ttlMs: 300, tryAcquire: async () => { acquires++; return 7; }, release: async () => { released++; } } as unknown as LeaderLease;
    let elections = 0;
    let depositions = 0;
    const elector = new LeaderElector(lease, log, {
      onElected: () => { elections++; if (elections === 1) throw new Error('JetStream unavailable'); },
      onDeposed: () => { depositions++; },
    });
    elector.start();
    await sleep(700);
    await elector.stop();
    expect(released).toBeGreaterThanOrEqual(1);
    expect(depositions).toBeGreaterThanOrEqual(1);
    expect(elections).toBeGreaterThanOrEqual(2); // it kept campaigning and led again
    expect(acquires).toBeGreaterThanOrEqual(3);
  });
});

describe('wakeable loop', () => {
  it('never runs two passes at once after a quick stop and start', async () => {
    let inPass = 0;
    let maxConcurrent = 0;
    class Probe extends WakeableLoop {
      constructor() { super(() => 5); }
      protected async pass(): Promise<boolean> {
        inPass++;
        maxConcurrent = Math.max(maxConcurrent, inPass);
        await sleep(20);
        inPass--;
        return false;
      }
      protected onError(): void {}
    }
    const loop = new Probe();
    loop.start();
    await sleep(5);
    for (let i = 0; i < 5; i++) { loop.stop(); loop.start(); }
    await sleep(200);
    loop.stop();
    await sleep(50);
    expect(maxConcurrent).toBe(1);
  });
});

describe('wakeable loop rest', () => {
  it('serves the kicks of its rest with one pass, and a stop ends the rest at once', async () => {
    const REST = 400;
    const passes: number[] = [];
    class Resting extends WakeableLoop {
      constructor() { super(() => 60_000); }
      protected async pass(): Promise<boolean> {
        passes.push(Date.now());
        return false;
      }
      protected override restAfter(): number { return REST; }
      protected onError(): void {}
    }
    const until = async (n: number) => { for (let i = 0; i < 400 && passes.length < n; i++) await sleep(10); };
    const loop = new Resting();
    loop.start();
    await until(1);
    for (let i = 0; i < 10; i++) { loop.kick(); await sleep(5); }
    await until(2);
    await sleep(50);
    // Ten kicks during the rest: one more pass, after the rest.
    expect(passes).toHaveLength(2);
    expect(passes[1]! - passes[0]!).toBeGreaterThanOrEqual(REST - 10);
    loop.kick(); // in the rest after the second pass: its pass would wait for the rest
    const stopped = Date.now();
    loop.stop();
    loop.start(); // runs once the old loop has let go, which the stop allows at once
    await until(3);
    expect(passes[2]! - stopped).toBeLessThan(REST - 100);
    loop.stop();
  });
});

describe('what the planner is told a running job holds', () => {
  it('only the GPUs of ranks that have not exited, on the clock of its placement', async () => {
    const { runningJob } = await import('../../src/snapshot.js');
    const { applyRankReport } = await import('../../src/jobs/lifecycle.js');
    const placed = new Date('2026-11-25T10:00:00Z');
    const placement = [RankPlacement.create({ rank: 0, node: 'a', gpuIndices: [0, 1] }), RankPlacement.create({ rank: 1, node: 'b', gpuIndices: [2, 3] })];
    let job = schedule(Job.create({ id: 'j', state: JobState.JOB_STATE_PENDING, spec: JobSpec.create({ nodes: 2, gpusPerNode: 2, timeLimitSeconds: 60, priorityClass: 'low', tenant: 't' }) }), placement, placed);
    for (const rank of [0, 1]) job = applyRankReport(job, { attempt: 1, rank, phase: RankPhase.RANK_PHASE_STARTED, pid: 1, signal: '', node: rank ? 'b' : 'a', time: new Date(placed.getTime() + 5_000) }).job!;
    job = applyRankReport(job, { attempt: 1, rank: 1, phase: RankPhase.RANK_PHASE_EXITED, pid: 1, exitCode: 0, signal: '', node: 'b', time: new Date(placed.getTime() + 9_000) }).job!;
    const r = runningJob(job, placed.getTime() - 3_600_000, false);
    expect(r.ranks).toEqual([{ rank: 0, node: 'a', gpus: [0, 1] }]);
    expect(r.startTime).toBe(placed.getTime());
    // A checkpoint older than this attempt does not count as saved work of this attempt.
    expect(r.lastCheckpointTime).toBe(placed.getTime());
    expect(r).toMatchObject({ tenant: 't', timeLimitSec: 60, terminating: false });
  });

  it('is built once per revision of a cached (frozen) job, and afresh for a changed one or with a checkpoint time', async () => {
    const { holdingJob, runningJob } = await import('../../src/snapshot.js');
    const placed = new Date('2026-11-25T10:00:00Z');
    const placement = [RankPlacement.create({ rank: 0, node: 'a', gpuIndices: [0, 1] })];
    const job = schedule(Job.create({ id: 'h', state: JobState.JOB_STATE_PENDING, spec: JobSpec.create({ nodes: 1, gpusPerNode: 2, tenant: 't' }) }), placement, placed);
    // Not frozen (not from the job cache): computed each time.
    expect(holdingJob(job, undefined)).not.toBe(holdingJob(job, undefined));
    const cached = Object.freeze(job);
    const view = holdingJob(cached, undefined);
    expect(holdingJob(cached, undefined)).toBe(view);
    expect(view).toEqual(runningJob(cached, undefined, false));
    // A checkpoint time is the pass's own: never the kept view.
    expect(holdingJob(cached, placed.getTime() + 1_000).lastCheckpointTime).toBe(placed.getTime() + 1_000);
    expect(holdingJob(cached, undefined).lastCheckpointTime).toBeUndefined();
    // The next revision is a new object: a new view, with its ranks.
    const next = Object.freeze(schedule(Job.create({ ...job, state: JobState.JOB_STATE_PENDING }), [RankPlacement.create({ rank: 0, node: 'b', gpuIndices: [3, 4] })], placed));
    expect(holdingJob(next, undefined).ranks).toEqual([{ rank: 0, node: 'b', gpus: [3, 4] }]);
  });
});
