// The leader's scheduling loop: snapshot from Redis -> pure plan -> commit each placement
// with compare-and-set (job revision, every GPU free, every node READY) -> dispatch. A
// placement that lost a race is simply re-planned next pass.
import { JobState, RankPlacement } from '@gantry/proto';
import { AllocationConflictError, StaleWriteError, allocationOwner, FencedError } from '@gantry/store';
import { Counter, Histogram } from 'prom-client';
import type { SchedulerContext } from './context.js';
import { planCycle, type Plan } from './placement/index.js';
import { jobRequest, nodeView } from './snapshot.js';
import { schedule } from './jobs/lifecycle.js';
import { dispatchAssignments } from './dispatch/dispatcher.js';

export class SchedulingLoop {
  private running = false;
  private wake: (() => void) | undefined;
  private kicked = false;
  /** The last plan's view of waiting jobs, for GetJob's explanation (derived, not truth). */
  lastUnschedulable = new Map<string, Plan['unschedulable'][number]>();
  private readonly cycles: Histogram;
  private readonly placed: Counter;

  constructor(private readonly ctx: SchedulerContext) {
    this.cycles = new Histogram({ name: 'gantry_scheduler_cycle_seconds', help: 'Duration of a scheduling pass', registers: [ctx.metrics], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5] });
    this.placed = new Counter({ name: 'gantry_scheduler_placements_total', help: 'Gangs placed', labelNames: ['outcome'], registers: [ctx.metrics] });
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.loop();
  }

  stop(): void {
    this.running = false;
    this.wake?.();
  }

  kick(): void {
    this.kicked = true;
    this.wake?.();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      this.kicked = false;
      try {
        await this.runOnce();
      } catch (err) {
        this.ctx.log.warn({ err: (err as Error).message }, 'scheduling pass failed');
      }
      if (!this.kicked && this.running) {
        await new Promise<void>((r) => { this.wake = r; setTimeout(r, this.ctx.settings.cycleIntervalMs); });
      }
    }
  }

  async runOnce(): Promise<void> {
    const { ctx } = this;
    const epoch = ctx.epoch();
    if (epoch === 0) return;
    const end = this.cycles.startTimer();
    const pendingIds = await ctx.jobs.idsInState(JobState.JOB_STATE_PENDING);
    // Active jobs whose assignments may not have reached their agents yet.
    const scheduledIds = await ctx.jobs.idsInState(JobState.JOB_STATE_SCHEDULED);
    for (const rec of await ctx.jobs.getMany(scheduledIds)) void dispatchAssignments(ctx, rec.job);
    if (pendingIds.length === 0) { this.lastUnschedulable.clear(); end(); return; }
    const [pending, nodes] = await Promise.all([ctx.jobs.getMany(pendingIds), ctx.nodes.list()]);
    const byName = new Map(nodes.map((n) => [n.node.name, n]));
    const records = new Map(pending.map((r) => [r.job.id, r]));
    const plan = planCycle(nodes.map(nodeView), pending.filter((r) => r.job.state === JobState.JOB_STATE_PENDING).map((r) => jobRequest(r.job)));
    this.lastUnschedulable = new Map(plan.unschedulable.map((u) => [u.jobId, u]));
    for (const p of plan.placements) {
      const rec = records.get(p.jobId)!;
      const placement = p.ranks.map((r) => RankPlacement.create({ rank: r.rank, node: r.node, gpuIndices: r.gpus, address: byName.get(r.node)?.node.address ?? r.node }));
      const next = schedule(rec.job, placement, new Date());
      const claims = placement.flatMap((r) => r.gpuIndices.map((gpu) => ({ node: r.node, gpu, owner: allocationOwner(next.id, next.attempt, r.rank) })));
      try {
        const committed = await ctx.jobs.commit({ prev: rec, next, reason: `placed on ${placement.map((r) => r.node).join(', ')} (${p.domain})`, epoch, claims });
        this.placed.inc({ outcome: 'committed' });
        ctx.log.info({ job: next.id, attempt: next.attempt, nodes: placement.map((r) => r.node) }, 'job scheduled');
        void dispatchAssignments(ctx, committed.job, undefined, true);
      } catch (err) {
        if (err instanceof StaleWriteError || err instanceof AllocationConflictError) {
          this.placed.inc({ outcome: 'conflict' });
          ctx.log.info({ job: p.jobId, err: err.message }, 'placement lost a race; re-planning');
          this.kicked = true;
        } else if (err instanceof FencedError) {
          ctx.log.warn('fenced: another scheduler leads');
          break;
        } else {
          throw err;
        }
      }
    }
    end();
  }
}
