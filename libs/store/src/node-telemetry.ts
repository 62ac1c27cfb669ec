// A node's latest telemetry, a short history of whole batches, a longer series of their NFS
// WRITE figures, and its event log (XIDs, health decisions, state changes), kept in Redis as
// protobuf. The history is what the health detector reads each window; the NFS series is what
// the operations report reads over its longer window; the event log is what `gantry node
// events` shows.
import type { Redis } from 'ioredis';
import { NfsWriteSample, NodeHostEvent, TelemetryBatch } from '@gantry/proto';
import { keys } from './keys.js';
import { NODE_EVENT_LOG_CAP, type NodeInstances } from './nodes.js';
import { readBatchHeader } from './telemetry-header.js';
import { nfsWriteSampleBytes } from './nfs-write-sample.js';
import { scriptRunner, type ScriptCall, type ScriptRunner } from './scripts.js';

/**
 * Whole batches kept per node besides the latest. The health detector reads at most 64 new
 * batches per node and window (BATCHES_PER_WINDOW: a 60 s window at a 1 s interval), and no
 * other reader needs whole batches further back. At 360 (an hour at 10 s) an 8-GPU host's
 * history took 3.6 MB of Redis (MEMORY USAGE), 35 GB at 10,000 nodes; at 64 it takes 0.64 MB.
 */
export const TELEMETRY_HISTORY_CAP = 64;
/**
 * NfsWriteSamples kept per node, the latest batch's included: an hour at the default 10 s
 * interval, the operations report's NFS queueing over windows the whole batches do not cover
 * (a sample is about 40 bytes per mount; a report whose window it does not reach says so).
 */
export const NFS_WRITE_SERIES_CAP = 360;
/** The largest page of history `since` reads at once. */
const SINCE_PAGE = 16;
/** Samples per read of the NFS series: a report reads a node's hour in one or two. */
const NFS_SERIES_PAGE = 200;

/**
 * A stored batch, or undefined when its bytes do not decode: the ingest checks only a batch's
 * top-level fields (node, time, instance) before storing it as sent, so a reader skips one whose
 * contents are malformed instead of failing on it (a health window over every node included).
 */
export function decodeStoredBatch(raw: Uint8Array): TelemetryBatch | undefined {
  try {
    return TelemetryBatch.decode(raw);
  } catch {
    return undefined;
  }
}

export class NodeTelemetryStore {
  private readonly scripts: ScriptRunner;

  constructor(private readonly redis: Redis) {
    this.scripts = scriptRunner(redis);
  }

  async record(batch: TelemetryBatch): Promise<void> {
    const call = NodeTelemetryStore.recordCall(batch.node, Buffer.from(TelemetryBatch.encode(batch).finish()));
    await this.scripts.run(call.name, call.keys, call.args);
  }

  /**
   * The write of one batch as the agent encoded it, for a caller that pipelines many
   * (ScriptRunner.runMany): readers decode the bytes to the same batch a re-encoding gives.
   */
  static recordCall(node: string, encoded: Buffer): ScriptCall {
    return {
      name: 'gantryRecordTelemetry',
      keys: [keys.nodeTelemetry(node), keys.nodeTelemetryHistory(node), keys.nodeNfsWrites(node)],
      args: [encoded, TELEMETRY_HISTORY_CAP, nfsWriteSampleBytes(encoded) ?? '', NFS_WRITE_SERIES_CAP],
    };
  }

  /**
   * One script call storing several batches, each only when it comes from its node's agent
   * process (record-telemetry-checked.lua applies AgentMessageGuard.fromInstance's rule in
   * Redis, so the ingest needs no read of the node's instances first). Its reply, per batch:
   * readCheckedReply.
   */
  static recordCheckedCall(batches: readonly { node: string; encoded: Buffer; instanceId: string; timeMs: number | undefined }[]): ScriptCall {
    const keyList: string[] = [];
    const args: (string | Buffer | number)[] = [TELEMETRY_HISTORY_CAP, NFS_WRITE_SERIES_CAP];
    for (const b of batches) {
      keyList.push(keys.node(b.node), keys.nodeTelemetry(b.node), keys.nodeTelemetryHistory(b.node), keys.nodeNfsWrites(b.node));
      args.push(b.encoded, b.instanceId, b.timeMs === undefined ? '' : String(b.timeMs), nfsWriteSampleBytes(b.encoded) ?? '');
    }
    return { name: 'gantryRecordTelemetryChecked', keys: keyList, args };
  }

  /** A recordCheckedCall reply: per batch, stored, or the node's instances as read (undefined: none registered) for the caller to count the drop. */
  static readCheckedReply(reply: unknown): ({ stored: true } | { stored: false; instances: NodeInstances | undefined })[] {
    return (reply as (number | (string | null)[])[]).map((r) => {
      if (!Array.isArray(r)) return { stored: true };
      const [current, previous, since] = r;
      return { stored: false, instances: current ? { current, previous: previous ?? '', sinceMs: Number(since || 0) } : undefined };
    });
  }

  /** The latest batch and up to `history` earlier ones, newest first (at most TELEMETRY_HISTORY_CAP are kept). */
  async get(node: string, history: number): Promise<{ latest: TelemetryBatch | undefined; history: TelemetryBatch[] }> {
    const [latest, hist] = await Promise.all([
      this.redis.getBuffer(keys.nodeTelemetry(node)),
      history > 0 ? this.redis.lrangeBuffer(keys.nodeTelemetryHistory(node), 0, history - 1) : Promise.resolve([] as Buffer[]),
    ]);
    return { latest: latest ? decodeStoredBatch(latest) : undefined, history: hist.flatMap((b) => decodeStoredBatch(b) ?? []) };
  }

  /**
   * The node's batches collected after `afterMs`, oldest first, at most `max`: the latest and
   * then the history a page at a time, stopping at the first batch not newer (the history is
   * newest first), so a caller that reads every window pays for the new batches only.
   */
  async since(node: string, afterMs: number, max = TELEMETRY_HISTORY_CAP): Promise<TelemetryBatch[]> {
    return (await this.sinceRaw(node, afterMs, max)).flatMap((raw) => decodeStoredBatch(raw) ?? []);
  }

  /**
   * since(), undecoded (decodeStoredBatch decodes one): for a caller that decodes many nodes'
   * batches a few at a time, so that decoding tens of thousands (the health window at 10,000
   * nodes: about 170 us each) never holds its event loop for long.
   */
  async sinceRaw(node: string, afterMs: number, max = TELEMETRY_HISTORY_CAP): Promise<Buffer[]> {
    // Which batches are new is read from their header alone (their time); only those are
    // decoded. The history is read in pages that start small and double: a caller reading every
    // window mostly needs the latest and one older batch that says where to stop.
    const newer = (raw: Uint8Array): boolean | undefined => {
      try {
        return (readBatchHeader(raw).time?.getTime() ?? 0) > afterMs;
      } catch {
        return undefined; // malformed: skipped
      }
    };
    const latest = await this.redis.getBuffer(keys.nodeTelemetry(node));
    const fresh: Buffer[] = [];
    if (!latest) return [];
    const first = newer(latest);
    if (first === false) return [];
    if (first) fresh.push(latest);
    let page = 2;
    for (let offset = 0; fresh.length < max; offset += page, page = Math.min(page * 2, SINCE_PAGE)) {
      const raws = await this.redis.lrangeBuffer(keys.nodeTelemetryHistory(node), offset, offset + page - 1);
      let done = raws.length < page;
      for (const raw of raws) {
        const n = newer(raw);
        if (n === undefined) continue;
        if (!n || fresh.length >= max) {
          done = true;
          break;
        }
        fresh.push(raw);
      }
      if (done) break;
    }
    return fresh.reverse();
  }

  /**
   * The node's NFS WRITE samples of batches collected after `afterMs`, oldest first, at most
   * `max` (the newest). `cut`: the window reaches further back than what is returned, because
   * the series is full (its cap) or `max` stopped the read, not because the node has no older
   * batches.
   */
  async nfsWritesSince(node: string, afterMs: number, max = NFS_WRITE_SERIES_CAP): Promise<{ samples: NfsWriteSample[]; cut: boolean }> {
    const out: NfsWriteSample[] = [];
    const done = (cut: boolean) => ({ samples: out.reverse(), cut });
    for (let offset = 0; ; offset += NFS_SERIES_PAGE) {
      const raws = await this.redis.lrangeBuffer(keys.nodeNfsWrites(node), offset, offset + NFS_SERIES_PAGE - 1);
      for (const raw of raws) {
        let s: NfsWriteSample;
        try {
          s = NfsWriteSample.decode(raw);
        } catch {
          continue; // this store wrote it, so not expected; skipped as a malformed batch is
        }
        if ((s.time?.getTime() ?? 0) <= afterMs) return done(false);
        if (out.length >= max) return done(true);
        out.push(s);
      }
      if (raws.length < NFS_SERIES_PAGE) return done(offset + raws.length >= NFS_WRITE_SERIES_CAP);
    }
  }

  async appendEvent(node: string, event: NodeHostEvent): Promise<void> {
    await this.redis.multi()
      .lpush(keys.nodeEvents(node), Buffer.from(NodeHostEvent.encode(event).finish()))
      .ltrim(keys.nodeEvents(node), 0, NODE_EVENT_LOG_CAP - 1)
      .exec();
  }

  async events(node: string, limit: number): Promise<NodeHostEvent[]> {
    const raw = await this.redis.lrangeBuffer(keys.nodeEvents(node), 0, limit - 1);
    return raw.map((b) => NodeHostEvent.decode(b));
  }
}
