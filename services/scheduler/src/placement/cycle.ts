// One scheduling pass over the pending queue, in queue order (priority, fair-share deficit,
// submit time). Each job is placed in a working copy of the snapshot so later jobs see what
// earlier ones took. Per job:
//   quota admission -> filters (static, once per job shape) -> topology-aware gang selection
//   with best-fit scoring -> place; or else wait for / choose preemption victims; or else,
//   for the first job that cannot start, a backfill reservation that later jobs must not
//   delay. Explanations for the jobs left pending are computed at the end, on the final state.
import { computeReservation, consumeSlack, endsBefore, expectedEnd, type Release } from './backfill.js';
import { ClusterState, MAX_GPUS_PER_NODE } from './cluster-state.js';
import { resolveConfig, type SchedulingConfig } from './config.js';
import { explainRejections, formatTime } from './explain.js';
import { compareVictims, findVictims, rankNodeIndices } from './preemption.js';
import { QuotaLedger } from './quota.js';
import { orderQueue } from './queue.js';
import { pickGpus } from './scores/gpu-locality.js';
import { shapeKey, StaticFitCache, type StaticFit } from './static-fit.js';
import { describeFailure, selectNodes, type GangFailure, type GangOutcome, type ReservationGuard } from './topology.js';
import type { CycleOptions, CyclePlan, JobRequest, NodeView, RunningJob, Unschedulable } from './types.js';

/** Blocked jobs that may try for a reservation in one cycle (see Cycle.reserve). */
const MAX_RESERVATION_TRIES = 8;

export { orderQueue } from './queue.js';

export function planCycle(nodes: readonly NodeView[], pending: readonly JobRequest[], options: CycleOptions = {}): CyclePlan {
  return new Cycle(nodes, pending, options).run();
}

/** The latest time the input mentions: a deterministic default when the caller gives no clock. */
function defaultNow(pending: readonly JobRequest[], running: readonly RunningJob[]): number {
  let now = 0;
  for (const j of pending) now = Math.max(now, j.submitTime);
  for (const j of running) now = Math.max(now, j.startTime, j.lastCheckpointTime ?? 0, j.preemptedAt ?? 0);
  return now;
}

function invalidReason(job: JobRequest): string | undefined {
  if (!Number.isInteger(job.nodes) || job.nodes < 1) return `nodes must be a positive integer, got ${job.nodes}`;
  if (!Number.isInteger(job.gpusPerNode) || job.gpusPerNode < 1 || job.gpusPerNode > MAX_GPUS_PER_NODE) {
    return `gpusPerNode must be 1..${MAX_GPUS_PER_NODE}, got ${job.gpusPerNode}`;
  }
  if (!Number.isFinite(job.timeLimitSec) || job.timeLimitSec < 0) return `timeLimitSec must be >= 0, got ${job.timeLimitSec}`;
  return undefined;
}

interface PendingEntry {
  entry: Unschedulable;
  job: JobRequest;
  fit?: StaticFit;
  /** The reservation constrains this job (it came after the head and does not end before it). */
  guarded: boolean;
}

class Cycle {
  private readonly config: SchedulingConfig;
  private readonly running: readonly RunningJob[];
  private readonly now: number;
  private readonly state: ClusterState;
  private readonly fits: StaticFitCache;
  private readonly ledger: QuotaLedger;
  private readonly plan: CyclePlan = { placements: [], unschedulable: [], preemptions: [], reservations: [], nominations: [] };
  /** Running jobs not yet claimed by a preemptor this cycle, cheapest victim first. */
  private readonly claimable: Map<string, RunningJob>;
  /**
   * Failures remembered within the cycle. Free GPUs and reservation slack only shrink while
   * a cycle runs, so a shape that failed at n nodes fails at >= n nodes for the rest of it:
   * a queue of thousands of similar jobs costs one real attempt per shape.
   */
  private readonly failedFit = new Map<string, { nodes: number; failure: GangFailure }>();
  /** Same for victim searches, keyed also by tenant and priority (a heuristic bound). */
  private readonly failedPreempt = new Map<string, number>();
  /** When a claimed running job's GPUs come free for others: its new holder's end. */
  private readonly endOverride = new Map<string, number>();
  /** GPUs taken this cycle (placements and holds) and when they come free. */
  private readonly taken: Release[] = [];
  private guard: ReservationGuard | undefined;
  private reserveTries = 0;
  private readonly reserveFailedShapes = new Set<string>();
  private readonly rankNodes = new Map<RunningJob, Int32Array>();
  private readonly left: PendingEntry[] = [];

  constructor(
    nodes: readonly NodeView[],
    private readonly pending: readonly JobRequest[],
    private readonly options: CycleOptions,
  ) {
    this.config = resolveConfig(options.config);
    this.running = options.running ?? [];
    this.now = options.now ?? defaultNow(pending, this.running);
    this.state = new ClusterState(nodes);
    this.fits = new StaticFitCache(this.state);
    this.ledger = QuotaLedger.fromRunning(this.config, this.running);
    const byCost = [...this.running].sort((a, b) => compareVictims(a, b, this.now));
    this.claimable = new Map(byCost.map((j) => [j.id, j]));
    if (options.clock) this.plan.timings = [];
  }

  run(): CyclePlan {
    const clock = this.options.clock;
    const order = orderQueue(this.pending, { config: this.config, usage: this.options.usage ?? {}, running: this.running });
    let position = 0;
    for (const job of order) {
      const t0 = clock?.() ?? 0;
      const placed = this.decide(job, position + 1);
      if (!placed) position += 1;
      if (clock) this.plan.timings!.push({ jobId: job.id, nodes: job.nodes, gpusPerNode: job.gpusPerNode, placed, ms: clock() - t0 });
    }
    this.explainLeftovers();
    return this.plan;
  }

  /** Places the job or records why not; true when placed. */
  private decide(job: JobRequest, queuePosition: number): boolean {
    const invalid = invalidReason(job);
    if (invalid) {
      this.leave({ job, guarded: false, entry: { jobId: job.id, queuePosition, rejections: {}, message: invalid, reason: 'invalid' } });
      return false;
    }
    const shape = shapeKey(job);
    const fit = this.fits.get(job, shape);
    const gpus = job.nodes * job.gpusPerNode;
    const admission = this.ledger.admit(job.tenant, gpus);
    const eb = endsBefore(job, this.now, this.guard);
    const guarded = this.guard !== undefined && !eb;
    let outcome: GangOutcome | undefined;
    if (admission.ok) {
      const key = `${guarded ? 'g' : '-'}${job.topology}${shape}`;
      const known = this.failedFit.get(key);
      if (known && job.nodes >= known.nodes) {
        outcome = { ...known.failure, message: describeFailure(job, known.failure) };
      } else {
        outcome = selectNodes(this.state, job, fit, { free: this.state.freeCount, guard: this.guard, endsBefore: eb });
        if (outcome.ok) {
          this.place(job, outcome, admission.borrowed, eb);
          return true;
        }
        this.failedFit.set(key, { nodes: job.nodes, failure: outcome });
      }
    }
    if (this.tryPreempt(job, shape, fit, admission, eb, queuePosition)) return false;

    const entry: Unschedulable = { jobId: job.id, queuePosition, rejections: {}, message: '' };
    if (!admission.ok) {
      entry.reason = 'quota';
      entry.quota = admission.message;
      entry.message = `over quota: ${admission.message}`;
    } else if (outcome && !outcome.ok) {
      entry.reason = outcome.reason;
      entry.message = outcome.message;
      if (this.ledger.nominal(job.tenant) !== Infinity) entry.quota = this.ledger.describe(job.tenant);
      if (this.guard && guarded && selectNodes(this.state, job, fit, { free: this.state.freeCount }).ok) {
        entry.reason = 'reservation';
        entry.message = `would delay ${this.guard.jobId}, reserved from ${formatTime(this.guard.startTime)}; ${
          job.timeLimitSec > 0 ? `its time limit (${job.timeLimitSec}s) runs past that` : 'it has no time limit'
        }`;
      } else if (!this.guard && this.config.backfill.enabled) {
        this.reserve(job, fit, entry);
      }
    }
    this.leave({ job, fit, guarded, entry });
    return false;
  }

  private place(job: JobRequest, outcome: Extract<GangOutcome, { ok: true }>, borrowed: number, eb: boolean): void {
    const end = expectedEnd(this.now, job.timeLimitSec, this.now);
    const ranks = outcome.nodes.map((i, rank) => {
      const node = this.state.nodes[i]!;
      const gpus = pickGpus(this.state.freeMask[i]!, node.gpuCount, job.gpusPerNode);
      this.state.take(i, gpus);
      this.taken.push({ node: i, gpus: gpus.length, end });
      if (this.guard && !eb) consumeSlack(this.guard, i, gpus.length);
      return { rank, node: node.name, gpus };
    });
    this.ledger.charge(job.tenant, job.nodes * job.gpusPerNode);
    let explanation = outcome.explanation;
    if (borrowed > 0) explanation += `; borrows ${borrowed} GPUs from cohort ${this.ledger.cohortOf(job.tenant)}`;
    if (this.guard) {
      explanation += eb
        ? `; backfilled: ends by ${formatTime(end)}, before ${this.guard.jobId}'s reservation at ${formatTime(this.guard.startTime)}`
        : `; backfilled: leaves the GPUs reserved for ${this.guard.jobId}`;
    }
    this.plan.placements.push({
      jobId: job.id,
      ranks,
      domain: outcome.domain,
      level: outcome.level,
      explanation,
      ...(borrowed > 0 ? { borrowedGpus: borrowed } : {}),
    });
  }

  /**
   * Lets the job wait for GPUs already being released by preempted jobs, or choose new
   * victims. Either way it holds the chosen nodes' free GPUs for the rest of the cycle, so
   * lower-ranked jobs cannot take what it is waiting to assemble. True when nominated.
   */
  private tryPreempt(job: JobRequest, shape: string, fit: StaticFit, admission: ReturnType<QuotaLedger['admit']>, eb: boolean, queuePosition: number): boolean {
    const key = `${admission.ok}${job.priority}|${job.tenant}|${job.topology}${shape}`;
    if (job.nodes >= (this.failedPreempt.get(key) ?? Infinity)) return false;
    const enabled = this.config.preemption.enabled;
    if (!this.mayFindVictims(job, admission)) return false;
    const candidates = [...this.claimable.values()].filter((j) => enabled || j.terminating);
    if (candidates.length === 0) return false;
    const choice = findVictims({
      state: this.state,
      job,
      fit,
      candidates,
      ledger: this.ledger,
      admitted: admission.ok,
      borrows: admission.ok && admission.borrowed > 0,
      guard: this.guard,
      endsBefore: eb,
      policy: { now: this.now, config: this.config },
      rankNodes: (r) => {
        let idx = this.rankNodes.get(r);
        if (!idx) this.rankNodes.set(r, (idx = rankNodeIndices(this.state, r)));
        return idx;
      },
    });
    if (!choice) {
      this.failedPreempt.set(key, job.nodes);
      return false;
    }
    const end = expectedEnd(this.now, job.timeLimitSec, this.now);
    for (const { job: victim, reason } of choice.victims) {
      this.claimable.delete(victim.id);
      this.endOverride.set(victim.id, end);
      if (!victim.terminating) {
        this.ledger.release(victim.tenant, victim.ranks.reduce((n, r) => n + r.gpus.length, 0));
        this.plan.preemptions.push({ jobId: victim.id, preemptorId: job.id, reason });
      }
    }
    for (const i of choice.outcome.nodes) {
      const node = this.state.nodes[i]!;
      const hold = Math.min(job.gpusPerNode, this.state.freeCount[i]!);
      if (hold > 0) {
        this.state.take(i, pickGpus(this.state.freeMask[i]!, node.gpuCount, hold));
        this.taken.push({ node: i, gpus: hold, end });
      }
      if (this.guard && !eb) consumeSlack(this.guard, i, job.gpusPerNode);
    }
    this.ledger.charge(job.tenant, job.nodes * job.gpusPerNode);
    const names = choice.outcome.nodes.map((i) => this.state.nodes[i]!.name);
    const waitingFor = choice.victims.map((v) => v.job.id);
    this.plan.nominations.push({ jobId: job.id, nodes: names, waitingFor });
    const fresh = choice.victims.filter((v) => !v.job.terminating).length;
    this.leave({
      job,
      fit,
      guarded: this.guard !== undefined && !eb,
      entry: {
        jobId: job.id,
        queuePosition,
        rejections: {},
        reason: 'waiting-for-preemption',
        ...(this.ledger.nominal(job.tenant) !== Infinity ? { quota: this.ledger.describe(job.tenant) } : {}),
        message: `waiting for ${waitingFor.length} job(s) to release GPUs (${fresh} preempted now) on ${choice.outcome.domain}: ${waitingFor.slice(0, 5).join(', ')}${waitingFor.length > 5 ? ', ...' : ''}`,
      },
    });
    return true;
  }

  /**
   * A cheap necessary condition for findVictims: something is already terminating, or the
   * cheapest claimable job has lower priority, or the tenant could reclaim lent quota.
   */
  private mayFindVictims(job: JobRequest, admission: ReturnType<QuotaLedger['admit']>): boolean {
    const cheapest = this.claimable.values().next().value;
    if (cheapest === undefined) return false;
    if (cheapest.terminating || cheapest.priority < job.priority) return true;
    return (
      this.config.preemption.enabled &&
      this.config.preemption.reclaimWithinCohort === 'any' &&
      admission.ok &&
      admission.borrowed === 0 &&
      this.ledger.cohortOf(job.tenant) !== undefined
    );
  }

  /**
   * Gives the head job a reservation from running jobs' expected ends. When the head cannot
   * get one (its GPUs are held by jobs without a time limit), the next blocked jobs may try,
   * but only a few per cycle and once per shape: each try costs a pass over the cluster, and
   * with 20,000 blocked jobs an unbounded search would take seconds.
   */
  private reserve(job: JobRequest, fit: StaticFit, entry: Unschedulable): void {
    const shape = shapeKey(job);
    if (this.reserveTries >= MAX_RESERVATION_TRIES || this.reserveFailedShapes.has(shape)) {
      entry.message += '; no reservation possible this cycle';
      return;
    }
    this.reserveTries++;
    const result = computeReservation(this.state, job, fit, this.releases(), this.now);
    if (!result.ok) {
      this.reserveFailedShapes.add(shape);
      entry.message += result.never
        ? '; cannot fit even when every running job has ended'
        : '; no reservation possible: the GPUs it needs are held by jobs without a time limit';
      return;
    }
    this.guard = result.guard;
    const reservation = { jobId: job.id, startTime: result.guard.startTime, nodes: result.nodes.map((i) => this.state.nodes[i]!.name) };
    this.plan.reservations.push(reservation);
    entry.reservation = reservation;
    entry.message += `; reserved to start by ${formatTime(reservation.startTime)}`;
  }

  /** Every GPU held now and when it comes free, for reservations. */
  private releases(): Release[] {
    const out: Release[] = [...this.taken];
    for (const job of this.running) {
      const end = this.endOverride.get(job.id) ?? (job.terminating ? this.now : expectedEnd(job.startTime, job.timeLimitSec, this.now));
      for (const r of job.ranks) {
        const i = this.state.byName.get(r.node);
        if (i !== undefined) out.push({ node: i, gpus: r.gpus.length, end });
      }
    }
    return out;
  }

  private leave(p: PendingEntry): void {
    this.left.push(p);
    this.plan.unschedulable.push(p.entry);
  }

  /** Rejection counts on the final state, once per job shape. */
  private explainLeftovers(): void {
    const cache = new Map<string, Record<string, number>>();
    for (const p of this.left) {
      if (!p.fit) continue;
      const guarded = p.guarded && this.guard !== undefined && this.guard.jobId !== p.job.id;
      const key = `${guarded ? 'g' : '-'}${shapeKey(p.job)}`;
      let counts = cache.get(key);
      if (!counts) {
        counts = explainRejections(this.state, p.job, p.fit, guarded ? this.guard : undefined, false);
        cache.set(key, counts);
      }
      p.entry.rejections = { ...counts };
    }
  }
}
