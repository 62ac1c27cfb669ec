// A background loop that runs a pass, then sleeps until kicked or until its idle interval
// passes; a pass that found work runs again at once. The leader's scheduling loop and the
// outbox relay are both this shape.
export abstract class WakeableLoop {
  private running = false;
  private wake: (() => void) | undefined;
  protected kicked = false;

  constructor(private readonly idleMs: () => number) {}

  /** One pass; true when there may be more work right away. */
  protected abstract pass(): Promise<boolean>;

  protected abstract onError(err: unknown): void;

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.loop();
  }

  stop(): void {
    this.running = false;
    this.wake?.();
  }

  kick(): void {
    this.kicked = true;
    this.wake?.();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      this.kicked = false;
      let busy = false;
      try {
        busy = await this.pass();
      } catch (err) {
        this.onError(err);
      }
      if (!busy && !this.kicked && this.running) {
        await new Promise<void>((r) => { this.wake = r; setTimeout(r, this.idleMs()); });
      }
    }
  }
}
