// The leader's scheduling loop. Each pass: snapshot from Redis -> housekeeping (time limits,
// requeue of preempted jobs) -> fair-share usage -> the pure plan -> apply it: preemptions
// (SIGTERM with grace, then requeue), placements committed with compare-and-set (job
// revision, every GPU free, every node READY), dispatch, and explanations of waiting jobs.
// A placement that lost a race is simply re-planned next pass.
import { FailureClass, JobState, RankPlacement, RecoveryGrade, type Job } from '@gantry/proto';
import { AllocationConflictError, FencedError, SchedulingStateStore, StaleWriteError, allocationOwner, type JobCommit, type JobRecord, type NodeRecord, type PortRef } from '@gantry/store';
import { loadConfig } from '@gantry/service-kit';
import { Counter, Histogram } from 'prom-client';
import type { SchedulerContext } from './context.js';
import { accrueUsage, allocationsOf, formatRejections, planCycle, usageAt, type CyclePlan, type RejectionCounts, type NodeView, type Placement, type Preemption, type RankAssignment, type RunningJob, type UsageRecord } from './placement/index.js';
import { WholeNodeSizer, holdingJob, jobRequest, nodeView, priorityOf, runningJob } from './snapshot.js';
import { currentAttempt, endJob, isActive, liveRanks, preemptJob, requeueJob, schedule, type AttemptOrigin } from './jobs/lifecycle.js';
import type { RecoveryController } from './recovery/controller.js';
import type { ResumeSource } from './recovery/resume.js';
import { LastCommitTimes, preemptionCandidates } from './last-commits.js';
import { mutateJob } from './jobs/mutate.js';
import { dispatchAssignments, stopLiveRanks } from './dispatch/dispatcher.js';
import { pickPort, rendezvousEnv, type PortRange } from './dispatch/ports.js';
import { PolicyCache } from './policy.js';
import { WakeableLoop } from './wakeable-loop.js';
import { enforceNodeStates } from './nodes/enforce.js';
import { NodeSnapshot } from './nodes/node-snapshot.js';

/** How stale a waiting job's queue position in its explanation may get. */
const POSITION_REFRESH_MS = 5_000;
/**
 * Placements committed per round trip to Redis. Each is still its own script; a bigger batch
 * saves round trips but holds Redis (and the next batch's commands) for longer.
 */
const COMMIT_BATCH = 256;
/** The states of the jobs a pass views as holding GPUs (otherHolders adds the rest). */
const HOLDING_STATES: ReadonlySet<JobState> = new Set([JobState.JOB_STATE_SCHEDULED, JobState.JOB_STATE_RUNNING, JobState.JOB_STATE_PREEMPTED]);
/** The longest rest between passes (see restAfter). */
const MAX_REST_MS = 250;
/**
 * How much of the queue a pass between full passes decides by default (SCHEDULER_QUEUE_DEPTH):
 * its head, in queue order (Slurm's default_queue_depth does the same for its event-triggered
 * passes, 100 jobs there). Most passes are woken by an exit or a submission and can start a
 * few jobs at most, yet deciding and explaining every waiting job cost each of them time in
 * proportion to the queue.
 */
const QUICK_PASS_DEPTH = 256;
/**
 * The deepest a quick pass grows while quick passes keep placing every job they decide (see
 * SchedulingLoop.quickDepth): 16 of the default depth, about 2 s of placements on one core.
 */
const MAX_QUICK_PASS_DEPTH = 4_096;
/** A full pass (the whole queue: backfill behind the head, every waiting job's explanation) takes at most this share of the time. */
const FULL_PASS_SHARE = 0.2;

/**
 * The depth of the quick pass after one of `depth` that decided `decided` jobs and placed
 * `placed`: twice as deep (at most MAX_QUICK_PASS_DEPTH, or the configured depth if that is
 * more) when it placed every job it decided, else the configured depth (0: no more than it).
 */
export function nextQuickDepth(depth: number, configured: number, decided: number, placed: number): number {
  return placed >= decided ? Math.min(2 * depth, Math.max(configured, MAX_QUICK_PASS_DEPTH)) : 0;
}

interface PreparedPlacement {
  commit: JobCommit;
  why: string;
}

const rankZeroNode = (placement: RankPlacement[]): string => placement.find((r) => r.rank === 0)!.node;

export interface Explanation {
  queuePosition: number;
  reason: string;
  message: string;
  quota: string;
  rejections: Record<string, number>;
  summary: string;
  reservation?: { startTime: number; nodes: string[] };
  evaluatedAt: number;
}

/**
 * GPUs a recovery is coming back to, held from other jobs until its next attempt is placed:
 * released as the failed attempt's ranks exit, they would otherwise go to whoever is next in
 * the queue during the settle window and the backoff, and a restart in place would become a
 * whole-gang move. Undecided: every GPU of the attempt; decided: the kept ranks' GPUs.
 */
function heldForRecovery(records: JobRecord[]): Map<string, Set<number>> {
  const held = new Map<string, Set<number>>();
  for (const { job } of records) {
    const r = job.recovery;
    if (!r || (r.decided && !r.retry)) continue;
    const ranks = r.decided ? r.keep : (currentAttempt(job)?.placement ?? []);
    for (const p of ranks) {
      const gpus = held.get(p.node) ?? new Set<number>();
      for (const g of p.gpuIndices) gpus.add(g);
      held.set(p.node, gpus);
    }
  }
  return held;
}

function withheld(views: NodeView[], held: Map<string, Set<number>>): NodeView[] {
  if (held.size === 0) return views;
  return views.map((v) => {
    const h = held.get(v.name);
    return h ? { ...v, freeGpus: v.freeGpus.filter((g) => !h.has(g)) } : v;
  });
}

export class SchedulingLoop extends WakeableLoop {
  private readonly state: SchedulingStateStore;
  private readonly lastCommits: LastCommitTimes;
  private readonly policy: PolicyCache;
  private readonly nodes: NodeSnapshot;
  /** Each node record's view, while the snapshot keeps the record (an unchanged node keeps its record object). */
  private readonly views = new WeakMap<NodeRecord, NodeView>();
  /** Explanations written last pass (to write only changes); reset with leadership. */
  private written: Map<string, string> | undefined;
  private positionsWrittenAt = 0;
  /** When the last full pass began, and how long it took (ms). */
  private fullPassAt = 0;
  private fullPassMs = 0;
  /**
   * The next quick pass's depth when above the configured one: doubled after each quick pass
   * that placed every job it decided (the cluster had room for the whole head), back to the
   * configured depth after any pass that left a decided job waiting. A burst of submissions on a
   * cluster with room is then placed in a few passes rather than one per 256 jobs, each of
   * which read and viewed every node; while the head does not fit, quick passes stay short,
   * which is what the depth is for.
   */
  private quickDepth = 0;
  private readonly cycles: Histogram;
  private readonly placed: Counter;
  private readonly preempted: Counter;
  /** RENDEZVOUS_PORT_RANGE (validated with the rest of the scheduler's environment at start-up). */
  private readonly portRange: PortRange = loadConfig(rendezvousEnv).RENDEZVOUS_PORT_RANGE;

  constructor(private readonly ctx: SchedulerContext, private readonly recovery: RecoveryController, private readonly resume: ResumeSource) {
    super(() => ctx.settings.cycleIntervalMs);
    this.state = new SchedulingStateStore(ctx.redis);
    this.lastCommits = new LastCommitTimes(resume, ctx.log);
    this.policy = new PolicyCache(this.state, ctx.log);
    this.nodes = new NodeSnapshot(ctx.nodes);
    this.cycles = new Histogram({ name: 'gantry_scheduler_cycle_seconds', help: 'Duration of a scheduling pass', registers: [ctx.metrics], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5] });
    this.placed = new Counter({ name: 'gantry_scheduler_placements_total', help: 'Gangs placed', labelNames: ['outcome'], registers: [ctx.metrics] });
    this.preempted = new Counter({ name: 'gantry_scheduler_preemptions_total', help: 'Jobs preempted', registers: [ctx.metrics] });
  }

  override start(): void {
    this.forget();
    super.start();
  }

  /** Forgets what passes read and learned: a new leadership trusts nothing an earlier one read. */
  forget(): void {
    this.written = undefined;
    this.positionsWrittenAt = 0;
    this.fullPassAt = 0;
    this.quickDepth = 0;
    this.ctx.jobCache.reset();
    this.nodes.reset();
  }

  protected async pass(): Promise<boolean> {
    await this.runOnce();
    return false;
  }

  /**
   * A pass costs about the same whatever woke it, and most of that grows with the queue (the
   * plan, the explanations): run back to back, one for nearly every submission and every exit,
   * they were the largest share of the scheduler's CPU. So the loop rests as long as the pass took (at most
   * MAX_REST_MS) before the next one, and that pass serves every kick of the rest: at most half
   * its time goes to passes, and a short pass (a small queue) costs a kicked job almost nothing.
   */
  protected override restAfter(passMs: number): number {
    return Math.min(passMs, MAX_REST_MS);
  }

  protected onError(err: unknown): void {
    if (err instanceof FencedError) this.ctx.log.warn('fenced: another scheduler leads');
    else this.ctx.log.warn({ err: (err as Error).message }, 'scheduling pass failed');
  }

  async runOnce(): Promise<void> {
    const { ctx } = this;
    const epoch = ctx.epoch();
    if (epoch === 0) return;
    const end = this.cycles.startTimer();
    const now = Date.now();
    // Independent reads, issued together so that they share round trips.
    const [config, [queued, scheduled, runningJobs, preempted, recovering], nodes, storedUsage] = await Promise.all([
      this.policy.get(),
      ctx.jobCache.inStates([JobState.JOB_STATE_PENDING, JobState.JOB_STATE_SCHEDULED, JobState.JOB_STATE_RUNNING, JobState.JOB_STATE_PREEMPTED, JobState.JOB_STATE_RECOVERING]),
      this.nodes.read(),
      this.state.usage(),
    ]);
    const ended = await this.enforceTimeLimits([...scheduled, ...runningJobs], now, epoch);
    await enforceNodeStates(ctx, nodes, epoch, new Date(now));
    await this.requeuePreempted(preempted, epoch);
    if (await this.recovery.run(recovering, nodes, config, epoch, now)) this.kicked = true;
    // A recovering job waits out its backoff in the queue, invisible to the planner until then.
    const pending: JobRecord[] = [];
    const waiting: JobRecord[] = [];
    let nextDue = Infinity;
    for (const r of queued) {
      const due = r.job.recovery?.notBefore?.getTime() ?? 0;
      if (due <= now) pending.push(r);
      else {
        waiting.push(r);
        nextDue = Math.min(nextDue, due);
      }
    }

    const holding = [...scheduled, ...runningJobs].filter((r) => !ended.has(r.job.id));
    // From the checkpoint service's API (its Redis keys are its own), for the jobs this pass
    // could preempt: victims are ordered by the work they lose since their last commit.
    const lastCheckpoint = await this.lastCommits.get(preemptionCandidates(holding.map((r) => r.job), pending.map((r) => r.job), config, now));
    const running = [
      ...holding.map((r) => holdingJob(r.job, lastCheckpoint.get(r.job.id))),
      ...[...scheduled, ...runningJobs].filter((r) => ended.has(r.job.id)).map((r) => runningJob(r.job, undefined, true)),
      ...preempted.filter((r) => liveRanks(r.job).length > 0).map((r) => runningJob(r.job, undefined, true)),
      ...(await this.otherHolders(nodes, (id) => {
        const state = ctx.jobCache.stateOf(id);
        return state !== undefined && HOLDING_STATES.has(state);
      })),
    ];
    const { usage, written: usageWritten } = this.accrueUsage(storedUsage, running, now, config.fairShare.halfLifeSec);
    // Awaited at the end of the pass: the write shares a round trip with the pass's next one.
    usageWritten.catch(() => undefined);

    // With nothing pending the planner has nothing to do (planCycle), nor its node views.
    const views = pending.length === 0 ? [] : withheld(nodes.map((n) => this.viewOf(n)), heldForRecovery([...recovering, ...waiting]));
    const sizer = new WholeNodeSizer(views);
    const configuredDepth = ctx.settings.queueDepth ?? QUICK_PASS_DEPTH;
    const depth = Math.max(configuredDepth, this.quickDepth);
    const full = configuredDepth === 0 || pending.length <= depth || now - this.fullPassAt >= Math.max(ctx.settings.cycleIntervalMs, this.fullPassMs / FULL_PASS_SHARE);
    const plan = planCycle(views, pending.map((r) => jobRequest(r.job, sizer)), { now, running, config, usage, ...(full ? {} : { depth }) });
    // Only quick passes deepen the next; a full one that left a job waiting sets it back too.
    const decided = pending.length - plan.unevaluated.length;
    if (!full) this.quickDepth = nextQuickDepth(depth, configuredDepth, decided, plan.placements.length);
    else if (plan.placements.length < decided) this.quickDepth = 0;
    // The pass after the next backoff ends (only waiting jobs count: a due one that did not fit
    // must not make the loop spin).
    if (nextDue < Infinity) this.wakeAt(nextDue);
    for (const p of plan.preemptions) await this.preempt(p, epoch);
    await this.commitPlacements(plan, new Map(pending.map((r) => [r.job.id, r])), new Map(nodes.map((n) => [n.node.name, n.node.address])), epoch);
    await this.writeExplanations(plan, now, full);
    await usageWritten;
    end();
    if (full) {
      this.fullPassAt = now;
      this.fullPassMs = Date.now() - now;
    }
  }

  /**
   * The record's planner view, built once while the snapshot keeps the record. Later passes
   * get the same object, so it is frozen: a planner step that changed it in place would throw
   * instead of planning the next pass on what an earlier one did (withheld() copies).
   */
  private viewOf(rec: NodeRecord): NodeView {
    let view = this.views.get(rec);
    if (!view) {
      view = nodeView(rec);
      Object.freeze(view.freeGpus);
      Object.freeze(view.topology);
      this.views.set(rec, Object.freeze(view));
    }
    return view;
  }

  private async commitPlacements(plan: CyclePlan, records: Map<string, JobRecord>, addresses: Map<string, string>, epoch: number): Promise<void> {
    const state = { checkpointsDown: false, ports: new Map<string, Map<number, string>>() };
    // Each placement is still its own compare-and-set script; a batch only shares the round
    // trip (and the replica wait), which was most of a placement's cost. The next batch is
    // prepared while one is in flight, so this process and Redis work at the same time.
    let inflight: { commits: PreparedPlacement[]; results: Promise<PromiseSettledResult<JobRecord>[]> } | undefined;
    try {
      for (let i = 0; i < plan.placements.length; i += COMMIT_BATCH) {
        const commits = await this.preparePlacements(plan.placements.slice(i, i + COMMIT_BATCH), records, addresses, epoch, state);
        const sent = { commits, results: this.ctx.jobs.commitMany(commits.map((c) => c.commit)) };
        const done = inflight;
        inflight = sent;
        if (done) this.settleCommits(done.commits, await done.results);
      }
      if (inflight) {
        const done = inflight;
        inflight = undefined;
        this.settleCommits(done.commits, await done.results);
      }
    } finally {
      // A batch still in flight when an earlier one ended the pass: its outcome is read from
      // Redis next pass like any other (its rejection must not go unhandled).
      inflight?.results.catch(() => undefined);
    }
  }

  /**
   * The commits for a batch of placements: the new attempt, its GPU claims and its rendezvous
   * port. The ports held on the batch's rank-0 hosts are read in one round trip (hosts read
   * earlier in the pass are not read again: the picks of earlier batches are in the map).
   */
  private async preparePlacements(placements: Placement[], records: Map<string, JobRecord>, addresses: Map<string, string>, epoch: number, state: { checkpointsDown: boolean; ports: Map<string, Map<number, string>> }): Promise<PreparedPlacement[]> {
    const batch: { rec: JobRecord; p: Placement; placement: RankPlacement[] }[] = [];
    for (const p of placements) {
      const rec = records.get(p.jobId);
      if (!rec) continue;
      batch.push({ rec, p, placement: p.ranks.map((r) => RankPlacement.create({ rank: r.rank, node: r.node, gpuIndices: r.gpus, address: addresses.get(r.node) || r.node })) });
    }
    const unread = new Set(batch.filter((b) => !b.rec.job.spec?.masterPort).map((b) => rankZeroNode(b.placement)).filter((n) => !state.ports.has(n)));
    for (const [node, held] of await this.ctx.nodes.portsOf([...unread])) state.ports.set(node, held);
    const commits: PreparedPlacement[] = [];
    for (const { rec, p, placement } of batch) {
      // Once the checkpoint service has not answered, the other later attempts of this pass
      // would each wait out the same deadline: they are placed next pass too.
      if (state.checkpointsDown && rec.job.attempt > 0) continue;
      let origin: AttemptOrigin | undefined;
      try {
        origin = await this.attemptOrigin(rec.job, p);
      } catch (err) {
        state.checkpointsDown = true;
        this.ctx.log.warn({ job: p.jobId, err: (err as Error).message }, 'cannot learn where the attempt resumes from; placing it next pass');
        continue;
      }
      const next = schedule(rec.job, placement, new Date(), origin);
      const why = p.explanation ?? `placed in ${p.domain}`;
      currentAttempt(next)!.placementExplanation = why;
      const claims = placement.flatMap((r) => r.gpuIndices.map((gpu) => ({ node: r.node, gpu, owner: allocationOwner(next.id, next.attempt, r.rank) })));
      const portClaims = this.rendezvousPort(next, placement, state.ports);
      if (!portClaims) continue;
      commits.push({ commit: { prev: rec, next, reason: `placed on ${placement.map((r) => r.node).join(', ')}: ${why}`, epoch, claims, portClaims }, why });
    }
    return commits;
  }

  /** Counts, logs and dispatches each committed placement; a lost race is re-planned, any other failure ends the pass. */
  private settleCommits(commits: PreparedPlacement[], results: PromiseSettledResult<JobRecord>[]): void {
    const { ctx } = this;
    let failure: unknown;
    results.forEach((r, k) => {
      const { commit, why } = commits[k]!;
      const next = commit.next;
      if (r.status === 'fulfilled') {
        this.placed.inc({ outcome: 'committed' });
        ctx.log.info({ job: next.id, attempt: next.attempt, nodes: currentAttempt(next)!.placement.map((p) => p.node), why }, 'job scheduled');
        // Not awaited: sent together after the batch, the commands share the NATS writes.
        void dispatchAssignments(ctx, r.value.job, undefined, true);
      } else if (r.reason instanceof StaleWriteError || r.reason instanceof AllocationConflictError) {
        this.placed.inc({ outcome: 'conflict' });
        ctx.log.info({ job: next.id, err: r.reason.message }, 'placement lost a race; re-planning');
        this.kicked = true;
      } else {
        failure ??= r.reason;
      }
    });
    if (failure !== undefined) throw failure;
  }

  /**
   * Sets the new attempt's MASTER_PORT: the spec's, else the lowest free port of the range on
   * node rank 0's host (`ports`: the ports held per host, read in this pass; the pick is added
   * so the next job of the pass on that host gets another), returned as a claim for the
   * placement's commit (which fails, and the job is re-planned, if another placement took it
   * meanwhile). Undefined: no port is free.
   */
  private rendezvousPort(next: Job, placement: RankPlacement[], ports: Map<string, Map<number, string>>): PortRef[] | undefined {
    const attempt = currentAttempt(next)!;
    const spec = next.spec!;
    if (spec.masterPort) {
      attempt.masterPort = spec.masterPort;
      return [];
    }
    const node = rankZeroNode(placement);
    const held = ports.get(node) ?? new Map<number, string>();
    const port = pickPort(this.portRange, new Set(held.keys()));
    if (port === undefined) {
      this.ctx.log.warn({ job: next.id, node, range: this.portRange }, 'no free rendezvous port on node rank 0\'s host; placing the job next pass');
      return undefined;
    }
    const owner = allocationOwner(next.id, next.attempt, 0);
    held.set(port, owner);
    ports.set(node, held);
    attempt.masterPort = port;
    return [{ node, port, owner }];
  }

  /**
   * How the attempt about to be placed came about: the recovery grade it got (a kept rank
   * that could not stay turns the grade into a whole-gang placement), the nodes excluded and
   * the checkpoint it resumes from. A first attempt resumes from nothing.
   */
  private async attemptOrigin(job: Job, p: Placement): Promise<AttemptOrigin | undefined> {
    if (job.attempt === 0) return undefined;
    const r = job.recovery;
    let grade = r?.grade ?? RecoveryGrade.RECOVERY_GRADE_UNSPECIFIED;
    let gradeReason = r?.gradeReason ?? '';
    if (r?.decided && p.kept === false && (grade === RecoveryGrade.RECOVERY_GRADE_RESTART_IN_PLACE || grade === RecoveryGrade.RECOVERY_GRADE_REPLACE_NODES)) {
      grade = RecoveryGrade.RECOVERY_GRADE_REPLACE_GANG;
      gradeReason = `${gradeReason}; the kept nodes no longer fit, so the whole gang was placed anew`;
    }
    if (!r?.decided && currentAttempt(job)?.failure?.failureClass === FailureClass.FAILURE_CLASS_PREEMPTED) gradeReason = 'requeued after preemption';
    if (p.spares && p.spares.length > 0) gradeReason = `${gradeReason}${gradeReason ? '; ' : ''}took hot spare ${p.spares.join(', ')}`;
    return { grade, gradeReason, resumeFrom: await this.resume.newestCommitted(job.id), excludedNodes: [...new Set([...(job.spec?.excludeNodes ?? []), ...job.excludedNodes])] };
  }

  /** Stops a lower-priority job so a waiting one can start: SIGTERM, grace, then requeue. */
  private async preempt(p: Preemption, epoch: number): Promise<void> {
    const { ctx } = this;
    const reason = `preempted for ${p.preemptorId}: ${p.reason}`;
    let victim: Job | undefined;
    await mutateJob(ctx.jobs, p.jobId, (r) => {
      if (!isActive(r.job)) return undefined;
      victim = preemptJob(r.job, reason, new Date());
      return { next: victim, reason, epoch };
    });
    if (!victim) return;
    this.preempted.inc();
    ctx.log.info({ job: p.jobId, preemptor: p.preemptorId, reason: p.reason }, 'preempting');
    // Not awaited: a hung agent must not hold up this pass; requeuePreempted re-sends.
    void stopLiveRanks(ctx, victim, reason);
  }

  /** A preempted job whose ranks have all exited goes back to the queue (its next attempt gets a new number). */
  private async requeuePreempted(preempted: JobRecord[], epoch: number): Promise<void> {
    for (const rec of preempted) {
      if (liveRanks(rec.job).length > 0) {
        // The first stop may have been lost (an agent restarting); re-send, rate-limited.
        void stopLiveRanks(this.ctx, rec.job, rec.job.reason, undefined, false);
        continue;
      }
      await mutateJob(this.ctx.jobs, rec.job.id, (r) => {
        const next = requeueJob(r.job);
        return next ? { next, reason: `requeued after preemption (${r.job.reason})`, epoch } : undefined;
      });
      this.kicked = true;
    }
  }

  /** Ends jobs past their time limit (counted from placement); returns the ids it ended. */
  private async enforceTimeLimits(active: JobRecord[], now: number, epoch: number): Promise<Set<string>> {
    const ended = new Set<string>();
    for (const rec of active) {
      const limit = rec.job.spec?.timeLimitSeconds ?? 0;
      const placedAt = currentAttempt(rec.job)?.scheduledAt?.getTime();
      if (!limit || placedAt === undefined || now - placedAt <= limit * 1000) continue;
      const reason = `exceeded its time limit of ${limit}s`;
      let job: Job | undefined;
      await mutateJob(this.ctx.jobs, rec.job.id, (r) => {
        if (r.job.state !== JobState.JOB_STATE_RUNNING && r.job.state !== JobState.JOB_STATE_SCHEDULED) return undefined;
        job = endJob(r.job, JobState.JOB_STATE_FAILED, reason, new Date(now), FailureClass.FAILURE_CLASS_TIME_LIMIT);
        return { next: job, reason, epoch };
      });
      if (job) {
        ended.add(job.id);
        this.ctx.log.info({ job: job.id, limit }, 'time limit exceeded');
        void stopLiveRanks(this.ctx, job, reason);
      }
    }
    return ended;
  }

  /**
   * Jobs that still hold GPUs but are in none of the lists above: ended (failed, cancelled)
   * while their ranks stop. The planner must see their GPUs as busy and about to free up.
   */
  private async otherHolders(nodes: NodeRecord[], known: (jobId: string) => boolean): Promise<RunningJob[]> {
    const held = new Map<string, Map<string, RankAssignment>>();
    for (const n of nodes) {
      for (const a of n.allocations) {
        if (known(a.jobId)) continue;
        const ranks = held.get(a.jobId) ?? new Map<string, RankAssignment>();
        const key = `${a.rank}/${n.node.name}`;
        const r = ranks.get(key) ?? { rank: a.rank, node: n.node.name, gpus: [] };
        r.gpus.push(a.gpuIndex);
        ranks.set(key, r);
        held.set(a.jobId, ranks);
      }
    }
    if (held.size === 0) return [];
    const jobs = new Map((await this.ctx.jobCache.getMany([...held.keys()])).map((r) => [r.job.id, r.job]));
    return [...held].map(([id, ranks]) => {
      const job = jobs.get(id);
      return {
        id, tenant: job?.spec?.tenant ?? '', priority: priorityOf(job?.spec?.priorityClass ?? ''), ranks: [...ranks.values()],
        startTime: 0, timeLimitSec: 0, terminating: true,
      };
    });
  }

  /** Each tenant's usage now, from the stored records and what runs; `written`: the new records' write. */
  private accrueUsage(raw: Record<string, string>, running: ReturnType<typeof runningJob>[], now: number, halfLifeSec: number): { usage: Record<string, number>; written: Promise<void> } {
    const records: Record<string, UsageRecord> = {};
    for (const [t, json] of Object.entries(raw)) {
      try { records[t] = JSON.parse(json) as UsageRecord; } catch { /* a corrupt record restarts at zero */ }
    }
    const next = accrueUsage(records, allocationsOf(running.filter((r) => !r.terminating)), now, halfLifeSec);
    const written = this.state.setUsage(Object.fromEntries(Object.entries(next).map(([t, r]) => [t, JSON.stringify(r)])));
    return { usage: usageAt(next, now, halfLifeSec), written };
  }

  /**
   * Writes what changed of the waiting jobs' explanations. A full pass explained every waiting
   * job, so whatever else was written goes. A quick pass explained only the head: it updates
   * the written set in place once the write succeeded (a copy of it cost a quick pass time in
   * proportion to the queue) and removes only the jobs it placed; the next full pass removes
   * the rest that left. Queue positions refresh only in full passes (a quick one reaches only
   * the head, and would reset the clock for every job behind it).
   */
  private async writeExplanations(plan: CyclePlan, now: number, full: boolean): Promise<void> {
    this.written ??= new Map((await this.state.explainedJobIds()).map((id) => [id, '']));
    const written = this.written;
    const reservations = new Map(plan.reservations.map((r) => [r.jobId, r]));
    const current = full ? new Map<string, string>() : undefined;
    const updates: [string, string][] = [];
    const changed: Record<string, string> = {};
    // A placement shifts the queue position of every job behind it; rewriting thousands of
    // explanations each pass for that alone is waste, so positions refresh every few seconds
    // and everything else as soon as it changes.
    const refreshPositions = full && now - this.positionsWrittenAt >= POSITION_REFRESH_MS;
    if (refreshPositions) this.positionsWrittenAt = now;
    // Jobs of one shape share the planner's rejection counts: each object is encoded once.
    const rejectionKeys = new Map<RejectionCounts, string>();
    const summaries = new Map<RejectionCounts, string>();
    for (const u of plan.unschedulable) {
      const res = u.reservation ?? reservations.get(u.jobId);
      // What the explanation says, as a cheap string: compared every pass for every waiting
      // job, while the JSON (and the summary in it) is built only for the ones to write.
      let rejections = rejectionKeys.get(u.rejections);
      if (rejections === undefined) {
        rejections = '';
        for (const r in u.rejections) rejections += `${r}\u001f${u.rejections[r as keyof RejectionCounts]}\u001f`;
        rejectionKeys.set(u.rejections, rejections);
      }
      const key = `${u.reason ?? ''}\u001e${u.message}\u001e${u.quota ?? ''}\u001e${rejections}\u001e${res ? `${res.startTime}:${res.nodes.join(',')}` : ''}`;
      const before = written.get(u.jobId);
      if (current) current.set(u.jobId, key);
      else updates.push([u.jobId, key]);
      if (!refreshPositions && before === key) continue;
      let summary = summaries.get(u.rejections);
      if (summary === undefined) summaries.set(u.rejections, summary = formatRejections(u.rejections));
      const e: Omit<Explanation, 'evaluatedAt' | 'queuePosition'> = {
        reason: u.reason ?? '', message: u.message, quota: u.quota ?? '', rejections: u.rejections,
        summary, reservation: res ? { startTime: res.startTime, nodes: res.nodes } : undefined,
      };
      changed[u.jobId] = JSON.stringify({ ...e, queuePosition: u.queuePosition, evaluatedAt: now });
    }
    // Jobs past a quick pass's depth keep what the last full pass wrote.
    const removed = current ? [...written.keys()].filter((id) => !current.has(id)) : plan.placements.map((p) => p.jobId).filter((id) => written.has(id));
    if (Object.keys(changed).length > 0 || removed.length > 0) await this.state.updateExplanations(changed, removed);
    if (current) {
      this.written = current;
    } else {
      for (const [id, key] of updates) written.set(id, key);
      for (const id of removed) written.delete(id);
    }
  }
}
