// Takes host telemetry batches from JetStream into Redis: each node's latest batch, its short
// history and its NFS WRITE series (NodeTelemetryStore). A durable consumer, acknowledged after
// the write, so a scheduler restart loses nothing. The leader runs it on its agent intake thread
// (agents/intake-thread.ts), beside the heartbeats: at 10,000 agents, 1,000 batches a second of
// ~9 KB each, and on the main thread it fell tens of seconds behind while passes and rank
// events held the event loop. What it stores and its lag reach the main thread's metrics
// through the sink (telemetryMetrics).
import type { ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Redis } from 'ioredis';
import { Counter, Histogram, type Registry } from 'prom-client';
import { openDurable, consumers, streams, subjects } from '@gantry/bus';
import { BatchHeaderError, NodeTelemetryStore, readBatchHeader, scriptRunner, type BatchHeader, type ScriptCall, type ScriptRunner } from '@gantry/store';
import type { Logger } from '@gantry/service-kit';
import type { AgentMessageGuard } from '../agents/message-guard.js';

/**
 * Bound on what is stored per batch (the history is capped by count, so this caps its bytes): a
 * real batch of a 72-GPU host is tens of KiB.
 */
const MAX_TELEMETRY_BYTES = 256 * 1024;

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

/** Where the ingest reports what it stored: per batch, seconds from collection on the host to storage (NaN: no time). */
export interface TelemetrySink {
  stored(lagsSec: number[]): void;
}

/** The ingest's metrics on `metrics`, as a sink. */
export function telemetryMetrics(metrics: Registry): TelemetrySink {
  const lag = new Histogram({ name: 'gantry_telemetry_ingest_lag_seconds', help: 'From collection on the host to storage in Redis', registers: [metrics], buckets: [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60] });
  const batches = new Counter({ name: 'gantry_telemetry_batches_total', help: 'Telemetry batches stored', registers: [metrics] });
  return {
    stored(lagsSec) {
      batches.inc(lagsSec.length);
      for (const s of lagsSec) if (!Number.isNaN(s)) lag.observe(s);
    },
  };
}

export interface TelemetryBatchIngestDeps {
  nc: NatsConnection;
  /** A connection the ingest duplicates for its writes while it runs. */
  redis: Redis;
  log: Logger;
  guard: AgentMessageGuard;
}

export class TelemetryBatchIngest {
  private messages: ConsumerMessages | undefined;
  /**
   * The ingest's own connection while it runs (start to stop, once per leadership): a write of
   * 500 batches is megabytes, and on a shared connection other commands queued behind it, and
   * their replies behind its.
   */
  private writer: { redis: Redis; scripts: ScriptRunner } | undefined;
  private readonly pending: JsMsg[] = [];
  private writing: Promise<void> | undefined;

  constructor(private readonly deps: TelemetryBatchIngestDeps, private readonly sink: TelemetrySink) {}

  async start(): Promise<void> {
    if (this.messages) return;
    const redis = this.deps.redis.duplicate();
    this.writer = { redis, scripts: scriptRunner(redis) };
    await this.consumeTelemetry();
  }

  async stop(): Promise<void> {
    const messages = this.messages;
    this.messages = undefined;
    await messages?.close();
    await this.writing;
    this.writer?.redis.disconnect();
    this.writer = undefined;
  }

  /**
   * The telemetry stream's durable consumer, with consumeDurable's rules (acknowledged after
   * the write, redelivered when the write fails, a message whose top-level fields do not decode dropped) but
   * not one message at a time: what arrives while a write is in flight goes in the next one.
   */
  private async consumeTelemetry(): Promise<void> {
    const messages = await openDurable(this.deps.nc, { stream: streams.telemetry.name, durable: consumers.schedulerTelemetry, filterSubject: subjects.telemetryAll, maxMessages: TELEMETRY_PULL, ackWaitMs: TELEMETRY_ACK_WAIT_MS });
    this.messages = messages;
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
    const { guard, log } = this.deps;
    const checked: { m: JsMsg; batch: BatchHeader }[] = [];
    for (const m of msgs) {
      if (!guard.withinSize('telemetry', m.subject, m.data.length, MAX_TELEMETRY_BYTES)) { m.ack(); continue; }
      let batch: BatchHeader;
      try {
        batch = readBatchHeader(m.data);
      } catch (err) {
        log.warn({ err: (err as Error).message, subject: m.subject }, err instanceof BatchHeaderError ? 'dropping malformed message' : 'message not processed; will be redelivered');
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
      log.warn({ err: (err as Error).message, batches: checked.length }, 'telemetry not processed; will be redelivered');
      for (const { m } of checked) m.nak(TELEMETRY_RETRY_MS);
      return;
    }
    const now = Date.now();
    const lagsSec: number[] = [];
    results.forEach((r, c) => {
      const part = checked.slice(c * TELEMETRY_PER_CALL, (c + 1) * TELEMETRY_PER_CALL);
      if (!r.ok) {
        log.warn({ err: r.error.message, batches: part.length }, 'telemetry not processed; will be redelivered');
        for (const { m } of part) m.nak(TELEMETRY_RETRY_MS);
        return;
      }
      NodeTelemetryStore.readCheckedReply(r.value).forEach((res, k) => {
        const { m, batch } = part[k]!;
        m.ack();
        if (!res.stored) {
          // Not from the node's agent process: counted and logged with the guard's reason.
          if (guard.fromInstance('telemetry', batch.node, res.instances, batch.instanceId, batch.time?.getTime())) {
            log.warn({ node: batch.node, instance: batch.instanceId }, 'telemetry batch refused by the store\'s instance check but not by the guard\'s');
          }
          return;
        }
        lagsSec.push(batch.time ? Math.max(0, (now - batch.time.getTime()) / 1000) : NaN);
      });
    });
    if (lagsSec.length > 0) this.sink.stored(lagsSec);
  }
}
