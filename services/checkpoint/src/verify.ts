// Before a committed checkpoint is offered for resume (GetLatestCheckpoint, which recovery,
// preemption requeue and `job retry` ask), the agent that found it re-runs the layout check on
// the path as it is now. A checkpoint that broke after its last poll (a storage file removed a
// second before the job failed) is then recorded CORRUPT (or DELETED when gone) and the next
// newest committed one is considered. The check is bounded in time: recovery waits on this
// answer (resume.ts gives the call 2 s), so when the agent does not answer within the budget
// the record is trusted as it stands. Client-registered checkpoints (no agent found them) are
// not verified.
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '@gantry/service-kit';
import { CheckpointReport, type Checkpoint } from '@gantry/proto';
import { decode, encode, subjects } from '@gantry/bus';
import type { CheckpointStore } from '@gantry/store';
import { observed } from './reports.js';

export class ResumeVerifier {
  constructor(
    private readonly nc: NatsConnection,
    private readonly store: CheckpointStore,
    private readonly log: Logger,
    /** The whole verification's budget; each agent request gets what is left of it. */
    private readonly budgetMs = 1_500,
  ) {}

  async latest(jobId: string): Promise<Checkpoint | undefined> {
    const deadline = Date.now() + this.budgetMs;
    for (;;) {
      const c = await this.store.latestCommitted(jobId);
      if (!c || c.source === 'client' || !c.node) return c;
      const left = deadline - Date.now();
      if (left < 50) return c;
      const meta = await this.store.meta(jobId);
      if (!meta) return c;
      const req = CheckpointReport.create({ jobId, attempt: c.attempt, node: c.node, dir: meta.dir, path: c.path, step: c.step, format: c.format });
      let reply: CheckpointReport;
      try {
        const msg = await this.nc.request(subjects.checkpointVerify(c.node), encode(CheckpointReport, req), { timeout: left });
        reply = decode(CheckpointReport, msg.data, 'CheckpointReport');
      } catch (err) {
        this.log.debug({ job: jobId, checkpoint: c.id, node: c.node, err: (err as Error).message }, 'resume verification not answered; trusting the record');
        return c;
      }
      if (reply.status === 'COMPLETE' || reply.status === '') return c;
      const o = observed(CheckpointReport.create({ ...reply, jobId, attempt: c.attempt, node: c.node, path: c.path, step: c.step, source: c.source }));
      const { checkpoint } = await this.store.observe(o);
      this.log.warn({ job: jobId, checkpoint: c.id, status: reply.status, reason: checkpoint?.reason }, 'a committed checkpoint failed its check before resume; not offered');
    }
  }
}
