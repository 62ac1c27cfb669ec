// Reads the outbox stream from the last relayed position. The relay publishes each entry to
// JetStream with its event id as Nats-Msg-Id, so re-publishing after a crash is harmless.
import type { Redis } from 'ioredis';
import { keys } from './keys.js';
import type { OutboxEvent } from './events.js';
import { awaitReplicas } from './durability.js';

export interface OutboxEntry extends OutboxEvent {
  streamId: string;
}

export class Outbox {
  constructor(private readonly redis: Redis) {}

  /**
   * Entries after the cursor, oldest first. With a replica wait configured, only once the
   * replicas have them: an event whose commit a failover could still undo (the commit's own wait
   * failed) is never published to JetStream, so WatchJob never shows a transition that did not
   * survive.
   */
  async readAfterCursor(count: number): Promise<OutboxEntry[]> {
    const cursor = (await this.redis.get(keys.outboxCursor)) ?? '0-0';
    const raw = await this.redis.xrangeBuffer(keys.outbox, `(${cursor}`, '+', 'COUNT', count);
    if (raw.length > 0) await awaitReplicas(this.redis);
    return raw.map(([id, fields]) => {
      const f = new Map<string, Buffer>();
      for (let i = 0; i < fields.length; i += 2) f.set(fields[i]!.toString(), fields[i + 1]!);
      return { streamId: id.toString(), subject: f.get('subject')?.toString() ?? '', id: f.get('id')?.toString() ?? '', data: f.get('data') ?? Buffer.alloc(0) };
    });
  }

  /** Marks entries up to streamId relayed and trims them. */
  async advance(streamId: string): Promise<void> {
    await this.redis.multi().set(keys.outboxCursor, streamId).xtrim(keys.outbox, 'MINID', streamId).exec();
  }
}
