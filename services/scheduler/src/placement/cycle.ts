// One scheduling pass over the pending queue, in queue order (priority, fair-share deficit,
// submit time). Each job is placed in a working copy of the snapshot so later jobs see what
// earlier ones took. Per job:
//   quota admission -> filter plugins (static ones once per job shape, the job's exclusions
//   on top) -> topology-aware gang selection (kept ranks first for a recovery attempt, score
//   plugins, then best fit) -> place; or else wait for / choose preemption victims; or else,
//   for the first job that cannot start, a backfill reservation that later jobs must not
//   delay. Explanations for the jobs left pending are computed at the end, on the final state.
import { computeReservation, consumeSlack, endsBefore, expectedEnd, type Release } from './backfill.js';
import { ClusterState, MAX_GPUS_PER_NODE } from './cluster-state.js';
import { resolveConfig, type SchedulingConfig } from './config.js';
import { formatTime, PendingExplainer } from './explain.js';
import { createCycleContext } from './framework/context.js';
import { Plugins } from './framework/registry.js';
import type { CycleContext, ReservationGuard, Scenario } from './framework/types.js';
import { FailureMemo, LiveSelector } from './memo.js';
import { assignGpus, pickGpus } from './plugins/gpu-locality/index.js';
import { findVictims, VictimPool } from './preemption.js';
import { QuotaLedger } from './quota.js';
import { orderQueue } from './queue.js';
import { FitCache, type JobFit } from './static-fit.js';
import type { GangOutcome } from './topology.js';
import type { CycleOptions, CyclePlan, JobRequest, NodeView, RejectionCounts, RunningJob, Unschedulable } from './types.js';

/** Blocked jobs that may try for a reservation in one cycle (see Cycle.reserve). */
const MAX_RESERVATION_TRIES = 8;

export { orderQueue } from './queue.js';

export function planCycle(nodes: readonly NodeView[], pending: readonly JobRequest[], options: CycleOptions = {}): CyclePlan {
  // Nothing to place: nothing to preempt, reserve or explain either. Building the cycle's node
  // indices and victim pool anyway cost a pass over 10,000 nodes and 41,000 running jobs about
  // a second of CPU, every pass, in a cluster at rest.
  if (pending.length === 0) return { placements: [], unschedulable: [], preemptions: [], reservations: [], unevaluated: [], nominations: [], ...(options.clock && { timings: [] }) };
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
  if (job.gpusPerNode === 0) return 'it asks for all GPUs of each node, and no READY node matches its GPU type and node selector';
  if (!Number.isInteger(job.gpusPerNode) || job.gpusPerNode < 1 || job.gpusPerNode > MAX_GPUS_PER_NODE) {
    return `gpusPerNode must be 1..${MAX_GPUS_PER_NODE}, got ${job.gpusPerNode}`;
  }
  if (!Number.isFinite(job.timeLimitSec) || job.timeLimitSec < 0) return `timeLimitSec must be >= 0, got ${job.timeLimitSec}`;
  return undefined;
}

/**
 * Placeholder counts of a pending job with a fit until explainLeftovers replaces them (it
 * always does): one shared object instead of one per job kept alive to the end of the cycle.
 */
const UNEXPLAINED: RejectionCounts = Object.freeze({});

/**
 * The jobs left pending, in the order of plan.unschedulable, with what explaining them needs:
 * columns rather than an object per job (a long queue would keep 20,000 of them to the end).
 */
interface Leftovers {
  jobs: JobRequest[];
  shapes: (string | undefined)[];
  fits: (JobFit | undefined)[];
  /** The reservation constrains the job (it came after the head and does not end before it). */
  guarded: boolean[];
}

class Cycle {
  private readonly config: SchedulingConfig;
  private readonly running: readonly RunningJob[];
  private readonly now: number;
  private readonly state: ClusterState;
  private readonly plugins: Plugins;
  private readonly context: CycleContext;
  private readonly fits: FitCache;
  private readonly ledger: QuotaLedger;
  private readonly plan: CyclePlan = { placements: [], unschedulable: [], preemptions: [], reservations: [], nominations: [], unevaluated: [] };
  /** Running jobs not yet claimed by a preemptor this cycle, cheapest victim first. */
  private readonly claimable: Map<string, RunningJob>;
  /** The same jobs as the victim searches read them. */
  private readonly pool: VictimPool;
  /** Selection on the live state, remembering failures within the cycle (memo.ts). */
  private readonly selector: LiveSelector;
  /** Failed victim searches, keyed also by tenant and priority (a heuristic bound). */
  private readonly failedPreempt = new FailureMemo<true>();
  /** When a claimed running job's GPUs come free for others: its new holder's end. */
  private readonly endOverride = new Map<string, number>();
  /** GPUs taken this cycle (placements and holds) and when they come free. */
  private readonly taken: Release[] = [];
  private guard: ReservationGuard | undefined;
  private reserveTries = 0;
  private readonly reserveFailedShapes = new Set<string>();
  private readonly left: Leftovers = { jobs: [], shapes: [], fits: [], guarded: [] };
  /** "over quota: ..." per refusal message (the ledger shares refusals until usage changes). */
  private readonly overQuotaText = new Map<string, string>();
  /** liveScenario's two scenarios (the job ends before the reservation or not) for the current guard. */
  private live: [Scenario, Scenario] | undefined;
  /** The first of `claimable` (the cheapest victim); null once a claim may have removed it. */
  private cheapest: RunningJob | undefined | null = null;
  /** Keys of failed victim searches by tenant, topology, priority and admission (no string built per job). */
  private readonly preemptKeys = [new Map<string, Map<string, Map<number, string>>>(), new Map<string, Map<string, Map<number, string>>>()] as const;

  constructor(
    nodes: readonly NodeView[],
    private readonly pending: readonly JobRequest[],
    private readonly options: CycleOptions,
  ) {
    this.config = resolveConfig(options.config);
    this.running = options.running ?? [];
    this.now = options.now ?? defaultNow(pending, this.running);
    this.state = new ClusterState(nodes);
    this.plugins = Plugins.of(options.plugins);
    this.context = createCycleContext({ state: this.state, config: this.config, now: this.now, running: this.running, pending });
    this.fits = new FitCache(this.plugins, this.context);
    this.selector = new LiveSelector(this.state);
    this.ledger = QuotaLedger.fromRunning(this.config, this.running);
    this.pool = new VictimPool(this.state, this.running, this.now);
    this.claimable = new Map();
    for (const j of this.pool.jobs) this.claimable.set(j.id, j);
    if (options.clock) this.plan.timings = [];
  }

  run(): CyclePlan {
    const clock = this.options.clock;
    const order = orderQueue(this.pending, { config: this.config, usage: this.options.usage ?? {}, running: this.running });
    let position = 0;
    const depth = Math.min(order.length, Math.max(0, this.options.depth ?? Infinity));
    for (let k = depth; k < order.length; k++) this.plan.unevaluated.push(order[k]!.id);
    for (let k = 0; k < depth; k++) {
      const job = order[k]!;
      const t0 = clock?.() ?? 0;
      const placed = this.decide(job, position + 1);
      if (!placed) position += 1;
      if (clock) this.plan.timings!.push({ jobId: job.id, nodes: job.nodes, gpusPerNode: job.gpusPerNode, placed, ms: clock() - t0 });
    }
    this.explainLeftovers();
    return this.plan;
  }

  /** The live state as a scenario, with the reservation as it stands (shared: selection only reads it). */
  private liveScenario(endsBefore: boolean): Scenario {
    let s = this.live;
    if (!s || s[0].guard !== this.guard) {
      const free = this.state.freeCount;
      s = this.live = [
        { free, guard: this.guard, endsBefore: false },
        { free, guard: this.guard, endsBefore: true },
      ];
    }
    return s[endsBefore ? 1 : 0];
  }

  /** Places the job or records why not; true when placed. */
  private decide(job: JobRequest, queuePosition: number): boolean {
    const invalid = invalidReason(job);
    if (invalid) {
      this.leave(job, { jobId: job.id, queuePosition, rejections: {}, message: invalid, reason: 'invalid' }, false);
      return false;
    }
    const fit = this.fits.fit(job);
    const shape = this.fits.shape;
    const gpus = job.nodes * job.gpusPerNode;
    const admission = this.ledger.admit(job.tenant, gpus);
    const eb = endsBefore(job, this.now, this.guard);
    const guarded = this.guard !== undefined && !eb;
    let outcome: GangOutcome | undefined;
    if (admission.ok) {
      outcome = this.selector.select(job, shape, fit, guarded, this.liveScenario(eb));
      if (outcome.ok) {
        this.place(job, outcome, admission.borrowed, eb);
        return true;
      }
    }
    if (this.tryPreempt(job, shape, fit, admission, eb, queuePosition)) return false;

    const entry: Unschedulable = { jobId: job.id, queuePosition, rejections: UNEXPLAINED, message: '' };
    if (!admission.ok) {
      entry.reason = 'quota';
      entry.quota = admission.message;
      entry.message = this.overQuota(admission.message);
    } else if (outcome && !outcome.ok) {
      entry.reason = outcome.reason;
      entry.message = outcome.message;
      if (this.ledger.nominal(job.tenant) !== Infinity) entry.quota = this.ledger.describe(job.tenant);
      if (this.guard && guarded && this.selector.select(job, shape, fit, false, { free: this.state.freeCount }).ok) {
        entry.reason = 'reservation';
        entry.message = `would delay ${this.guard.jobId}, reserved from ${formatTime(this.guard.startTime)}; ${
          job.timeLimitSec > 0 ? `its time limit (${job.timeLimitSec}s) runs past that` : 'it has no time limit'
        }`;
      } else if (!this.guard && this.config.backfill.enabled) {
        this.reserve(job, shape, fit, entry);
      }
    }
    this.leave(job, entry, guarded, shape, fit);
    return false;
  }

  private place(job: JobRequest, outcome: Extract<GangOutcome, { ok: true }>, borrowed: number, eb: boolean): void {
    const end = expectedEnd(this.now, job.timeLimitSec, this.now);
    const ranks = outcome.nodes.map((i, rank) => {
      const node = this.state.nodes[i]!;
      const gpus = assignGpus(this.state.freeMask[i]!, node.gpuCount, job.gpusPerNode, outcome.gpus?.[rank]);
      this.state.take(i, gpus);
      this.taken.push({ node: i, gpus: gpus.length, end });
      if (this.guard && !eb) consumeSlack(this.guard, i, gpus.length);
      return { rank, node: node.name, gpus };
    });
    this.ledger.charge(job.tenant, job.nodes * job.gpusPerNode);
    const spares = outcome.nodes.filter((i) => this.context.spares.has(i)).map((i) => this.state.nodes[i]!.name);
    let explanation = outcome.explanation + this.plugins.describeNodes(outcome.nodes, this.context);
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
      ...(outcome.kept !== undefined ? { kept: outcome.kept } : {}),
      ...(spares.length > 0 ? { spares } : {}),
    });
  }

  /**
   * Lets the job wait for GPUs already being released by preempted jobs, or choose new
   * victims. Either way it holds the chosen nodes' free GPUs for the rest of the cycle, so
   * lower-ranked jobs cannot take what it is waiting to assemble. True when nominated.
   */
  private tryPreempt(job: JobRequest, shape: string, fit: JobFit, admission: ReturnType<QuotaLedger['admit']>, eb: boolean, queuePosition: number): boolean {
    if (!this.mayFindVictims(job, admission)) return false;
    const key = this.preemptKey(admission.ok, job);
    if (this.failedPreempt.get(shape, key, job, fit)) return false;
    const terminatingOnly = !this.config.preemption.enabled;
    if (this.pool.size(terminatingOnly) === 0) return false;
    const search = (f: JobFit) => findVictims({
      state: this.state,
      job,
      fit: f,
      pool: this.pool,
      terminatingOnly,
      ledger: this.ledger,
      admitted: admission.ok,
      borrows: admission.ok && admission.borrowed > 0,
      guard: this.guard,
      endsBefore: eb,
      policy: { now: this.now, config: this.config, spareNodes: this.context.spareNames },
    });
    const choice = search(fit);
    if (!choice) {
      this.failedPreempt.remember(shape, key, job, fit, true, () => (search({ ...fit.shape!, capacity: fit.capacity }) ? undefined : true));
      return false;
    }
    const end = expectedEnd(this.now, job.timeLimitSec, this.now);
    this.cheapest = null;
    for (const { job: victim, reason } of choice.victims) {
      this.claimable.delete(victim.id);
      this.pool.claim(victim.id);
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
    this.leave(
      job,
      {
        jobId: job.id,
        queuePosition,
        rejections: UNEXPLAINED,
        reason: 'waiting-for-preemption',
        ...(this.ledger.nominal(job.tenant) !== Infinity ? { quota: this.ledger.describe(job.tenant) } : {}),
        message: `waiting for ${waitingFor.length} job(s) to release GPUs (${fresh} preempted now) on ${choice.outcome.domain}: ${waitingFor.slice(0, 5).join(', ')}${waitingFor.length > 5 ? ', ...' : ''}`,
      },
      this.guard !== undefined && !eb,
      shape,
      fit,
    );
    return true;
  }

  /**
   * A cheap necessary condition for findVictims: something is already terminating, or the
   * cheapest claimable job has lower priority, or the tenant could reclaim lent quota (some
   * tenant of its cohort is borrowing: usage only falls while victims are chosen).
   */
  private mayFindVictims(job: JobRequest, admission: ReturnType<QuotaLedger['admit']>): boolean {
    if (this.cheapest === null) this.cheapest = this.claimable.values().next().value;
    const cheapest = this.cheapest;
    if (cheapest === undefined) return false;
    if (cheapest.terminating || cheapest.priority < job.priority) return true;
    return (
      this.config.preemption.enabled &&
      this.config.preemption.reclaimWithinCohort === 'any' &&
      admission.ok &&
      admission.borrowed === 0 &&
      this.ledger.cohortBorrowing(this.ledger.cohortOf(job.tenant))
    );
  }

  /** `${admitted}${priority}|${tenant}|${topology}`, built once per combination. */
  private preemptKey(admitted: boolean, job: JobRequest): string {
    const byTenant = this.preemptKeys[admitted ? 1 : 0];
    let byTopology = byTenant.get(job.tenant);
    if (!byTopology) byTenant.set(job.tenant, (byTopology = new Map()));
    let byPriority = byTopology.get(job.topology);
    if (!byPriority) byTopology.set(job.topology, (byPriority = new Map()));
    let key = byPriority.get(job.priority);
    if (key === undefined) byPriority.set(job.priority, (key = `${admitted}${job.priority}|${job.tenant}|${job.topology}`));
    return key;
  }

  /**
   * Gives the head job a reservation from running jobs' expected ends. When the head cannot
   * get one (its GPUs are held by jobs without a time limit), the next blocked jobs may try,
   * but only a few per cycle and once per shape and exclusion list: each try costs a pass
   * over the cluster, and with 20,000 blocked jobs an unbounded search would take seconds.
   */
  private reserve(job: JobRequest, shape: string, fit: JobFit, entry: Unschedulable): void {
    // Too few nodes pass its static filters (type, count, labels, state, exclusions): no
    // reservation search needed, and waiting alone will not help. Cheap, so checked always.
    // The shape's candidates less the job's own exclusions (its own candidate list is built only on demand).
    const eligible = (fit.shape ?? fit).candidates.length - (fit.excluded?.length ?? 0);
    if (eligible < job.nodes) {
      entry.message += `; can never fit as the cluster stands: ${eligible} node${eligible === 1 ? '' : 's'} pass its filters, it needs ${job.nodes}`;
      return;
    }
    if (job.excludeNodes.length > 0) shape += `#${[...job.excludeNodes].sort().join()}`;
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

  private overQuota(message: string): string {
    let text = this.overQuotaText.get(message);
    if (text === undefined) this.overQuotaText.set(message, (text = `over quota: ${message}`));
    return text;
  }

  private leave(job: JobRequest, entry: Unschedulable, guarded: boolean, shape?: string, fit?: JobFit): void {
    this.left.jobs.push(job);
    this.left.shapes.push(shape);
    this.left.fits.push(fit);
    this.left.guarded.push(guarded);
    this.plan.unschedulable.push(entry);
  }

  /** Rejection counts on the final state, once per job shape. */
  private explainLeftovers(): void {
    const explainer = new PendingExplainer(this.state, this.guard);
    const { jobs, shapes, fits, guarded } = this.left;
    const entries = this.plan.unschedulable;
    for (let k = 0; k < jobs.length; k++) {
      const fit = fits[k];
      const shape = shapes[k];
      if (!fit || shape === undefined) continue;
      const job = jobs[k]!;
      const constrained = guarded[k]! && this.guard !== undefined && this.guard.jobId !== job.id;
      entries[k]!.rejections = explainer.explain(job, shape, fit, constrained);
    }
  }
}
