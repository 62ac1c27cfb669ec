// Scheduler state that is not a job or a node: the scheduling policy, per-tenant usage for
// fair share, and the last pass's explanations of waiting jobs. Stored as JSON strings; the
// scheduler owns their shape and validation.
import type { Redis } from 'ioredis';
import { keys } from './keys.js';

export class SchedulingStateStore {
  constructor(private readonly redis: Redis) {}

  async configJson(): Promise<string | undefined> {
    return (await this.redis.get(keys.schedulingConfig)) ?? undefined;
  }

  async setConfigJson(json: string): Promise<void> {
    await this.redis.set(keys.schedulingConfig, json);
  }

  /** Seeds the policy (from the scheduler's config file) only when none is stored yet. */
  async seedConfigJson(json: string): Promise<boolean> {
    return (await this.redis.set(keys.schedulingConfig, json, 'NX')) === 'OK';
  }

  async usage(): Promise<Record<string, string>> {
    return this.redis.hgetall(keys.usage);
  }

  async setUsage(records: Record<string, string>): Promise<void> {
    if (Object.keys(records).length > 0) await this.redis.hset(keys.usage, records);
  }

  async explanation(jobId: string): Promise<string | undefined> {
    return (await this.redis.hget(keys.explain, jobId)) ?? undefined;
  }

  /** Writes changed explanations and drops those of jobs no longer waiting, in one round trip. */
  async updateExplanations(changed: Record<string, string>, removed: string[]): Promise<void> {
    const m = this.redis.multi();
    if (Object.keys(changed).length > 0) m.hset(keys.explain, changed);
    if (removed.length > 0) m.hdel(keys.explain, ...removed);
    await m.exec();
  }

  async explainedJobIds(): Promise<string[]> {
    return this.redis.hkeys(keys.explain);
  }
}
