// Takes host telemetry and XID events from JetStream into Redis: each node's latest batch and
// history, and its event log. Durable consumers, acknowledged after the write, so a
// scheduler restart loses nothing; the lag from collection to storage is a metric, since
// the failure detection to come is only as fresh as this.
import type { ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import { Counter, Histogram } from 'prom-client';
import { FaultSignal, NodeHostEvent, TelemetryBatch, XidEvent } from '@gantry/proto';
import { consumeDurable, consumers, decode, streams, subjects } from '@gantry/bus';
import { HealthStore, NodeTelemetryStore } from '@gantry/store';
import type { SchedulerContext } from '../context.js';
import { xidFailureClass } from '../recovery/xid-policy.js';
import type { HealthConfigCache } from '../health-monitor/config-source.js';
import { signalHolders } from '../recovery/triggers.js';
import { AgentMessageGuard } from '../agents/message-guard.js';

/**
 * Bounds on what is stored per message (history and the health detector's XID inbox are capped
 * by count, so these cap their bytes): a real batch of a 72-GPU host is tens of KiB, an XID
 * event a few hundred bytes. `pnpm fuzz` filled Redis with 900 KiB XID events before.
 */
const MAX_TELEMETRY_BYTES = 256 * 1024;
const MAX_XID_EVENT_BYTES = 16 * 1024;

export class TelemetryIngest {
  private readonly store: NodeTelemetryStore;
  private readonly running: ConsumerMessages[] = [];
  private readonly lag: Histogram;
  private readonly batches: Counter;
  private readonly xids: Counter;

  private readonly health: HealthStore;

  constructor(private readonly ctx: SchedulerContext, private readonly healthConfig: HealthConfigCache) {
    this.store = new NodeTelemetryStore(ctx.redis);
    this.health = new HealthStore(ctx.redis);
    this.lag = new Histogram({ name: 'gantry_telemetry_ingest_lag_seconds', help: 'From collection on the host to storage in Redis', registers: [ctx.metrics], buckets: [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60] });
    this.batches = new Counter({ name: 'gantry_telemetry_batches_total', help: 'Telemetry batches stored', registers: [ctx.metrics] });
    this.xids = new Counter({ name: 'gantry_xid_events_received_total', help: 'XID events received from agents', labelNames: ['xid', 'severity'], registers: [ctx.metrics] });
  }

  async start(): Promise<void> {
    await this.consume(streams.telemetry.name, consumers.schedulerTelemetry, subjects.telemetryAll, async (m) => {
      const guard = AgentMessageGuard.of(this.ctx.metrics, this.ctx.log);
      if (!guard.withinSize('telemetry', m.subject, m.data.length, MAX_TELEMETRY_BYTES)) return;
      const batch = decode(TelemetryBatch, m.data, 'TelemetryBatch');
      if (!guard.sameNode('telemetry', m.subject, batch.node)) return;
      if (!guard.fromInstance('telemetry', batch.node, await this.ctx.nodes.instances(batch.node), batch.instanceId, batch.time?.getTime())) return;
      await this.store.record(batch);
      this.batches.inc();
      if (batch.time) this.lag.observe(Math.max(0, (Date.now() - batch.time.getTime()) / 1000));
    });
    await this.consume(streams.agentEvents.name, consumers.schedulerHostEvents, subjects.hostEventAll, async (m) => {
      const guard = AgentMessageGuard.of(this.ctx.metrics, this.ctx.log);
      if (!guard.withinSize('host-event', m.subject, m.data.length, MAX_XID_EVENT_BYTES)) return;
      const xid = decode(XidEvent, m.data, 'XidEvent');
      if (!guard.sameNode('host-event', m.subject, xid.node)) return;
      if (!guard.fromInstance('host-event', xid.node, await this.ctx.nodes.instances(xid.node), xid.instanceId, xid.time?.getTime())) return;
      await this.store.appendEvent(xid.node, NodeHostEvent.create({ time: xid.time ?? new Date(), event: { $case: 'xid', xid } }));
      // The detector weighs it at its next window (holds, repeats, lemons); jobs are acted on now.
      await this.health.queueXid(xid);
      this.xids.inc({ xid: String(xid.xid), severity: String(xid.severity) });
      this.ctx.log.warn({ node: xid.node, xid: xid.xid, gpu: xid.gpuIndex, mnemonic: xid.mnemonic }, 'xid event');
      await this.recoverJobsOnGpu(xid);
    });
  }

  /**
   * An XID whose policy action takes the GPU out of service (or restarts the application) ends
   * the attempt of the job holding that GPU at once, even while its processes still run: on
   * real hardware they hang or die; waiting for them costs minutes.
   */
  private async recoverJobsOnGpu(xid: XidEvent): Promise<void> {
    const { failureClass: cls } = xidFailureClass(xid, await this.healthConfig.get());
    if (cls === undefined) return;
    const node = await this.ctx.nodes.get(xid.node);
    // An XID without a GPU index (no PCI mapping) hits every job on the node.
    const holders = (node?.allocations ?? []).filter((a) => xid.gpuIndex === undefined || a.gpuIndex === xid.gpuIndex);
    const signal = FaultSignal.create({ kind: 'xid', node: xid.node, gpu: xid.gpuIndex, xid: xid.xid, detail: xid.mnemonic, time: xid.time ?? new Date(), failureClass: cls });
    await signalHolders(this.ctx, holders, signal, `XID ${xid.xid} (${xid.mnemonic}) on GPU ${xid.gpuIndex ?? '?'} of ${xid.node}`);
  }

  private async consume(stream: string, durable: string, filterSubject: string, handle: (m: JsMsg) => Promise<void>): Promise<void> {
    this.running.push(await consumeDurable(this.ctx.nc, { stream, durable, filterSubject, maxMessages: 1_000, ackWaitMs: 15_000 }, this.ctx.log, handle));
  }

  async stop(): Promise<void> {
    await Promise.all(this.running.splice(0).map((m) => m.close()));
  }
}
