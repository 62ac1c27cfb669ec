// Takes host telemetry and XID events from JetStream into Redis: each node's latest batch and
// history, and its event log. Durable consumers, acknowledged after the write, so a
// scheduler restart loses nothing; the lag from collection to storage is a metric, since
// the failure detection to come is only as fresh as this.
import type { ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import { Counter, Histogram } from 'prom-client';
import { FaultSignal, JobState, NodeHostEvent, TelemetryBatch, XidEvent, type Job } from '@gantry/proto';
import { consumeDurable, consumers, decode, streams, subjects } from '@gantry/bus';
import { NodeTelemetryStore } from '@gantry/store';
import type { SchedulerContext } from '../context.js';
import { xidFailureClass } from '../recovery/xid-policy.js';
import { beginRecovery, isActive } from '../jobs/lifecycle.js';
import { mutateJob } from '../jobs/mutate.js';
import { stopLiveRanks } from '../dispatch/dispatcher.js';

export class TelemetryIngest {
  private readonly store: NodeTelemetryStore;
  private readonly running: ConsumerMessages[] = [];
  private readonly lag: Histogram;
  private readonly batches: Counter;
  private readonly xids: Counter;

  constructor(private readonly ctx: SchedulerContext) {
    this.store = new NodeTelemetryStore(ctx.redis);
    this.lag = new Histogram({ name: 'gantry_telemetry_ingest_lag_seconds', help: 'From collection on the host to storage in Redis', registers: [ctx.metrics], buckets: [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60] });
    this.batches = new Counter({ name: 'gantry_telemetry_batches_total', help: 'Telemetry batches stored', registers: [ctx.metrics] });
    this.xids = new Counter({ name: 'gantry_xid_events_received_total', help: 'XID events received from agents', labelNames: ['xid', 'severity'], registers: [ctx.metrics] });
  }

  async start(): Promise<void> {
    await this.consume(streams.telemetry.name, consumers.schedulerTelemetry, subjects.telemetryAll, async (m) => {
      const batch = decode(TelemetryBatch, m.data, 'TelemetryBatch');
      await this.store.record(batch);
      this.batches.inc();
      if (batch.time) this.lag.observe(Math.max(0, (Date.now() - batch.time.getTime()) / 1000));
    });
    await this.consume(streams.agentEvents.name, consumers.schedulerHostEvents, subjects.hostEventAll, async (m) => {
      const xid = decode(XidEvent, m.data, 'XidEvent');
      await this.store.appendEvent(xid.node, NodeHostEvent.create({ time: xid.time ?? new Date(), event: { $case: 'xid', xid } }));
      this.xids.inc({ xid: String(xid.xid), severity: String(xid.severity) });
      this.ctx.log.warn({ node: xid.node, xid: xid.xid, gpu: xid.gpuIndex, mnemonic: xid.mnemonic }, 'xid event');
      await this.recoverJobsOnGpu(xid);
    });
  }

  /**
   * A fatal XID on a GPU a job holds ends that job's attempt at once, even while its processes
   * still run: on real hardware they hang or die; waiting for them costs minutes.
   */
  private async recoverJobsOnGpu(xid: XidEvent): Promise<void> {
    const { ctx } = this;
    const cls = xidFailureClass(xid);
    const epoch = ctx.epoch();
    if (cls === undefined || epoch === 0) return;
    const node = await ctx.nodes.get(xid.node);
    // An XID without a GPU index (no PCI mapping) hits every job on the node.
    const owners = (node?.allocations ?? []).filter((a) => xid.gpuIndex === undefined || a.gpuIndex === xid.gpuIndex);
    const signal = FaultSignal.create({
      kind: 'xid', node: xid.node, gpu: xid.gpuIndex, xid: xid.xid, detail: xid.mnemonic, time: xid.time ?? new Date(), failureClass: cls,
    });
    for (const { jobId, attempt } of new Map(owners.map((o) => [o.jobId, o])).values()) {
      let recovering: Job | undefined;
      await mutateJob(ctx.jobs, jobId, (r) => {
        const j = r.job;
        const undecided = j.state === JobState.JOB_STATE_RECOVERING && !j.recovery?.decided;
        if (j.attempt !== attempt || !(isActive(j) || undecided)) return undefined;
        const next = beginRecovery(j, new Date(), signal);
        if (undecided && next.recovery?.signals.length === j.recovery?.signals.length) return undefined;
        recovering = next;
        return { next, reason: `XID ${xid.xid} (${xid.mnemonic}) on GPU ${xid.gpuIndex ?? '?'} of ${xid.node}; stopping the attempt and attributing the failure`, epoch };
      });
      if (recovering) {
        ctx.log.warn({ job: jobId, node: xid.node, xid: xid.xid }, 'fatal XID on a job GPU; recovering');
        void stopLiveRanks(ctx, recovering, recovering.reason);
        ctx.kick();
      }
    }
  }

  private async consume(stream: string, durable: string, filterSubject: string, handle: (m: JsMsg) => Promise<void>): Promise<void> {
    this.running.push(await consumeDurable(this.ctx.nc, { stream, durable, filterSubject, maxMessages: 1_000, ackWaitMs: 15_000 }, this.ctx.log, handle));
  }

  async stop(): Promise<void> {
    await Promise.all(this.running.splice(0).map((m) => m.close()));
  }
}
