import { describe, expect, it, vi } from 'vitest';
import { backoffMs, DEFAULT_RETRY_POLICY, GantryError, isRetryable, status, withRetry } from '../src/index.js';

const policy = { maxAttempts: 4, initialBackoffMs: 100, maxBackoffMs: 1_000, multiplier: 2 };
const fast = { ...policy, initialBackoffMs: 1, maxBackoffMs: 2 };
const unavailable = () => new GantryError(status.UNAVAILABLE, 'down');

describe('backoffMs', () => {
  it('grows the bound exponentially up to the maximum', () => {
    const top = () => 0.999999;
    expect([0, 1, 2, 3, 4, 5].map((r) => backoffMs(r, policy, top))).toEqual([99, 199, 399, 799, 999, 999]);
  });

  it('jitters uniformly below the bound', () => {
    expect(backoffMs(2, policy, () => 0)).toBe(0);
    expect(backoffMs(2, policy, () => 0.5)).toBe(200);
  });

  it('has sane defaults', () => {
    expect(DEFAULT_RETRY_POLICY.maxAttempts).toBeGreaterThan(1);
    expect(() => ((DEFAULT_RETRY_POLICY as { maxAttempts: number }).maxAttempts = 9)).toThrow();
  });
});

describe('isRetryable', () => {
  it('retries reads on UNAVAILABLE and DEADLINE_EXCEEDED, idempotent writes on UNAVAILABLE only', () => {
    const deadline = new GantryError(status.DEADLINE_EXCEEDED, 'slow');
    expect(isRetryable(unavailable(), 'read')).toBe(true);
    expect(isRetryable(deadline, 'read')).toBe(true);
    expect(isRetryable(unavailable(), 'idempotent')).toBe(true);
    expect(isRetryable(deadline, 'idempotent')).toBe(false);
    expect(isRetryable(unavailable(), 'unsafe')).toBe(false);
    // A submit carries its idempotency key: retried on both.
    expect(isRetryable(unavailable(), 'keyed')).toBe(true);
    expect(isRetryable(deadline, 'keyed')).toBe(true);
    expect(isRetryable(new GantryError(status.INVALID_ARGUMENT, 'bad'), 'read')).toBe(false);
  });
});

describe('withRetry', () => {
  it('retries until success and reports each retry', async () => {
    const onRetry = vi.fn();
    const fn = vi.fn<(n: number) => Promise<string>>()
      .mockRejectedValueOnce(unavailable())
      .mockRejectedValueOnce(unavailable())
      .mockResolvedValue('ok');
    await expect(withRetry(fn, { policy: fast, retryClass: 'read', onRetry })).resolves.toBe('ok');
    expect(fn.mock.calls.map((c) => c[0])).toEqual([1, 2, 3]);
    expect(onRetry.mock.calls.map((c) => c[1])).toEqual([1, 2]);
  });

  it('gives up after maxAttempts with the last error', async () => {
    const fn = vi.fn(() => Promise.reject(unavailable()));
    const err = await withRetry(fn, { policy: fast, retryClass: 'read' }).catch((e: unknown) => e);
    expect(fn).toHaveBeenCalledTimes(4);
    expect(GantryError.is(err, status.UNAVAILABLE)).toBe(true);
  });

  it('does not retry a non-retryable status', async () => {
    const fn = vi.fn(() => Promise.reject(new GantryError(status.NOT_FOUND, 'nope')));
    await expect(withRetry(fn, { policy: fast, retryClass: 'read' })).rejects.toMatchObject({ code: status.NOT_FOUND });
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('stops waiting when the signal aborts during a backoff', async () => {
    const ac = new AbortController();
    const fn = vi.fn(() => {
      setTimeout(() => ac.abort(), 5);
      return Promise.reject(unavailable());
    });
    const slow = { ...policy, initialBackoffMs: 60_000, maxBackoffMs: 60_000 };
    await expect(withRetry(fn, { policy: slow, retryClass: 'read', signal: ac.signal, random: () => 1 })).rejects.toMatchObject({
      code: status.CANCELLED,
    });
    expect(fn).toHaveBeenCalledTimes(1);
  });
});
