import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { counterDelta, counterRate, parseCounter, parseNumber, ratio } from '../src/collectors/counters.js';

describe('parseCounter', () => {
  it('reads plain counters and rejects everything else', () => {
    expect(parseCounter('230539874932483')).toBe(230539874932483);
    expect(parseCounter('0')).toBe(0);
    for (const bad of ['', 'N/A', '-1', '1.5', ' 1', '0x10', '99999999999999999999999']) expect(parseCounter(bad)).toBeUndefined();
  });

  it('reads values >= 2^63 as signed int64 so deltas across the wrap stay exact', () => {
    expect(parseCounter('18446743919241604546')).toBe(-154467947070);
    expect(parseCounter('18446744073709551615')).toBe(-1);
    expect(counterDelta(parseCounter('18446744073709551000'), parseCounter('384'))).toBe(1000);
  });
});

describe('counterDelta / counterRate', () => {
  it('handles increase, reset and 32-bit wrap', () => {
    expect(counterDelta(10, 25)).toBe(15);
    expect(counterDelta(1000, 40)).toBe(40); // reset: counted from zero
    expect(counterDelta(1000, 40, { onReset: 'skip' })).toBeUndefined();
    expect(counterDelta(2 ** 32 - 100, 50, { bits: 32 })).toBe(150); // wrapped
    expect(counterDelta(1000, 40, { bits: 32 })).toBe(40); // low in the range: a reset, not a wrap
    expect(counterDelta(undefined, 5)).toBeUndefined();
    expect(counterRate(0, 100, 10)).toBe(10);
    expect(counterRate(0, 100, 0)).toBeUndefined();
  });

  it('says nothing for two readings whose difference overflows (fast-check found it in CI)', () => {
    expect(counterDelta(-1.7976893694642197e308, 3.7653980960792206e302)).toBeUndefined();
    expect(counterRate(-1.7976893694642197e308, 3.7653980960792206e302, 1)).toBeUndefined();
  });

  it('never returns NaN, Infinity or a negative delta', () => {
    const n = fc.oneof(fc.double(), fc.integer(), fc.constant(undefined));
    fc.assert(fc.property(n, n, fc.double(), fc.constantFrom(undefined, 32, 64) as fc.Arbitrary<32 | 64 | undefined>, (a, b, s, bits) => {
      const d = counterDelta(a, b, bits ? { bits } : {});
      if (d !== undefined) expect(Number.isFinite(d) && d >= 0).toBe(true);
      const r = counterRate(a, b, s);
      if (r !== undefined) expect(Number.isNaN(r)).toBe(false);
      const q = ratio(a, b);
      if (q !== undefined) expect(Number.isFinite(q)).toBe(true);
    }));
  });
});

describe('parseNumber', () => {
  it('reads decimals and hex masks only', () => {
    expect(parseNumber('0x00000000000001FF')).toBe(511);
    expect(parseNumber('631.95')).toBe(631.95);
    expect(parseNumber('[N/A]')).toBeUndefined();
    expect(parseNumber('1e400')).toBeUndefined();
  });
});
