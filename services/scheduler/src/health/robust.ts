// Robust statistics for the detector: median and MAD (median absolute deviation) instead of
// mean and standard deviation, so that one broken node, or one spike in a node's own
// history, cannot drag the yardstick it is measured with.

/** 1.4826 · MAD estimates the standard deviation of normally distributed data. */
export const MAD_TO_SIGMA = 1.4826;

/** Median of the finite values; undefined for none. Does not modify its input. */
let scratch = new Float64Array(256);

export function median(values: readonly number[]): number | undefined {
  // A typed array sorts numerically without a comparator; one reused buffer (allocating a
  // typed array per call costs more than the sort).
  if (scratch.length < values.length) scratch = new Float64Array(values.length * 2);
  let n = 0;
  for (const v of values) if (Number.isFinite(v)) scratch[n++] = v;
  if (n === 0) return undefined;
  const s = scratch.subarray(0, n).sort();
  const mid = n >> 1;
  // Halves first: the sum of two large values can overflow.
  return n % 2 === 1 ? s[mid]! : s[mid - 1]! / 2 + s[mid]! / 2;
}

/** Median absolute deviation from the median; undefined for no finite values. */
export function mad(values: readonly number[], centre = median(values)): number | undefined {
  if (centre === undefined) return undefined;
  const dev: number[] = [];
  for (const v of values) if (Number.isFinite(v)) dev.push(Math.abs(v - centre));
  return median(dev);
}

/**
 * Median and MAD together with one sort: the deviations left and right of the median are
 * each already ordered in the sorted sample, so their median is a merge, not a second sort.
 * Runs whenever a baseline bucket closes, for every signal of every node.
 */
export function medianAndMad(values: readonly number[]): { median: number; mad: number } | undefined {
  if (scratch.length < values.length) scratch = new Float64Array(values.length * 2);
  let n = 0;
  for (const v of values) if (Number.isFinite(v)) scratch[n++] = v;
  if (n === 0) return undefined;
  const s = scratch.subarray(0, n).sort();
  const mid = n >> 1;
  const odd = n % 2 === 1;
  const m = odd ? s[mid]! : s[mid - 1]! / 2 + s[mid]! / 2;
  // Deviations d0 <= d1 <= ... come from two ordered runs: m - s[i] walking left and
  // s[j] - m walking right. MAD is d[mid] (odd n; d0 is the median itself) or the mean of
  // d[mid-1] and d[mid] (even n).
  let i = mid - 1;
  let j = odd ? mid + 1 : mid;
  let prev = 0;
  let cur = 0;
  for (let k = odd ? 1 : 0; k <= mid; k++) {
    prev = cur;
    const l = i >= 0 ? m - s[i]! : Number.POSITIVE_INFINITY;
    const r = j < n ? s[j]! - m : Number.POSITIVE_INFINITY;
    if (l <= r) {
      cur = l;
      i--;
    } else {
      cur = r;
      j++;
    }
  }
  return { median: m, mad: odd ? cur : prev / 2 + cur / 2 };
}

export interface RobustSummary {
  median: number;
  /** Scale in units of standard deviations: max(1.4826 · MAD, floor). */
  scale: number;
  n: number;
}

/**
 * Median and scale of a sample. The floor stops a signal that is almost always exactly zero
 * (error counters on healthy hardware: MAD 0) from turning the first single error into an
 * infinite z-score; it is the smallest change that matters for that signal.
 */
export function summarize(values: readonly number[], floor: number): RobustSummary | undefined {
  const mm = medianAndMad(values);
  if (mm === undefined) return undefined;
  return { median: mm.median, scale: Math.max(MAD_TO_SIGMA * mm.mad, floor, Number.MIN_VALUE), n: values.length };
}

export type Direction = 'high' | 'low' | 'both';

/** Signed robust z-score in the direction that is bad for the signal (positive = worse). */
export function robustZ(value: number, s: RobustSummary, direction: Direction): number {
  const z = (value - s.median) / s.scale;
  const out = direction === 'high' ? z : direction === 'low' ? -z : Math.abs(z);
  return Number.isFinite(out) ? out : 0;
}

/** Clamps to [lo, hi], mapping NaN to lo: every number the detector stores must be finite. */
export function clamp(x: number, lo: number, hi: number): number {
  if (!(x >= lo)) return lo;
  return x > hi ? hi : x;
}

/** Factor an exponentially decaying quantity keeps over `dtSec` with the given half-life. */
export function decayFactor(dtSec: number, halfLifeSec: number): number {
  if (!(dtSec > 0)) return 1;
  if (!(halfLifeSec > 0)) return 0;
  return Math.pow(0.5, dtSec / halfLifeSec);
}
