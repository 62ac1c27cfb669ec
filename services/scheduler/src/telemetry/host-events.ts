// Takes host events (XIDs) from JetStream: each goes into its node's event log and the health
// detector's inbox, and a GPU-fatal one hands the jobs holding that GPU to recovery at once. A
// durable consumer, acknowledged after the write, so a scheduler restart loses nothing. On the
// main thread: it acts on jobs. Telemetry batches are batch-ingest.ts's.
import type { ConsumerMessages } from '@nats-io/jetstream';
import { Counter } from 'prom-client';
import { FaultSignal, NodeHostEvent, XidEvent } from '@gantry/proto';
import { consumeDurable, consumers, decode, streams, subjects } from '@gantry/bus';
import { HealthStore, NodeTelemetryStore } from '@gantry/store';
import type { SchedulerContext } from '../context.js';
import { xidFailureClass } from '../recovery/xid-policy.js';
import type { HealthConfigCache } from '../health-monitor/config-source.js';
import { signalHolders } from '../recovery/triggers.js';
import { AgentMessageGuard } from '../agents/message-guard.js';

/**
 * Bound on what is stored per event (the event log and the detector's XID inbox are capped by
 * count, so this caps their bytes): an XID event is a few hundred bytes. `pnpm fuzz` filled
 * Redis with 900 KiB XID events before.
 */
const MAX_XID_EVENT_BYTES = 16 * 1024;

export class HostEventIngest {
  private readonly store: NodeTelemetryStore;
  private readonly health: HealthStore;
  private readonly xids: Counter;
  private messages: ConsumerMessages | undefined;

  constructor(private readonly ctx: SchedulerContext, private readonly healthConfig: HealthConfigCache) {
    this.store = new NodeTelemetryStore(ctx.redis);
    this.health = new HealthStore(ctx.redis);
    this.xids = new Counter({ name: 'gantry_xid_events_received_total', help: 'XID events received from agents', labelNames: ['xid', 'severity'], registers: [ctx.metrics] });
  }

  async start(): Promise<void> {
    const { ctx } = this;
    const guard = AgentMessageGuard.of(ctx.metrics, ctx.log);
    this.messages = await consumeDurable(ctx.nc, { stream: streams.agentEvents.name, durable: consumers.schedulerHostEvents, filterSubject: subjects.hostEventAll, maxMessages: 1_000, ackWaitMs: 15_000 }, ctx.log, async (m) => {
      if (!guard.withinSize('host-event', m.subject, m.data.length, MAX_XID_EVENT_BYTES)) return;
      const xid = decode(XidEvent, m.data, 'XidEvent');
      if (!guard.sameNode('host-event', m.subject, xid.node)) return;
      if (!guard.fromInstance('host-event', xid.node, await ctx.nodes.instances(xid.node), xid.instanceId, xid.time?.getTime())) return;
      await this.store.appendEvent(xid.node, NodeHostEvent.create({ time: xid.time ?? new Date(), event: { $case: 'xid', xid } }));
      // The detector weighs it at its next window (holds, repeats, lemons); jobs are acted on now.
      await this.health.queueXid(xid);
      this.xids.inc({ xid: String(xid.xid), severity: String(xid.severity) });
      ctx.log.warn({ node: xid.node, xid: xid.xid, gpu: xid.gpuIndex, mnemonic: xid.mnemonic }, 'xid event');
      await this.recoverJobsOnGpu(xid);
    });
  }

  async stop(): Promise<void> {
    const messages = this.messages;
    this.messages = undefined;
    await messages?.close();
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
}
