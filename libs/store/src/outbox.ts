// Reads the outbox stream from the last relayed position. The relay publishes each entry to
// JetStream with its event id as Nats-Msg-Id, so re-publishing after a crash is harmless.
import type { Redis } from 'ioredis';
import { keys } from './keys.js';
import type { OutboxEvent } from './events.js';
import { awaitReplicas } from './durability.js';
import { scriptRunner, type ScriptRunner } from './scripts.js';

export interface OutboxEntry extends OutboxEvent {
  streamId: string;
}

export class Outbox {
  private readonly scripts: ScriptRunner;

  constructor(private readonly redis: Redis) {
    this.scripts = scriptRunner(redis);
  }

  /**
   * Marks the entries up to `relayedTo` relayed (as advance() does; omitted: none), then reads
   * up to `count` entries after the cursor, oldest first: one round trip per relay pass. With
   * a replica wait configured, the entries come back only once the replicas have them: an
   * event whose commit a failover could still undo (the commit's own wait failed) is never
   * published to JetStream, so WatchJob never shows a transition that did not survive.
   */
  async next(count: number, relayedTo?: string): Promise<OutboxEntry[]> {
    const raw = (await this.scripts.runBuffer('gantryOutboxNext', [keys.outboxCursor, keys.outbox], [relayedTo ?? '', count])) as [Buffer, Buffer[]][];
    if (raw.length > 0) await awaitReplicas(this.redis);
    return raw.map(([id, fields]) => {
      const f = new Map<string, Buffer>();
      for (let i = 0; i < fields.length; i += 2) f.set(fields[i]!.toString(), fields[i + 1]!);
      return { streamId: id.toString(), subject: f.get('subject')?.toString() ?? '', id: f.get('id')?.toString() ?? '', data: f.get('data') ?? Buffer.alloc(0) };
    });
  }

  /**
   * What waits to be relayed: how many entries, and how old the oldest is (its stream id is
   * the time it was written). The relayed ones are trimmed up to the cursor's own entry.
   */
  async backlog(nowMs = Date.now()): Promise<{ pending: number; oldestAgeSec: number }> {
    const cursor = (await this.redis.get(keys.outboxCursor)) ?? '0-0';
    const [len, next] = await Promise.all([this.redis.xlen(keys.outbox), this.redis.xrange(keys.outbox, `(${cursor}`, '+', 'COUNT', 1)]);
    const oldestMs = next.length > 0 ? Number(next[0]![0].split('-')[0]) : undefined;
    return {
      pending: next.length === 0 ? 0 : Math.max(1, len - (cursor === '0-0' ? 0 : 1)),
      oldestAgeSec: oldestMs === undefined ? 0 : Math.max(0, (nowMs - oldestMs) / 1000),
    };
  }

  /** Marks entries up to streamId relayed and trims them. */
  async advance(streamId: string): Promise<void> {
    await this.redis.multi().set(keys.outboxCursor, streamId).xtrim(keys.outbox, 'MINID', streamId).exec();
  }
}
