// Takes host telemetry and XID events from JetStream into Redis: each node's latest batch and
// history, and its event log. Durable consumers, acknowledged after the write, so a
// scheduler restart loses nothing; the lag from collection to storage is a metric, since
// the failure detection to come is only as fresh as this.
import type { ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import type { Redis } from 'ioredis';
import { Counter, Histogram } from 'prom-client';
import { FaultSignal, NodeHostEvent, XidEvent } from '@gantry/proto';
import { consumeDurable, consumers, decode, openDurable, streams, subjects } from '@gantry/bus';
import { HealthStore, NodeTelemetryStore, scriptRunner, type ScriptCall, type ScriptRunner } from '@gantry/store';
import type { SchedulerContext } from '../context.js';
import { BatchHeaderError, readBatchHeader, type BatchHeader } from '@gantry/store';
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

/**
 * Telemetry batches delivered while the previous write is in flight are written together, at
 * most this many: at 1,000 batches/s (10,000 agents) a batch of its own cost the scheduler
 * about 1 ms of CPU, mostly socket writes and client bookkeeping of its two Redis commands.
 */
const TELEMETRY_WRITE_MAX = 500;
/**
 * Batches per script call (record-telemetry-checked.lua): one call instead of a read and a call
 * per batch, small enough that a call holds Redis about a millisecond (64 x 6.4 KB).
 */
const TELEMETRY_PER_CALL = 64;
const TELEMETRY_PULL = 1_000;
const TELEMETRY_ACK_WAIT_MS = 15_000;
const TELEMETRY_RETRY_MS = 1_000;

export class TelemetryIngest {
  private readonly store: NodeTelemetryStore;
  private readonly running: ConsumerMessages[] = [];
  private readonly lag: Histogram;
  private readonly batches: Counter;
  private readonly xids: Counter;

  private readonly health: HealthStore;
  /**
   * The ingest's own connection while it runs (start to stop, once per leadership): a write of
   * 500 batches is megabytes, and on the shared connection the heartbeats' and passes'
   * commands queued behind it, and their replies behind its.
   */
  private writer: { redis: Redis; scripts: ScriptRunner } | undefined;
  private readonly pending: JsMsg[] = [];
  private writing: Promise<void> | undefined;

  constructor(private readonly ctx: SchedulerContext, private readonly healthConfig: HealthConfigCache) {
    this.store = new NodeTelemetryStore(ctx.redis);
    this.health = new HealthStore(ctx.redis);
    this.lag = new Histogram({ name: 'gantry_telemetry_ingest_lag_seconds', help: 'From collection on the host to storage in Redis', registers: [ctx.metrics], buckets: [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60] });
    this.batches = new Counter({ name: 'gantry_telemetry_batches_total', help: 'Telemetry batches stored', registers: [ctx.metrics] });
    this.xids = new Counter({ name: 'gantry_xid_events_received_total', help: 'XID events received from agents', labelNames: ['xid', 'severity'], registers: [ctx.metrics] });
  }

  async start(): Promise<void> {
    const redis = this.ctx.redis.duplicate();
    this.writer = { redis, scripts: scriptRunner(redis) };
    await this.consumeTelemetry();
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

  /**
   * The telemetry stream's durable consumer, with consumeDurable's rules (acknowledged after
   * the write, redelivered when the write fails, a message whose top-level fields do not decode dropped) but
   * not one message at a time: what arrives while a write is in flight goes in the next one.
   */
  private async consumeTelemetry(): Promise<void> {
    const messages = await openDurable(this.ctx.nc, { stream: streams.telemetry.name, durable: consumers.schedulerTelemetry, filterSubject: subjects.telemetryAll, maxMessages: TELEMETRY_PULL, ackWaitMs: TELEMETRY_ACK_WAIT_MS });
    this.running.push(messages);
    void (async () => {
      for await (const m of messages) {
        this.pending.push(m);
        this.writing ??= this.writePending();
      }
    })();
  }

  private async writePending(): Promise<void> {
    try {
      // Lets the rest of a delivered pull batch arrive first.
      await new Promise((resolve) => setImmediate(resolve));
      while (this.pending.length > 0) await this.writeBatches(this.pending.splice(0, TELEMETRY_WRITE_MAX));
    } finally {
      this.writing = undefined;
    }
  }

  /** Checks each message as the one-at-a-time handler did, then one pipeline of writes (in delivery order, so a node's history keeps its order). */
  private async writeBatches(msgs: JsMsg[]): Promise<void> {
    const guard = AgentMessageGuard.of(this.ctx.metrics, this.ctx.log);
    const checked: { m: JsMsg; batch: BatchHeader }[] = [];
    for (const m of msgs) {
      if (!guard.withinSize('telemetry', m.subject, m.data.length, MAX_TELEMETRY_BYTES)) { m.ack(); continue; }
      let batch: BatchHeader;
      try {
        batch = readBatchHeader(m.data);
      } catch (err) {
        this.ctx.log.warn({ err: (err as Error).message, subject: m.subject }, err instanceof BatchHeaderError ? 'dropping malformed message' : 'message not processed; will be redelivered');
        if (err instanceof BatchHeaderError) m.term();
        else m.nak(TELEMETRY_RETRY_MS);
        continue;
      }
      if (!guard.sameNode('telemetry', m.subject, batch.node)) { m.ack(); continue; }
      checked.push({ m, batch });
    }
    if (checked.length === 0) return;
    // Each batch's bytes as the agent sent them (readers decode them to the same batch a
    // re-encoding would give), viewed, not copied: the client copies them into its write anyway.
    const calls: ScriptCall[] = [];
    for (let i = 0; i < checked.length; i += TELEMETRY_PER_CALL) {
      calls.push(NodeTelemetryStore.recordCheckedCall(checked.slice(i, i + TELEMETRY_PER_CALL).map(({ m, batch }) => ({
        node: batch.node, encoded: Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength), instanceId: batch.instanceId, timeMs: batch.time?.getTime(),
      }))));
    }
    let results;
    try {
      if (!this.writer) throw new Error('telemetry ingest stopped');
      results = await this.writer.scripts.runMany(calls);
    } catch (err) {
      this.ctx.log.warn({ err: (err as Error).message, batches: checked.length }, 'telemetry not processed; will be redelivered');
      for (const { m } of checked) m.nak(TELEMETRY_RETRY_MS);
      return;
    }
    const now = Date.now();
    results.forEach((r, c) => {
      const part = checked.slice(c * TELEMETRY_PER_CALL, (c + 1) * TELEMETRY_PER_CALL);
      if (!r.ok) {
        this.ctx.log.warn({ err: r.error.message, batches: part.length }, 'telemetry not processed; will be redelivered');
        for (const { m } of part) m.nak(TELEMETRY_RETRY_MS);
        return;
      }
      NodeTelemetryStore.readCheckedReply(r.value).forEach((res, k) => {
        const { m, batch } = part[k]!;
        m.ack();
        if (!res.stored) {
          // Not from the node's agent process: counted and logged with the guard's reason.
          if (guard.fromInstance('telemetry', batch.node, res.instances, batch.instanceId, batch.time?.getTime())) {
            this.ctx.log.warn({ node: batch.node, instance: batch.instanceId }, 'telemetry batch refused by the store\'s instance check but not by the guard\'s');
          }
          return;
        }
        this.batches.inc();
        if (batch.time) this.lag.observe(Math.max(0, (now - batch.time.getTime()) / 1000));
      });
    });
  }

  private async consume(stream: string, durable: string, filterSubject: string, handle: (m: JsMsg) => Promise<void>): Promise<void> {
    this.running.push(await consumeDurable(this.ctx.nc, { stream, durable, filterSubject, maxMessages: 1_000, ackWaitMs: 15_000 }, this.ctx.log, handle));
  }

  async stop(): Promise<void> {
    await Promise.all(this.running.splice(0).map((m) => m.close()));
    await this.writing;
    this.writer?.redis.disconnect();
    this.writer = undefined;
  }
}
