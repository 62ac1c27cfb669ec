// Consumes rank started/exited reports from the durable JetStream consumer and applies them
// to jobs. A report is acknowledged only after its effect is committed, so a scheduler
// killed mid-way sees it again; applying it twice changes nothing (lifecycle is idempotent).
import type { ConsumerMessages } from '@nats-io/jetstream';
import { RankEvent, RankPhase, isTerminalJobState, JobState } from '@gantry/proto';
import { consumeDurable, consumers, decode, streams, subjects } from '@gantry/bus';
import type { SchedulerContext } from '../context.js';
import { applyRankReport } from '../jobs/lifecycle.js';
import { mutateJob } from '../jobs/mutate.js';
import { stopLiveRanks } from '../dispatch/dispatcher.js';

export class RankEventConsumer {
  private messages: ConsumerMessages | undefined;

  constructor(private readonly ctx: SchedulerContext) {}

  async start(): Promise<void> {
    this.messages = await consumeDurable(this.ctx.nc, {
      stream: streams.agentEvents.name, durable: consumers.schedulerAgentEvents, filterSubject: subjects.rankEventAll,
    }, this.ctx.log, (m) => this.handle(decode(RankEvent, m.data, 'RankEvent')));
  }

  async stop(): Promise<void> {
    await this.messages?.close();
    this.messages = undefined;
  }

  async handle(ev: RankEvent): Promise<void> {
    const { ctx } = this;
    const epoch = ctx.epoch();
    if (epoch === 0) throw new Error('not the leader');
    if (ev.phase !== RankPhase.RANK_PHASE_STARTED && ev.phase !== RankPhase.RANK_PHASE_EXITED) return;
    const report = {
      attempt: ev.attempt, rank: ev.rank, phase: ev.phase, pid: ev.pid, exitCode: ev.exitCode, signal: ev.signal, node: ev.node, time: ev.time ?? new Date(),
    } as const;
    let released = false;
    let endedNow = false;
    // The GPUs of an exited rank are released by the same Lua commit that records the exit.
    const rec = await mutateJob(ctx.jobs, ev.jobId, (r) => {
      const out = applyRankReport(r.job, report);
      released = out.releases.length > 0 && out.job !== undefined;
      endedNow = out.job !== undefined && isTerminalJobState(out.job.state) && !isTerminalJobState(r.job.state);
      return out.job ? { next: out.job, reason: out.reason, epoch, releases: out.releases } : undefined;
    });
    if (!rec) return;
    if (endedNow) {
      ctx.log.info({ job: ev.jobId, state: JobState[rec.job.state], reason: rec.job.reason }, 'job ended');
      await stopLiveRanks(ctx, rec.job, rec.job.reason);
    }
    if (released) ctx.kick();
  }
}
