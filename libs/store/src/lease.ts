// The scheduler leader lease. The epoch is a fencing token: every leader-only write passes
// it to its Lua script, which rejects it once a newer leader holds the lease.
import type { Redis } from 'ioredis';
import { keys } from './keys.js';
import { scriptRunner, type ScriptRunner } from './scripts.js';

export class LeaderLease {
  private readonly scripts: ScriptRunner;

  constructor(redis: Redis, readonly instanceId: string, readonly ttlMs: number) {
    this.scripts = scriptRunner(redis);
  }

  /** Acquires or renews; returns this instance's epoch, or 0 when another instance leads. */
  async tryAcquire(): Promise<number> {
    return Number(await this.scripts.run('gantryLease', [keys.leader, keys.leaderEpoch, keys.epochCounter], [this.instanceId, this.ttlMs]));
  }

  async release(): Promise<void> {
    await this.scripts.run('gantryReleaseLease', [keys.leader], [this.instanceId]);
  }
}
