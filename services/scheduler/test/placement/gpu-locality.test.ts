import { describe, expect, it } from 'vitest';
import { maskOf, pickGpus } from '../../src/placement/index.js';

describe('pickGpus', () => {
  it('takes a whole free node in order', () => {
    expect(pickGpus(maskOf([0, 1, 2, 3, 4, 5, 6, 7]), 8, 8)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('keeps a small job inside one NVLink half, the fuller one', () => {
    // Half 0-3 has 3 free, half 4-7 has 4 free: a 2-GPU job goes to the pair 2-3 in the fuller half.
    expect(pickGpus(maskOf([1, 2, 3, 4, 5, 6, 7]), 8, 2)).toEqual([2, 3]);
    // A 4-GPU job needs a whole half: only 4-7 is whole.
    expect(pickGpus(maskOf([1, 2, 3, 4, 5, 6, 7]), 8, 4)).toEqual([4, 5, 6, 7]);
  });

  it('puts a single GPU where it fragments least', () => {
    // GPU 1 is alone in a half with 3 free; GPU 5 is alone in a half with 1 free: take 5.
    expect(pickGpus(maskOf([1, 2, 3, 5]), 8, 1)).toEqual([5]);
  });

  it('falls back to the whole node when no half holds the job, preferring contiguous GPUs', () => {
    expect(pickGpus(maskOf([2, 3, 4, 5, 6]), 8, 3)).toEqual([4, 5, 6]);
    expect(pickGpus(maskOf([0, 2, 5, 7]), 8, 3)).toEqual([0, 2, 5]);
  });

  it('refuses a request larger than the free set', () => {
    expect(() => pickGpus(maskOf([0, 1]), 8, 3)).toThrow(RangeError);
  });

  it('uses every index of a node that lost a GPU in the middle (GPU 3 of 0-7 gone: 7 GPUs up to index 7)', () => {
    const left = maskOf([0, 1, 2, 4, 5, 6, 7]);
    expect(pickGpus(left, 7, 7)).toEqual([0, 1, 2, 4, 5, 6, 7]);
    expect(pickGpus(left, 7, 4)).toEqual([4, 5, 6, 7]);
    expect(pickGpus(left, 7, 1)).toHaveLength(1);
  });
});
