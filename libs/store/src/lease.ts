// The scheduler leader lease. The epoch is a fencing token: every leader-only write passes
// it to its Lua script, which rejects it once a newer leader holds the lease.
import type { Redis } from 'ioredis';
import { keys } from './keys.js';
import { scriptRunner, type ScriptRunner } from './scripts.js';
import { awaitReplicas } from './durability.js';

export class LeaderLease {
  private readonly scripts: ScriptRunner;
  /** The last epoch confirmed on the replicas; a new one is used only once they have it. */
  private confirmedEpoch = 0;

  constructor(private readonly redis: Redis, readonly instanceId: string, readonly ttlMs: number) {
    this.scripts = scriptRunner(redis);
  }

  /**
   * The epoch this instance last held, until it gives the lease back: a lease that lapsed while
   * this instance was too busy to renew it in time is taken back with the same epoch when
   * nobody led since (lease.lua), instead of a new epoch that made the leader stop everything
   * and start again (twice in a 2,000-node placement burst).
   */
  private held = 0;

  /** Acquires or renews; returns this instance's epoch, or 0 when another instance leads. */
  async tryAcquire(): Promise<number> {
    const epoch = Number(await this.scripts.run('gantryLease', [keys.leader, keys.leaderEpoch, keys.epochCounter], [this.instanceId, this.ttlMs, this.held]));
    this.held = epoch;
    // A fencing epoch is never used before a replica has it, so a failover cannot bring back
    // an older one. Renewals of a confirmed epoch do not wait: losing one only shortens the lease.
    if (epoch > 0 && epoch !== this.confirmedEpoch) {
      await awaitReplicas(this.redis);
      this.confirmedEpoch = epoch;
    }
    return epoch;
  }

  /**
   * Raises the epoch counter to at least `floor` (the highest epoch an agent reports having
   * accepted). Returns this instance's leader epoch afterwards: a new one above the floor when
   * it leads and its epoch was not above it, 0 when it does not lead.
   */
  async raiseFloor(floor: number): Promise<number> {
    const epoch = Number(await this.scripts.run('gantryEpochFloor', [keys.epochCounter, keys.leader, keys.leaderEpoch], [floor, this.instanceId]));
    this.held = epoch;
    if (epoch > 0 && epoch !== this.confirmedEpoch) {
      await awaitReplicas(this.redis);
      this.confirmedEpoch = epoch;
    }
    return epoch;
  }

  async release(): Promise<void> {
    this.held = 0;
    await this.scripts.run('gantryReleaseLease', [keys.leader], [this.instanceId]);
  }
}
