// Graceful shutdown: on SIGTERM or SIGINT run the registered closers in reverse order of
// registration (servers before the connections they use), each bounded by a timeout.
import type { Logger } from './logger.js';

type Closer = { name: string; close: () => Promise<unknown> | unknown };

export class Lifecycle {
  private closers: Closer[] = [];
  private stopping: Promise<void> | undefined;

  constructor(private readonly log: Logger, private readonly timeoutMs = 10_000) {}

  onShutdown(name: string, close: Closer['close']): void {
    this.closers.push({ name, close });
  }

  installSignalHandlers(): void {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      process.once(sig, () => {
        this.log.info({ signal: sig }, 'shutting down');
        void this.shutdown().then(() => process.exit(0));
      });
    }
  }

  shutdown(): Promise<void> {
    this.stopping ??= (async () => {
      for (const c of [...this.closers].reverse()) {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            Promise.resolve(c.close()),
            new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('timed out')), this.timeoutMs); }),
          ]);
        } catch (err) {
          this.log.warn({ err: (err as Error).message, closer: c.name }, 'shutdown step failed');
        } finally {
          clearTimeout(timer);
        }
      }
    })();
    return this.stopping;
  }
}
