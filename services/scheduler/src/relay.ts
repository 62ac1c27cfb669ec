// Publishes the Redis outbox to JetStream in order. The event id is the Nats-Msg-Id, so an
// entry published twice (crash between publish and cursor update) is stored once.
//
// A pass reads up to 256 entries and publishes them without waiting for each acknowledgement
// in turn (the publishes share NATS writes; one at a time cost a write and a wake-up each).
// Events of one subject (one job, one node) still go one after another, each only once the one
// before it is acknowledged, so a subject's events are stored in their order even when a
// publish fails. The cursor moves past the acknowledged prefix of the batch, in the same round
// trip as the next pass's read; entries after a failure are published again (and de-duplicated).
// The scheduler kicks the relay after each commit that wrote an event (JobStore onEvent), so
// an event reaches JetStream in milliseconds rather than at the next poll.
import type { JetStreamClient } from '@nats-io/jetstream';
import type { Outbox, OutboxEntry } from '@gantry/store';
import type { Logger } from '@gantry/service-kit';
import { WakeableLoop } from './wakeable-loop.js';

const BATCH = 256;
const MAX_REST_MS = 20;

/** An event NATS can never accept (larger than its max_payload). */
const tooLarge = (err: Error): boolean => /max_payload|maximum payload/i.test(err.message);

export class OutboxRelay extends WakeableLoop {
  /** The last entry relayed and not yet marked in Redis (marked by the next read). */
  private relayedTo: string | undefined;

  constructor(private readonly outbox: Outbox, private readonly js: JetStreamClient, private readonly log: Logger, idleMs = 100) {
    super(() => idleMs);
  }

  protected async pass(): Promise<boolean> {
    const entries = await this.outbox.next(BATCH, this.relayedTo);
    this.relayedTo = undefined;
    const outcomes = await this.publishAll(entries);
    for (let i = 0; i < entries.length; i++) {
      const err = outcomes[i];
      if (err && !tooLarge(err)) throw err;
      // An event NATS can never accept must not block every event behind it: log it (it
      // stays in Redis as the job's state) and move on. Anything else is retried.
      if (err) this.log.error({ subject: entries[i]!.subject, bytes: entries[i]!.data.length, err: err.message }, 'outbox event too large for NATS; skipped');
      this.relayedTo = entries[i]!.streamId;
    }
    // A short batch read everything there was: the next pass (a kick, or the idle poll) marks
    // it relayed in its read. Only a full batch means more waits now.
    return entries.length === BATCH;
  }

  /**
   * Kicked by every commit, the relay would run a pass per event; resting as long as the last
   * pass took (at most MAX_REST_MS) lets the next pass take the events of the rest together.
   */
  protected override restAfter(passMs: number): number {
    return Math.min(passMs, MAX_REST_MS);
  }

  /** Each entry's publish error (undefined: stored), a subject's entries one after another. */
  private publishAll(entries: OutboxEntry[]): Promise<(Error | undefined)[]> {
    const last = new Map<string, Promise<Error | undefined>>();
    return Promise.all(entries.map((e) => {
      const before = last.get(e.subject) ?? Promise.resolve(undefined);
      const outcome = before.then(async (prior): Promise<Error | undefined> => {
        if (prior && !tooLarge(prior)) return new Error(`not published: an earlier event of ${e.subject} was not (${prior.message})`);
        try {
          await this.js.publish(e.subject, e.data, { msgID: e.id });
          return undefined;
        } catch (err) {
          return err as Error;
        }
      });
      last.set(e.subject, outcome);
      return outcome;
    }));
  }

  protected onError(err: unknown): void {
    this.log.warn({ err: (err as Error).message }, 'outbox relay failed; retrying');
  }
}
