import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { clamp, decayFactor, mad, median, medianAndMad, robustZ, summarize } from '../../src/health/robust.js';

describe('robust statistics', () => {
  it('median and MAD ignore a single wild value', () => {
    const xs = [10, 11, 9, 10, 12, 10, 1e6];
    expect(median(xs)).toBe(10);
    expect(mad(xs)).toBe(1);
    // A mean/sd would be dragged to ~1e5; the robust scale stays ~1.5.
    expect(summarize(xs, 0.1)!.scale).toBeCloseTo(1.4826, 4);
  });

  it('the floor keeps an always-zero signal from turning its first error into an infinite z', () => {
    const s = summarize([0, 0, 0, 0, 0], 0.5)!;
    expect(s.scale).toBe(0.5);
    expect(robustZ(2, s, 'high')).toBe(4);
  });

  it('z is signed toward the bad direction', () => {
    const s = { median: 10, scale: 2, n: 5 };
    expect(robustZ(14, s, 'high')).toBe(2);
    expect(robustZ(14, s, 'low')).toBe(-2);
    expect(robustZ(6, s, 'low')).toBe(2);
    expect(robustZ(6, s, 'both')).toBe(2);
  });

  it('medianAndMad equals median and MAD computed separately, for any sample', () => {
    fc.assert(fc.property(fc.array(fc.oneof(fc.integer({ min: -5, max: 5 }), fc.double({ min: -1e6, max: 1e6, noNaN: true })), { minLength: 1, maxLength: 80 }), (xs) => {
      const both = medianAndMad(xs)!;
      const m = median(xs)!;
      expect(both.median).toBeCloseTo(m, 9);
      expect(both.mad).toBeCloseTo(mad(xs, m)!, 9);
    }));
  });

  it('non-finite values are skipped, never propagated', () => {
    expect(median([Number.NaN, 1, Number.POSITIVE_INFINITY, 3])).toBe(2);
    expect(median([Number.NaN])).toBeUndefined();
    expect(clamp(Number.NaN, 0, 7)).toBe(0);
  });

  it('decay halves per half-life', () => {
    expect(decayFactor(600, 600)).toBeCloseTo(0.5);
    expect(decayFactor(0, 600)).toBe(1);
    expect(decayFactor(60, 0)).toBe(0);
  });
});
