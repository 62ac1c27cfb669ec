// A background loop that runs a pass, then sleeps until kicked or until its idle interval
// passes; a pass that found work runs again at once. The leader's scheduling loop and the
// outbox relay are both this shape.
export abstract class WakeableLoop {
  private running = false;
  /** Each start() begins a new generation; a loop of an older one exits at its next turn. */
  private generation = 0;
  private wake: (() => void) | undefined;
  private endRest: (() => void) | undefined;
  /** The running loop; a new one starts only after it has finished its pass. */
  private current: Promise<void> = Promise.resolve();
  protected kicked = false;
  /** A pass may ask to run again no later than this (ms since epoch), e.g. when a backoff ends. */
  private wakeDeadline = Infinity;

  constructor(private readonly idleMs: () => number) {}

  /** One pass; true when there may be more work right away. */
  protected abstract pass(): Promise<boolean>;

  /**
   * How long to wait before a pass that a kick asked for, after a pass that took `passMs`
   * (0: at once). Kicks that come meanwhile are served by that one pass.
   */
  protected restAfter(_passMs: number): number {
    return 0;
  }

  protected abstract onError(err: unknown): void;

  start(): void {
    if (this.running) return;
    this.running = true;
    const generation = ++this.generation;
    this.current = this.current.then(() => this.loop(generation));
  }

  stop(): void {
    this.running = false;
    this.generation++;
    this.wake?.();
    this.endRest?.();
  }

  /** Runs the next pass no later than `ms` (since epoch), even if nothing kicks the loop. */
  protected wakeAt(ms: number): void {
    this.wakeDeadline = Math.min(this.wakeDeadline, ms);
  }

  kick(): void {
    this.kicked = true;
    this.wake?.();
  }

  private async loop(generation: number): Promise<void> {
    while (this.running && generation === this.generation) {
      this.kicked = false;
      let busy = false;
      const started = performance.now();
      try {
        busy = await this.pass();
      } catch (err) {
        this.onError(err);
      }
      const ended = performance.now();
      const restUntil = busy ? 0 : ended + this.restAfter(ended - started);
      if (!busy && !this.kicked && this.running && generation === this.generation) {
        const sleep = Math.max(0, Math.min(this.idleMs(), this.wakeDeadline - Date.now()));
        this.wakeDeadline = Infinity;
        await new Promise<void>((r) => { this.wake = r; setTimeout(r, sleep); });
      }
      // A kick does not cut the rest short (kicks meanwhile are what it gathers); stop() does.
      const rest = restUntil - performance.now();
      if (rest > 0 && this.running && generation === this.generation) await new Promise<void>((r) => { this.endRest = r; setTimeout(r, rest); });
      this.endRest = undefined;
    }
  }
}
