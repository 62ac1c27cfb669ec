// Commits that matter wait for a replica. Redis replicates asynchronously: a write the primary
// answered can be lost if the primary dies before its replica got it, and Sentinel then
// promotes a replica without it. For Gantry that would be a placement that ranks already run
// under (placed again: a rank run twice), a rank exit, a released GPU, a committed checkpoint or
// a fencing epoch going backwards. So after those commits the store sends WAIT and goes on
// only once `replicas` replicas have everything written so far on this connection; otherwise
// the commit fails with ReplicationError (it may have been applied on the primary; every commit
// is a compare-and-set, so the caller's retry finds out which).
//
// The setting lives on the connection under a global symbol (set by service-kit's
// connectRedis from REDIS_WAIT_REPLICAS / REDIS_WAIT_TIMEOUT_MS), so every store built on that
// connection follows it without plumbing.
import type { Redis } from 'ioredis';

export const REPLICA_WAIT = Symbol.for('gantry.redis.replicaWait');

export interface ReplicaWait {
  replicas: number;
  timeoutMs: number;
}

export class ReplicationError extends Error {
  override name = 'ReplicationError';
  constructor(readonly wanted: number, readonly got: number, readonly timeoutMs: number) {
    super(`write not confirmed by ${wanted} Redis replica(s) within ${timeoutMs} ms (${got} confirmed); it will be retried`);
  }
}

export function replicaWaitOf(redis: Redis): ReplicaWait | undefined {
  const w = (redis as unknown as Record<symbol, ReplicaWait | undefined>)[REPLICA_WAIT];
  return w && w.replicas > 0 ? w : undefined;
}

/** Counters for metrics and tests: waits done, and the ones that fell short. */
export const replicationStats = { waits: 0, shortfalls: 0, waitMsTotal: 0 };

/** Waits until the configured replicas have this connection's writes; no-op when none are configured. */
export async function awaitReplicas(redis: Redis): Promise<void> {
  const w = replicaWaitOf(redis);
  if (!w) return;
  const started = Date.now();
  const got = await redis.wait(w.replicas, w.timeoutMs);
  replicationStats.waits++;
  replicationStats.waitMsTotal += Date.now() - started;
  if (got < w.replicas) {
    replicationStats.shortfalls++;
    throw new ReplicationError(w.replicas, got, w.timeoutMs);
  }
}
