// Property test: random fault sequences against the recovery state machine. The job-side
// code is the scheduler's own (lifecycle, decideStep, requeueStep); the cluster around it is
// a small model of what Redis, the agents and the planner do: GPU claims per owner (claimed
// at placement, released when a rank's exit is recorded or, for ranks on a lost node, when
// it comes back and reconciles), rank processes on nodes, and a planner that honours
// exclusions and kept ranks.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FailureClass, FaultSignal, Job, JobSpec, JobState, RankPhase, RankPlacement, isTerminalJobState } from '@gantry/proto';
import { allocationOwner } from '@gantry/store';
import { applyRankReport, beginRecovery, currentAttempt, endJob, isActive, liveRanks, schedule } from '../../src/jobs/lifecycle.js';
import { decideStep, requeueStep } from '../../src/recovery/transitions.js';
import { resolveConfig } from '../../src/placement/index.js';

const NODES = ['n0', 'n1', 'n2', 'n3', 'n4'];
const GPUS = 4;
const config = resolveConfig({ recovery: { settleMs: 1_000, backoffInitialMs: 500, backoffMaxMs: 2_000 } });

type Event =
  | { kind: 'place' }
  | { kind: 'start'; rank: number }
  | { kind: 'exit'; rank: number; code: number }
  | { kind: 'xid'; node: number; xid: number }
  | { kind: 'lose'; node: number }
  | { kind: 'return'; node: number }
  | { kind: 'stop' }
  | { kind: 'tick'; ms: number }
  | { kind: 'cancel' };

const event: fc.Arbitrary<Event> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'place' as const }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('start' as const), rank: fc.integer({ min: 0, max: 1 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('exit' as const), rank: fc.integer({ min: 0, max: 1 }), code: fc.constantFrom(0, 1, 137) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('xid' as const), node: fc.integer({ min: 0, max: 4 }), xid: fc.constantFrom(79, 48, 94) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('lose' as const), node: fc.integer({ min: 0, max: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('return' as const), node: fc.integer({ min: 0, max: 4 }) }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'stop' as const }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 100, max: 3_000 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'cancel' as const }) },
);

class Model {
  now = Date.UTC(2026, 11, 1);
  job: Job;
  readonly lost = new Set<string>();
  /** "node/gpu" -> owner */
  readonly claims = new Map<string, string>();
  /** Owners whose process runs. */
  readonly running = new Set<string>();

  constructor(retryOn: FailureClass[], maxRecoveries: number) {
    this.job = Job.create({ id: 'j', state: JobState.JOB_STATE_PENDING, spec: JobSpec.create({ nodes: 2, gpusPerNode: GPUS, command: ['x'], retry: { maxRecoveries, retryOn } }) });
  }

  private owner(attempt: number, rank: number): string {
    return allocationOwner(this.job.id, attempt, rank);
  }

  private nodeOf(owner: string): string | undefined {
    for (const a of this.job.attempts) for (const p of a.placement) if (this.owner(a.number, p.rank) === owner) return p.node;
    return undefined;
  }

  private release(refs: { node: string; gpu: number; owner: string }[]): void {
    for (const r of refs) if (this.claims.get(`${r.node}/${r.gpu}`) === r.owner) this.claims.delete(`${r.node}/${r.gpu}`);
  }

  private report(rank: number, phase: RankPhase.RANK_PHASE_STARTED | RankPhase.RANK_PHASE_EXITED, exitCode?: number, signal = ''): void {
    const a = currentAttempt(this.job)!;
    const node = a.placement.find((p) => p.rank === rank)!.node;
    const out = applyRankReport(this.job, { attempt: a.number, rank, phase, pid: 1, exitCode, signal, node, time: new Date(this.now) });
    this.release(out.releases);
    if (out.job) this.job = out.job;
  }

  private signal(kind: string, node: string, xid = 0): void {
    const j = this.job;
    const undecided = j.state === JobState.JOB_STATE_RECOVERING && !j.recovery?.decided;
    if (!(isActive(j) || undecided) || !liveRanks(j).some((p) => p.node === node)) return;
    const cls = xid === 94 ? FailureClass.FAILURE_CLASS_GPU_CONTAINED : FailureClass.FAILURE_CLASS_NODE_FAULT;
    this.job = beginRecovery(j, new Date(this.now), FaultSignal.create({ kind, node, xid, time: new Date(this.now), failureClass: cls }));
  }

  apply(e: Event): void {
    const j = this.job;
    const a = currentAttempt(j);
    switch (e.kind) {
      case 'place': {
        if (j.state !== JobState.JOB_STATE_PENDING || (j.recovery?.notBefore?.getTime() ?? 0) > this.now) return;
        const free = (n: string) => !this.lost.has(n) && !j.excludedNodes.includes(n) && [...Array(GPUS).keys()].every((g) => !this.claims.has(`${n}/${g}`));
        const keep = (j.recovery?.keep ?? []).filter((k) => free(k.node));
        const nodes = [...keep.map((k) => k.node), ...NODES.filter((n) => free(n) && !keep.some((k) => k.node === n))].slice(0, 2);
        if (nodes.length < 2) return;
        const placement = nodes.map((node, rank) => RankPlacement.create({ rank, node, gpuIndices: [...Array(GPUS).keys()] }));
        const next = schedule(j, placement, new Date(this.now));
        for (const p of placement) for (const g of p.gpuIndices) this.claims.set(`${p.node}/${g}`, this.owner(next.attempt, p.rank));
        this.job = next;
        return;
      }
      case 'start': {
        const s = a?.ranks.find((r) => r.rank === e.rank);
        const node = a?.placement.find((p) => p.rank === e.rank)?.node;
        if (!a || !isActive(j) || s?.phase !== RankPhase.RANK_PHASE_ASSIGNED || !node || this.lost.has(node)) return;
        this.running.add(this.owner(a.number, e.rank));
        this.report(e.rank, RankPhase.RANK_PHASE_STARTED);
        return;
      }
      case 'exit': {
        if (!a || !this.running.has(this.owner(a.number, e.rank))) return;
        const node = a.placement.find((p) => p.rank === e.rank)!.node;
        if (this.lost.has(node)) return; // its report cannot arrive while the node is cut off
        this.running.delete(this.owner(a.number, e.rank));
        this.report(e.rank, RankPhase.RANK_PHASE_EXITED, e.code === 137 ? undefined : e.code, e.code === 137 ? 'SIGKILL' : '');
        return;
      }
      case 'xid':
        return this.signal('xid', NODES[e.node]!, e.xid);
      case 'lose':
        this.lost.add(NODES[e.node]!);
        return this.signal('node-lost', NODES[e.node]!);
      case 'return': {
        const node = NODES[e.node]!;
        if (!this.lost.delete(node)) return;
        // Reconciliation: the agent's unwanted processes are stopped (their exits recorded
        // when still unrecorded), and claims nobody holds are freed.
        for (const owner of [...this.running]) {
          if (this.nodeOf(owner) !== node) continue;
          this.running.delete(owner);
          const [, attempt, rank] = owner.split(':').map(Number) as [number, number, number];
          if (attempt === this.job.attempt && !isActive(this.job)) this.report(rank, RankPhase.RANK_PHASE_EXITED, undefined, 'SIGTERM');
        }
        for (const [k, owner] of [...this.claims]) {
          if (!k.startsWith(`${node}/`) || this.running.has(owner)) continue;
          const [, attempt, rank] = owner.split(':').map(Number) as [number, number, number];
          const wanted = attempt === this.job.attempt && isActive(this.job) && liveRanks(this.job).some((p) => p.rank === rank);
          if (!wanted) this.claims.delete(k);
        }
        return;
      }
      case 'stop': {
        // Stops the scheduler sends to ranks of an attempt that has ended or is recovering: a
        // running rank exits by SIGTERM, one that never started leaves the agent's tombstone
        // (reported as killed before it started).
        if (!a || isActive(j)) return;
        for (const p of liveRanks(j)) {
          const owner = this.owner(a.number, p.rank);
          if (this.lost.has(p.node)) continue;
          const wasRunning = this.running.delete(owner);
          this.report(p.rank, RankPhase.RANK_PHASE_EXITED, undefined, wasRunning ? 'SIGTERM' : 'SIGKILL');
        }
        return;
      }
      case 'tick': {
        this.now += e.ms;
        const detected = j.recovery?.detectedAt?.getTime() ?? this.now;
        const unhealthy = new Set(this.lost);
        if (j.state === JobState.JOB_STATE_RECOVERING && !j.recovery?.decided && this.now >= detected + config.recovery.settleMs) {
          const d = decideStep(j, config, unhealthy, new Date(this.now), 0.5);
          if (d) this.job = d.next;
        }
        const r = requeueStep(this.job, this.lost, new Date(this.now));
        if (r) this.job = r.next;
        return;
      }
      case 'cancel':
        if (!isTerminalJobState(j.state)) this.job = endJob(j, JobState.JOB_STATE_CANCELLED, 'cancelled', new Date(this.now));
        return;
    }
  }

  /** Owners of attempts other than the current one whose processes run on reachable nodes. */
  runningAttempts(): Set<number> {
    return new Set([...this.running].filter((o) => !this.lost.has(this.nodeOf(o) ?? '')).map((o) => Number(o.split(':')[1])));
  }

  check(): void {
    // No two attempts of the job run at once (ranks cut off on a lost node aside: they are
    // fenced by their attempt number and stopped by their agent or wrapper).
    expect(this.runningAttempts().size).toBeLessThanOrEqual(1);
    // Every GPU claim belongs to a rank that may still run: a live rank of the current
    // attempt, or a rank on a node that is cut off and has not reconciled yet.
    for (const [k, owner] of this.claims) {
      const [, attempt, rank] = owner.split(':').map(Number) as [number, number, number];
      const node = k.split('/')[0]!;
      const live = attempt === this.job.attempt && liveRanks(this.job).some((p) => p.rank === rank);
      expect(live || this.lost.has(node), `claim ${k} by ${owner} (job ${JobState[this.job.state]})`).toBe(true);
    }
    // Blamed nodes are never part of a later attempt.
    const a = currentAttempt(this.job);
    if (a && a.number > 1 && this.job.state !== JobState.JOB_STATE_PENDING) {
      const excludedBefore = this.job.attempts[a.number - 2]?.failure?.failureClass === FailureClass.FAILURE_CLASS_NODE_FAULT ? [this.job.attempts[a.number - 2]!.failure!.node] : [];
      for (const p of a.placement) expect(excludedBefore).not.toContain(p.node);
    }
    expect(this.job.recoveries).toBeLessThanOrEqual(this.job.spec!.retry!.maxRecoveries!);
  }

  /** Heals every node, stops what must stop and lets time pass until nothing is left to do. */
  settle(): void {
    for (let i = 0; i < NODES.length; i++) this.apply({ kind: 'return', node: i });
    for (let i = 0; i < 20; i++) {
      this.apply({ kind: 'stop' });
      this.apply({ kind: 'tick', ms: 5_000 });
      this.check();
    }
  }
}

describe('recovery under random fault sequences', () => {
  it('never leaks a GPU claim, never runs two attempts at once, never exceeds the budget', () => {
    const classes = fc.subarray([FailureClass.FAILURE_CLASS_NODE_FAULT, FailureClass.FAILURE_CLASS_APPLICATION, FailureClass.FAILURE_CLASS_GPU_CONTAINED]);
    fc.assert(fc.property(classes, fc.integer({ min: 0, max: 3 }), fc.array(event, { maxLength: 80 }), (retryOn, budget, events) => {
      const m = new Model(retryOn, budget);
      for (const e of events) {
        m.apply(e);
        m.check();
      }
      m.settle();
      // Once everything has healed and stopped: a job that ended holds nothing (the tenant's
      // usage is back to zero); one still going holds exactly its live ranks' GPUs.
      const held = [...m.claims.values()];
      if (isTerminalJobState(m.job.state) || m.job.state === JobState.JOB_STATE_PENDING) expect(held).toEqual([]);
      else expect(new Set(held)).toEqual(new Set(liveRanks(m.job).map((p) => allocationOwner('j', m.job.attempt, p.rank))));
      if (isTerminalJobState(m.job.state)) expect(m.running.size).toBe(0);
    }), { numRuns: 1500 });
  });
});
