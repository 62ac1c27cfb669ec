// A small seeded PRNG (mulberry32): the simulator must replay the same host for the same
// seed, which Math.random cannot do.
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  between(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  int(lo: number, hi: number): number {
    return Math.floor(this.between(lo, hi + 1));
  }

  /** Roughly normal (Irwin-Hall of 4), cheap and good enough for jitter. */
  gauss(mean: number, sd: number): number {
    return mean + sd * ((this.next() + this.next() + this.next() + this.next() - 2) * Math.sqrt(3));
  }

  hex(n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += Math.floor(this.next() * 16).toString(16);
    return s;
  }

  /** Poisson-ish count for a small expected value. */
  count(expected: number): number {
    if (expected <= 0) return 0;
    const whole = Math.floor(expected);
    return whole + (this.next() < expected - whole ? 1 : 0);
  }
}
