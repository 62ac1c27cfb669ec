// The agent's sign of life for the rank watchdogs (see wrapper.ts): a small file in the
// state folder rewritten every second. A watchdog stops its rank once the content has stayed
// the same for longer than the partition grace period, so a dead agent leaves no orphans
// while a restarted one (which beats again at once) keeps its ranks.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { BEAT_INTERVAL_MS, beatContent } from './wrapper.js';

export function beatFilePath(stateDir: string): string {
  return join(stateDir, 'agent-beat');
}

export class AgentBeat {
  private timer: NodeJS.Timeout | undefined;
  private failing = false;

  constructor(readonly path: string, private readonly log: Logger, private readonly now: () => number = Date.now) {}

  start(): void {
    if (this.timer) return;
    this.beat();
    this.timer = setInterval(() => this.beat(), BEAT_INTERVAL_MS);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  beat(): void {
    const content = beatContent(this.now());
    try {
      // In place ('r+', same length every time) rather than temp file + rename: a full disk
      // must not silence the agent and have every watchdog stop its rank.
      try {
        writeFileSync(this.path, content, { flag: 'r+' });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        writeFileSync(this.path, content);
      }
      if (this.failing) this.log.info({ path: this.path }, 'agent beat file writable again');
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.log.error({ path: this.path, err: (err as Error).message }, 'cannot write the agent beat file; rank watchdogs will stop ranks after the partition grace period');
      this.failing = true;
    }
  }
}
