// Publishes the Redis outbox to JetStream in order. The event id is the Nats-Msg-Id, so an
// entry published twice (crash between publish and cursor update) is stored once.
import type { JetStreamClient } from '@nats-io/jetstream';
import type { Outbox } from '@gantry/store';
import type { Logger } from '@gantry/service-kit';

export class OutboxRelay {
  private running = false;
  private wake: (() => void) | undefined;

  constructor(private readonly outbox: Outbox, private readonly js: JetStreamClient, private readonly log: Logger, private readonly idleMs = 100) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.loop();
  }

  stop(): void {
    this.running = false;
    this.wake?.();
  }

  kick(): void {
    this.wake?.();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      let published = 0;
      try {
        const entries = await this.outbox.readAfterCursor(256);
        for (const e of entries) {
          await this.js.publish(e.subject, e.data, { msgID: e.id });
          published++;
        }
        if (entries.length > 0) await this.outbox.advance(entries[entries.length - 1]!.streamId);
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'outbox relay failed; retrying');
      }
      if (published === 0) await new Promise<void>((r) => { this.wake = r; setTimeout(r, this.idleMs); });
    }
  }
}
