// A config document the admin API stores in Redis as validated JSON (the scheduling policy,
// the health config), parsed again only when its text changes. A stored document that no
// longer validates (written by an older or newer release) falls back to the defaults, and
// says so, rather than stopping the scheduler.
import type { Logger } from '@gantry/service-kit';

export class StoredConfigCache<T> {
  private lastJson: string | undefined;
  private current: T;

  constructor(
    private readonly read: () => Promise<string | undefined>,
    private readonly parse: (doc: unknown) => T,
    private readonly defaults: T,
    private readonly what: string,
    private readonly log: Logger,
  ) {
    this.current = defaults;
  }

  async get(): Promise<T> {
    const json = await this.read();
    if (json !== this.lastJson) {
      this.lastJson = json;
      try {
        this.current = json ? this.parse(JSON.parse(json)) : this.defaults;
      } catch (err) {
        this.log.error({ err: (err as Error).message }, `stored ${this.what} is invalid; using defaults`);
        this.current = this.defaults;
      }
    }
    return this.current;
  }
}
