// Client-side retries for unary calls.
//
// Why not grpc-js's built-in retries (service config `retryPolicy`)? They share one deadline
// across all attempts, so a call whose attempt hits DEADLINE_EXCEEDED can never be retried,
// and they are configured per method for the whole channel. Gantry wants a per-attempt
// deadline (a read stuck behind a failing-over scheduler should try again), and whether a call
// may be retried depends on the call (see `RetryClass`), so the loop lives here.
import { setTimeout as sleep } from 'node:timers/promises';
import { status } from '@grpc/grpc-js';
import { toGantryError, type GantryError } from './errors.js';

export interface RetryPolicy {
  /** Attempts in total, the first included; 1 disables retries. */
  maxAttempts: number;
  /** Upper bound of the first backoff. */
  initialBackoffMs: number;
  /** Upper bound of any backoff. */
  maxBackoffMs: number;
  /** Growth of the upper bound per retry. */
  multiplier: number;
}

export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze({
  maxAttempts: 5,
  initialBackoffMs: 100,
  maxBackoffMs: 5_000,
  multiplier: 2,
});

/**
 * How safe a call is to repeat.
 * - `read`: no side effects; retried on UNAVAILABLE and DEADLINE_EXCEEDED.
 * - `keyed`: a write the server de-duplicates by a key the request carries (a submit and its
 *   idempotency key); retried on UNAVAILABLE and DEADLINE_EXCEEDED. A submit that timed out
 *   may well have created the job (Redis slow or down behind the gateway): the retry, with
 *   the same key, returns that job instead of creating a second one.
 * - `idempotent`: a write whose repetition has the same effect (cancel, a config replace);
 *   retried on UNAVAILABLE only, since a DEADLINE_EXCEEDED write may have been applied and
 *   its caller should look before trying again.
 * - `unsafe`: never retried.
 */
export type RetryClass = 'read' | 'keyed' | 'idempotent' | 'unsafe';

const RETRYABLE: Record<RetryClass, readonly status[]> = {
  read: [status.UNAVAILABLE, status.DEADLINE_EXCEEDED],
  keyed: [status.UNAVAILABLE, status.DEADLINE_EXCEEDED],
  idempotent: [status.UNAVAILABLE],
  unsafe: [],
};

export function isRetryable(err: GantryError, retryClass: RetryClass): boolean {
  return RETRYABLE[retryClass].includes(err.code);
}

/**
 * Backoff before retry number `retry` (0 for the first retry): exponential growth of the upper
 * bound with "full jitter" (uniform in [0, bound)), which spreads the retries of many clients
 * that failed together instead of having them hit a recovering server in lock-step.
 */
export function backoffMs(retry: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const bound = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * policy.multiplier ** retry);
  return Math.floor(random() * bound);
}

export interface RetryOptions {
  policy: RetryPolicy;
  retryClass: RetryClass;
  signal?: AbortSignal | undefined;
  /** Called before sleeping for a retry; for logging. */
  onRetry?: ((err: GantryError, attempt: number, delayMs: number) => void) | undefined;
  random?: () => number;
}

/** Runs `attempt(n)` (n = 1, 2, ...) until it succeeds, fails for good, or attempts run out. */
export async function withRetry<T>(attempt: (n: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (raw) {
      const err = toGantryError(raw);
      if (n >= opts.policy.maxAttempts || !isRetryable(err, opts.retryClass) || opts.signal?.aborted) throw err;
      const delay = backoffMs(n - 1, opts.policy, opts.random);
      opts.onRetry?.(err, n, delay);
      try {
        await sleep(delay, undefined, { signal: opts.signal });
      } catch (abort) {
        throw toGantryError(abort);
      }
    }
  }
}
