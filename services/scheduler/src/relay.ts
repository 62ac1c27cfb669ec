// Publishes the Redis outbox to JetStream in order. The event id is the Nats-Msg-Id, so an
// entry published twice (crash between publish and cursor update) is stored once.
import type { JetStreamClient } from '@nats-io/jetstream';
import type { Outbox } from '@gantry/store';
import type { Logger } from '@gantry/service-kit';
import { WakeableLoop } from './wakeable-loop.js';

export class OutboxRelay extends WakeableLoop {
  constructor(private readonly outbox: Outbox, private readonly js: JetStreamClient, private readonly log: Logger, idleMs = 100) {
    super(() => idleMs);
  }

  protected async pass(): Promise<boolean> {
    const entries = await this.outbox.readAfterCursor(256);
    for (const e of entries) {
      try {
        await this.js.publish(e.subject, e.data, { msgID: e.id });
      } catch (err) {
        // An event NATS can never accept must not block every event behind it: log it (it
        // stays in Redis as the job's state) and move on. Anything else is retried.
        if (!/max_payload|maximum payload/i.test((err as Error).message)) throw err;
        this.log.error({ subject: e.subject, bytes: e.data.length, err: (err as Error).message }, 'outbox event too large for NATS; skipped');
      }
    }
    if (entries.length > 0) await this.outbox.advance(entries[entries.length - 1]!.streamId);
    return entries.length > 0;
  }

  protected onError(err: unknown): void {
    this.log.warn({ err: (err as Error).message }, 'outbox relay failed; retrying');
  }
}
