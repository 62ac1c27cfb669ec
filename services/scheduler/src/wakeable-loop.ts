// A background loop that runs a pass, then sleeps until kicked or until its idle interval
// passes; a pass that found work runs again at once. The leader's scheduling loop and the
// outbox relay are both this shape.
export abstract class WakeableLoop {
  private running = false;
  /** Each start() begins a new generation; a loop of an older one exits at its next turn. */
  private generation = 0;
  private wake: (() => void) | undefined;
  /** The running loop; a new one starts only after it has finished its pass. */
  private current: Promise<void> = Promise.resolve();
  protected kicked = false;
  /** A pass may ask to run again no later than this (ms since epoch), e.g. when a backoff ends. */
  private wakeDeadline = Infinity;

  constructor(private readonly idleMs: () => number) {}

  /** One pass; true when there may be more work right away. */
  protected abstract pass(): Promise<boolean>;

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
      try {
        busy = await this.pass();
      } catch (err) {
        this.onError(err);
      }
      if (!busy && !this.kicked && this.running && generation === this.generation) {
        const sleep = Math.max(0, Math.min(this.idleMs(), this.wakeDeadline - Date.now()));
        this.wakeDeadline = Infinity;
        await new Promise<void>((r) => { this.wake = r; setTimeout(r, sleep); });
      }
    }
  }
}
