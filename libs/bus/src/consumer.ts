// A durable JetStream consumer with Gantry's handling rules: acknowledge after the handler's
// effect is committed, redeliver (after a pause) when it fails, and drop a message that does
// not decode (it never will), logging it. Used by every service that consumes a stream.
import type { NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { DecodeError } from './codec.js';

export interface DurableConsumerSpec {
  stream: string;
  durable: string;
  filterSubject: string;
  /** Messages in flight to this process. */
  maxMessages?: number;
  /** Pause before a failed message is redelivered, ms. */
  retryDelayMs?: number;
  /**
   * How long a delivered message may stay unacknowledged before it goes to another consumer
   * instance, ms. Short, so that messages pulled by a leader that froze are redelivered to
   * its successor within seconds (handlers are idempotent, so a rare duplicate is harmless).
   */
  ackWaitMs?: number;
  /**
   * Messages handled at once (default 1: one at a time, in stream order). With more, messages
   * with the same order key (default: the subject) still go one at a time in stream order;
   * handlers of different keys overlap, so their Redis commands share round trips. Messages
   * waiting behind their key's do not count (they are held, at most a pull's worth, and kept
   * from redelivery while they wait).
   */
  concurrency?: number;
  orderKey?: (m: JsMsg) => string;
}

/**
 * Thrown by a handler for a message it cannot take yet but expects to (it waits on another
 * stream): redelivered after `delayMs` without a warning each time, the handler deciding when
 * to give up.
 */
export class RetryLater extends Error {
  constructor(message: string, readonly delayMs?: number) {
    super(message);
  }
}

/** Pull requests expire this quickly, so a frozen process stops attracting new messages. */
const PULL_EXPIRES_MS = 2_000;

interface WarnLogger {
  warn(obj: object, msg: string): void;
}

/**
 * Creates (or updates) the durable consumer and starts pulling from it, for a caller that
 * handles the messages itself (e.g. several at once) under the same rules as consumeDurable.
 */
export async function openDurable(nc: NatsConnection, spec: DurableConsumerSpec): Promise<ConsumerMessages> {
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.add(spec.stream, {
    durable_name: spec.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: spec.filterSubject,
    max_ack_pending: Math.max(1_000, (spec.maxMessages ?? 256) * 4),
    ack_wait: (spec.ackWaitMs ?? 5_000) * 1_000_000,
  });
  return (await jetstream(nc).consumers.get(spec.stream, spec.durable)).consume({ max_messages: spec.maxMessages ?? 256, expires: PULL_EXPIRES_MS });
}

export async function consumeDurable(nc: NatsConnection, spec: DurableConsumerSpec, log: WarnLogger, handle: (m: JsMsg) => Promise<void>): Promise<ConsumerMessages> {
  const messages = await openDurable(nc, spec);
  // Never throws: the message is acknowledged, redelivered later or dropped.
  const settle = async (m: JsMsg): Promise<void> => {
    try {
      await handle(m);
      m.ack();
    } catch (err) {
      if (err instanceof RetryLater) {
        m.nak(err.delayMs ?? spec.retryDelayMs ?? 1_000);
      } else if (err instanceof DecodeError) {
        log.warn({ err: err.message, subject: m.subject }, 'dropping malformed message');
        m.term();
      } else {
        log.warn({ err: (err as Error).message, subject: m.subject }, 'message not processed; will be redelivered');
        m.nak(spec.retryDelayMs ?? 1_000);
      }
    }
  };
  const limit = Math.max(1, spec.concurrency ?? 1);
  void (async () => {
    if (limit === 1) {
      for await (const m of messages) await settle(m);
      return;
    }
    // Per order key, the messages waiting for the one of that key in progress; keys with a
    // message ready and none in progress, in the order they became ready. Only running handlers
    // count against `limit`, so one key's backlog (a large gang's rank events) does not hold up
    // the other keys. The messages held (running or waiting) are bounded by a pull's worth, and
    // those waiting are marked in progress every half ack wait, so none is redelivered while it
    // waits its turn here.
    const waitingByKey = new Map<string, JsMsg[]>();
    const ready: string[] = [];
    const maxHeld = Math.max(4 * limit, spec.maxMessages ?? 256);
    let running = 0;
    let held = 0;
    const receivedAt = new WeakMap<JsMsg, number>();
    const keepAlive = setInterval(() => {
      for (const queue of waitingByKey.values()) for (const m of queue) m.working();
    }, (spec.ackWaitMs ?? 5_000) / 2);
    keepAlive.unref();
    let wake: (() => void) | undefined;
    const pump = (): void => {
      while (running < limit && ready.length > 0) {
        const key = ready.shift()!;
        const queue = waitingByKey.get(key)!;
        const m = queue.shift()!;
        running++;
        // One that waited its turn gets a whole ack wait for its handler, as if just delivered.
        if (Date.now() - (receivedAt.get(m) ?? Date.now()) > 100) m.working();
        void settle(m).finally(() => {
          running--;
          held--;
          if (queue.length > 0) ready.push(key);
          else waitingByKey.delete(key);
          pump();
          const w = wake;
          wake = undefined;
          w?.();
        });
      }
    };
    for await (const m of messages) {
      while (held >= maxHeld) await new Promise<void>((r) => { wake = r; });
      held++;
      receivedAt.set(m, Date.now());
      const key = spec.orderKey?.(m) ?? m.subject;
      const queue = waitingByKey.get(key);
      if (queue) {
        queue.push(m); // behind the one of its key in progress (or already ready)
      } else {
        waitingByKey.set(key, [m]);
        ready.push(key);
      }
      pump();
    }
    clearInterval(keepAlive);
  })();
  return messages;
}
