// Calls `fire(i, lateMs)` for each of `count` members once per `periodMs`, member i at offset
// i/count of the period, driven by one external tick instead of a timer per member. A tick
// that comes late fires every slot that passed (catching up, so the rate over time is the
// target's), and says how late each one is.
export class PeriodicWheel {
  private cycleStart = 0;
  private next = 0;

  constructor(private readonly count: number, private readonly periodMs: number, private readonly fire: (i: number, lateMs: number) => void) {}

  start(now: number): void {
    this.cycleStart = now;
    this.next = 0;
  }

  private due(i: number): number {
    return this.cycleStart + (this.periodMs * i) / this.count;
  }

  advance(now: number): void {
    if (this.count === 0) return;
    while (this.due(this.next) <= now) {
      this.fire(this.next, now - this.due(this.next));
      if (++this.next === this.count) {
        this.next = 0;
        this.cycleStart += this.periodMs;
      }
    }
  }
}
