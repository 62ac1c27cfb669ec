// Leader election over the Redis lease. Only the leader schedules, dispatches, watches
// heartbeats and relays the outbox; a standby keeps trying and takes over when the lease
// lapses. Losing the lease (or failing to renew it in time) stops leader work at once.
import type { LeaderLease } from '@gantry/store';
import type { Logger } from '@gantry/service-kit';
import { MAX_EPOCH_JUMP } from '@gantry/bus';

export interface LeaderCallbacks {
  onElected(epoch: number): Promise<void> | void;
  onDeposed(): Promise<void> | void;
}

export class LeaderElector {
  private timer: NodeJS.Timeout | undefined;
  private current = 0;
  private renewedAt = 0;
  private stopped = false;
  private ticking = false;
  /** The highest epoch an agent reported having accepted, not yet applied as the floor. */
  private floor = 0;

  constructor(private readonly lease: LeaderLease, private readonly log: Logger, private readonly cb: LeaderCallbacks) {}

  /** The epoch while this instance leads and its lease is fresh; 0 otherwise. */
  get epoch(): number {
    // A renewal older than the TTL means another instance may already lead.
    return this.current !== 0 && Date.now() - this.renewedAt < this.lease.ttlMs ? this.current : 0;
  }

  start(): void {
    void this.tick();
  }

  /**
   * An agent has accepted epochs up to `epoch`. When that is not below this leader's own, the
   * epoch counter went back (a control plane restored from an older backup): the agents refuse
   * every command, so the floor is raised and this leader takes a new epoch above it at once.
   */
  agentEpoch(epoch: number): boolean {
    if (this.current === 0 || epoch <= this.current || epoch <= this.floor) return false;
    if (epoch > this.current + MAX_EPOCH_JUMP) {
      this.log.warn({ reported: epoch, epoch: this.current }, 'an agent reports an implausible fencing epoch; ignored');
      return false;
    }
    this.log.warn({ reported: epoch, epoch: this.current }, 'an agent has accepted a fencing epoch above this leader\'s (restored control plane?): raising the epoch floor');
    this.floor = epoch;
    if (!this.ticking && !this.stopped) {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.tick(), 0);
    }
    return true;
  }

  private schedule(): void {
    if (!this.stopped) this.timer = setTimeout(() => void this.tick(), Math.max(100, Math.floor(this.lease.ttlMs / 3)));
  }

  private async tick(): Promise<void> {
    this.ticking = true;
    const started = Date.now();
    let epoch = 0;
    try {
      if (this.floor > 0) {
        await this.lease.raiseFloor(this.floor);
        this.floor = 0;
      }
      epoch = await this.lease.tryAcquire();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'lease renewal failed');
      epoch = this.epoch === 0 ? 0 : this.current;
      if (Date.now() - this.renewedAt >= this.lease.ttlMs) epoch = 0;
    }
    if (epoch > 0 && epoch === this.current && this.renewedAt > 0 && started - this.renewedAt >= this.lease.ttlMs) {
      // Kept (lease.lua): nobody led meanwhile. Said, since a standby would have taken over.
      this.log.warn({ epoch, lateMs: started - this.renewedAt - this.lease.ttlMs }, 'lease lapsed before its renewal (event loop busy); taken back with the same epoch');
    }
    if (epoch > 0) this.renewedAt = started;
    try {
      if (epoch !== this.current) {
        const was = this.current;
        this.current = epoch;
        if (was !== 0) {
          this.log.warn({ epoch: was }, 'lost leadership');
          await this.cb.onDeposed();
        }
        if (epoch !== 0) {
          this.log.info({ epoch }, 'became leader');
          await this.cb.onElected(epoch);
        }
      }
    } catch (err) {
      // Half-started leadership (e.g. JetStream briefly unavailable) is worse than none: undo
      // it, give the lease back so a healthy replica can take it, and campaign again next tick.
      this.log.error({ err: (err as Error).message }, 'leadership change failed; stepping down');
      this.current = 0;
      await Promise.resolve(this.cb.onDeposed()).catch(() => undefined);
      await this.lease.release().catch(() => undefined);
    }
    this.ticking = false;
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.current !== 0) {
      this.current = 0;
      await this.cb.onDeposed();
      await this.lease.release().catch(() => undefined);
    }
  }
}
