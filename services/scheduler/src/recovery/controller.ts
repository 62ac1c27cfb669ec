// Drives recovering jobs, level-triggered from what Redis holds, once per scheduling pass:
//   1. keep stopping the failed attempt's ranks (a node that is LOST cannot answer; its agent
//      and the rank watchdog stop them on their own);
//   2. after the settle window, attribute the failure and decide (FAILED, or retry with a
//      grade, a backoff and the blamed nodes excluded);
//   3. once no rank of the attempt can still run, hand the job back to the queue (PENDING
//      with a not-before time); the planner places the next attempt.
// Every step is one compare-and-set commit, so a leader killed at any point leaves a state
// the next leader continues from, and no step runs twice.
import { JobState, NodeState, RecoveryGrade, type Job } from '@gantry/proto';
import type { JobRecord, NodeRecord } from '@gantry/store';
import { Counter, Histogram } from 'prom-client';
import type { SchedulerContext } from '../context.js';
import type { SchedulingConfig } from '../placement/index.js';
import { currentAttempt, liveRanks } from '../jobs/lifecycle.js';
import { mutateJob, mutateNode } from '../jobs/mutate.js';
import { stopLiveRanks } from '../dispatch/dispatcher.js';
import { className, decideStep, requeueStep, type Decided } from './transitions.js';

export class RecoveryController {
  private readonly recoveries: Counter;
  private readonly failures: Counter;
  readonly duration: Histogram;

  constructor(private readonly ctx: SchedulerContext) {
    this.recoveries = new Counter({ name: 'gantry_job_recoveries_total', help: 'Recoveries decided, by failure class and grade', labelNames: ['class', 'grade'], registers: [ctx.metrics] });
    this.failures = new Counter({ name: 'gantry_job_recovery_exhausted_total', help: 'Failed attempts that were not retried (class not retried or budget spent), by class', labelNames: ['class'], registers: [ctx.metrics] });
    this.duration = new Histogram({
      name: 'gantry_job_recovery_duration_seconds', help: 'From the first failure of an attempt to every rank of the next attempt running',
      registers: [ctx.metrics], buckets: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600],
    });
  }

  /** One pass over the RECOVERING jobs; returns whether any job went back to the queue. */
  async run(recovering: JobRecord[], nodes: NodeRecord[], config: SchedulingConfig, epoch: number, now: number): Promise<boolean> {
    const unhealthy = new Set(nodes.filter((n) => n.node.state !== NodeState.NODE_STATE_READY).map((n) => n.node.name));
    const lost = new Set(nodes.filter((n) => n.node.state === NodeState.NODE_STATE_LOST).map((n) => n.node.name));
    let requeued = false;
    for (const rec of recovering) {
      try {
        requeued = (await this.step(rec.job, unhealthy, lost, config, epoch, now)) || requeued;
      } catch (err) {
        this.ctx.log.warn({ job: rec.job.id, err: (err as Error).message }, 'recovery step failed; retried next pass');
      }
    }
    return requeued;
  }

  private async step(job: Job, unhealthy: Set<string>, lost: Set<string>, config: SchedulingConfig, epoch: number, now: number): Promise<boolean> {
    const { ctx } = this;
    const recovery = job.recovery;
    const detectedAt = recovery?.detectedAt?.getTime() ?? job.updatedAt?.getTime() ?? now;
    const running = liveRanks(job).filter((p) => !lost.has(p.node));
    // Rate-limited re-sends; not awaited, so a hung agent cannot hold up the pass.
    if (running.length > 0) void stopLiveRanks(ctx, job, job.reason, undefined, false);

    if (!recovery?.decided) {
      if (now < detectedAt + config.recovery.settleMs) return false;
      await this.decide(job.id, unhealthy, config, epoch, now);
      return false;
    }
    if (!recovery.retry || running.length > 0) return false;
    const rec = await mutateJob(ctx.jobs, job.id, (r) => {
      const out = requeueStep(r.job, lost, new Date(now));
      return out && { ...out, epoch };
    });
    return rec?.job.state === JobState.JOB_STATE_PENDING;
  }

  private async decide(jobId: string, unhealthy: Set<string>, config: SchedulingConfig, epoch: number, now: number): Promise<void> {
    const { ctx } = this;
    let decided: Decided | undefined;
    await mutateJob(ctx.jobs, jobId, (r) => {
      decided = decideStep(r.job, config, unhealthy, new Date(now), Math.random());
      return decided && { next: decided.next, reason: decided.reason, epoch };
    });
    if (!decided) return;
    const { next, blamed, grade } = decided;
    const cls = className(decided.failureClass);
    if (grade === 'none') this.failures.inc({ class: cls });
    else this.recoveries.inc({ class: cls, grade });
    ctx.log.info({ job: jobId, class: cls, grade, blamed }, grade === 'none' ? 'failure not retried; job failed' : 'recovery decided');
    if (grade === 'none') void stopLiveRanks(ctx, next, next.reason);
    for (const node of blamed) await this.blame(node, jobId, epoch, now);
  }

  /** Records that a node was blamed for a node fault: placement scores it down for a while. */
  private async blame(name: string, jobId: string, epoch: number, now: number): Promise<void> {
    const reason = `blamed for a node fault of job ${jobId}`;
    await mutateNode(this.ctx.nodes, name, (prev) => ({
      epoch, reason, next: { ...prev.node, faultsBlamed: prev.node.faultsBlamed + 1, lastBlamedAt: new Date(now), reason },
    }));
  }


  /** Observes how long a recovery took, when the attempt it produced has all ranks running. */
  observeRecovered(job: Job, at: Date): void {
    const a = currentAttempt(job);
    if (!a || a.grade === RecoveryGrade.RECOVERY_GRADE_UNSPECIFIED || a.grade === RecoveryGrade.RECOVERY_GRADE_MANUAL_RETRY) return;
    const failedAt = job.attempts.find((x) => x.number === a.number - 1)?.failure?.time;
    if (failedAt) this.duration.observe(Math.max(0, (at.getTime() - failedAt.getTime()) / 1000));
  }
}
