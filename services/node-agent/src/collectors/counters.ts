// Counter arithmetic shared by every collector: parsing kernel counters without throwing,
// and turning two snapshots of a cumulative counter into a delta or a per-second rate that
// survives resets (driver reload, remount, agent restart) and fixed-width wrap-around.

const TWO_63 = 2n ** 63n;
const TWO_64 = 2n ** 64n;

/**
 * Parses an unsigned decimal kernel counter. Returns undefined for anything that is not a
 * plain non-negative integer (so "N/A", "", "-" never become NaN or 0).
 *
 * Values at or above 2^63 are read as two's-complement int64: the kernel prints some sums
 * as u64 although they are fed signed increments (NFS per-op queue/RTT times go "negative"
 * when ktime steps back, e.g. 18446743919241604546 = -154467947070). Read this way the value
 * stays exact in a double and the difference between two snapshots is still right, which it
 * would not be for a double near 2^64 (whose spacing is 4096).
 */
export function parseCounter(text: string): number | undefined {
  // Short strings are the hot path: skip BigInt entirely.
  if (text.length === 0 || text.length > 20) return undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
  }
  if (text.length < 16) return Number(text);
  const big = BigInt(text);
  if (big >= TWO_64) return undefined;
  return Number(big >= TWO_63 ? big - TWO_64 : big);
}

/** Parses a decimal or 0x-hex number (gauges, masks); undefined when it is not one. */
export function parseNumber(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  if (t.length === 0) return undefined;
  if (/^0x[0-9a-f]+$/i.test(t)) {
    const n = Number.parseInt(t.slice(2), 16);
    return Number.isFinite(n) ? n : undefined;
  }
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(t)) return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
}

export interface CounterOptions {
  /**
   * Width of the hardware/kernel counter. With a width, a decrease from the upper half of
   * the range to the lower half is a wrap; any other decrease is a reset.
   */
  bits?: 32 | 64;
  /**
   * What a reset (counter went down) means for the interval: 'from-zero' assumes the counter
   * restarted at 0 within the interval and reports the new value as the delta (right for a
   * driver reload or remount, where counting starts at zero); 'skip' reports nothing.
   */
  onReset?: 'from-zero' | 'skip';
}

const WIDTH = { 32: 2 ** 32, 64: 2 ** 64 } as const;

/** The increase of a cumulative counter between two snapshots, or undefined when unknown. */
export function counterDelta(
  prev: number | undefined,
  cur: number | undefined,
  options: CounterOptions = {},
): number | undefined {
  if (prev === undefined || cur === undefined || !Number.isFinite(prev) || !Number.isFinite(cur)) return undefined;
  // Readings of signed 64-bit counters can be negative (see parseNumber); garbage ones so far
  // apart that their difference overflows to Infinity say nothing.
  if (cur >= prev) return Number.isFinite(cur - prev) ? cur - prev : undefined;
  if (options.bits !== undefined) {
    const width = WIDTH[options.bits];
    if (prev >= width / 2 && cur < width / 2 && prev < width) return width - prev + cur;
  }
  return (options.onReset ?? 'from-zero') === 'from-zero' && cur >= 0 ? cur : undefined;
}

/** counterDelta divided by the interval; undefined for a non-positive interval. */
export function counterRate(
  prev: number | undefined,
  cur: number | undefined,
  seconds: number,
  options?: CounterOptions,
): number | undefined {
  if (!(seconds > 0)) return undefined;
  const d = counterDelta(prev, cur, options);
  return d === undefined ? undefined : d / seconds;
}

/** a/b that is undefined instead of NaN/Infinity when b is 0 or either side is unknown. */
export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined || b === 0) return undefined;
  const r = a / b;
  return Number.isFinite(r) ? r : undefined;
}
