// Which Gantry processes run, as each announces itself every ANNOUNCE_MS (service, instance,
// version, start time): what `gantry admin status` lists. Entries not renewed for an hour are
// dropped, so a replaced fleet does not grow the hash.
import type { Redis } from 'ioredis';
import { keys } from './keys.js';

export const ANNOUNCE_MS = 10_000;
const FORGET_MS = 3_600_000;

export interface InstanceRecord {
  service: string;
  instanceId: string;
  version: string;
  startedMs: number;
  seenMs: number;
}

export class InstanceRegistry {
  constructor(private readonly redis: Redis) {}

  async announce(r: Omit<InstanceRecord, 'seenMs'>, nowMs = Date.now()): Promise<void> {
    await this.redis.hset(keys.instances, `${r.service}/${r.instanceId}`, JSON.stringify({ ...r, seenMs: nowMs }));
  }

  async remove(service: string, instanceId: string): Promise<void> {
    await this.redis.hdel(keys.instances, `${service}/${instanceId}`);
  }

  /** Every instance heard from within the last hour (older entries are deleted), by service and id. */
  async list(nowMs = Date.now()): Promise<InstanceRecord[]> {
    const all = await this.redis.hgetall(keys.instances);
    const out: InstanceRecord[] = [];
    const forget: string[] = [];
    for (const [field, raw] of Object.entries(all)) {
      let r: InstanceRecord;
      try {
        r = JSON.parse(raw) as InstanceRecord;
      } catch {
        forget.push(field);
        continue;
      }
      if (nowMs - r.seenMs > FORGET_MS) forget.push(field);
      else out.push(r);
    }
    if (forget.length > 0) await this.redis.hdel(keys.instances, ...forget);
    return out.sort((a, b) => a.service.localeCompare(b.service) || a.instanceId.localeCompare(b.instanceId));
  }
}

/** Announces `r` now and every ANNOUNCE_MS until the returned stop is called (which withdraws it). */
export function announceInstance(redis: Redis, r: Omit<InstanceRecord, 'seenMs'>, onError: (err: Error) => void): () => Promise<void> {
  const registry = new InstanceRegistry(redis);
  const beat = () => void registry.announce(r).catch(onError);
  beat();
  const timer = setInterval(beat, ANNOUNCE_MS);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await registry.remove(r.service, r.instanceId).catch(onError);
  };
}
