// Consumes rank started/exited reports from the durable JetStream consumer and applies them
// to jobs. A report is acknowledged only after its effect is committed, so a scheduler
// killed mid-way sees it again; applying it twice changes nothing (lifecycle is idempotent).
import type { ConsumerMessages } from '@nats-io/jetstream';
import { RankEvent, RankPhase, isTerminalJobState, JobState } from '@gantry/proto';
import { consumeDurable, consumers, decode, streams, subjects } from '@gantry/bus';
import { AgentMessageGuard } from './message-guard.js';
import type { SchedulerContext } from '../context.js';
import { applyRankReport } from '../jobs/lifecycle.js';
import { mutateJob } from '../jobs/mutate.js';
import { stopLiveRanks } from '../dispatch/dispatcher.js';

/** Rank events handled at once (of different jobs). */
const RANK_EVENT_CONCURRENCY = 64;

export class RankEventConsumer {
  private messages: ConsumerMessages | undefined;

  private readonly guard: AgentMessageGuard;

  constructor(private readonly ctx: SchedulerContext) {
    this.guard = AgentMessageGuard.of(ctx.metrics, ctx.log);
  }

  async start(): Promise<void> {
    this.messages = await consumeDurable(this.ctx.nc, {
      stream: streams.agentEvents.name, durable: consumers.schedulerAgentEvents, filterSubject: subjects.rankEventAll,
      // One job's reports in stream order (a rank's start before its exit), different jobs' at
      // once, so their reads and commits share Redis round trips instead of each waiting its
      // turn behind heartbeat and telemetry pipelines; no two handlers race for one job's record.
      concurrency: RANK_EVENT_CONCURRENCY,
      orderKey: (m) => {
        try {
          return decode(RankEvent, m.data, 'RankEvent').jobId;
        } catch {
          return m.subject; // the handler drops it
        }
      },
    }, this.ctx.log, (m) => this.handle(decode(RankEvent, m.data, 'RankEvent'), m.subject));
  }

  async stop(): Promise<void> {
    await this.messages?.close();
    this.messages = undefined;
  }

  /** A rank event that came on `subject` (rankEvent of the sending node). */
  async handle(ev: RankEvent, subject: string): Promise<void> {
    const { ctx } = this;
    const epoch = ctx.epoch();
    if (epoch === 0) throw new Error('not the leader');
    if (ev.phase !== RankPhase.RANK_PHASE_STARTED && ev.phase !== RankPhase.RANK_PHASE_EXITED) return;
    if (!this.guard.sameNode('rank-event', subject, ev.node)) return;
    // The registered agent instance and the job, read in one round trip (the job read is
    // wasted only for a report the instance check refuses).
    const [instances, current] = await Promise.all([ctx.nodes.instances(ev.node), ctx.jobs.get(ev.jobId)]);
    if (!this.guard.fromInstance('rank-event', ev.node, instances, ev.instanceId, ev.time?.getTime())) return;
    const report = {
      attempt: ev.attempt, rank: ev.rank, phase: ev.phase, pid: ev.pid, exitCode: ev.exitCode, signal: ev.signal, node: ev.node, time: ev.time ?? new Date(),
      error: ev.error, errorTime: ev.errorTime,
    } as const;
    let released = false;
    let stopOthers = false;
    let nowRunning = false;
    // The GPUs of an exited rank are released by the same Lua commit that records the exit.
    const rec = await mutateJob(ctx.jobs, ev.jobId, (r) => {
      // Only the node a rank was placed on may report it (a forged exit could fail any job).
      if (!this.guard.placedOn(r.job, ev.attempt, ev.rank, ev.node)) return undefined;
      const out = applyRankReport(r.job, report);
      released = out.releases.length > 0 && out.job !== undefined;
      const to = out.job?.state;
      stopOthers = to !== undefined && to !== r.job.state && (isTerminalJobState(to) || to === JobState.JOB_STATE_RECOVERING);
      nowRunning = to === JobState.JOB_STATE_RUNNING && r.job.state !== JobState.JOB_STATE_RUNNING;
      return out.job ? { next: out.job, reason: out.reason, epoch, releases: out.releases } : undefined;
    }, undefined, { rec: current });
    if (!rec) return;
    if (stopOthers) {
      ctx.log.info({ job: ev.jobId, state: JobState[rec.job.state], reason: rec.job.reason }, 'attempt ended');
      // Not awaited: stops wait for agents' replies (seconds when one is gone), and this
      // job's next rank events wait for this one. Recovery and reconciliation re-send.
      void stopLiveRanks(ctx, rec.job, rec.job.reason);
      ctx.kick();
    }
    if (nowRunning) ctx.recovered(rec.job, report.time);
    if (released) ctx.kick();
  }
}
