// Queue order: priority class, then recovery attempts (a job that was running is coming back
// to GPUs it just left; the jobs behind it must not take them first), then the tenant's
// fair-share deficit (the most under-served tenant first), then submit time, then id (so the
// order is total and deterministic).
import { tenantConfig, type SchedulingConfig } from './config.js';
import { fairShareDeficits } from './fair-share.js';
import type { JobRequest, RunningJob } from './types.js';

export interface QueueContext {
  config: SchedulingConfig;
  /** Decayed GPU-seconds per tenant. */
  usage: Readonly<Record<string, number>>;
  running?: readonly RunningJob[];
}

export function orderQueue(pending: readonly JobRequest[], ctx?: QueueContext): JobRequest[] {
  let deficit: Map<string, number> | undefined;
  if (ctx) {
    const tenants = [...pending.map((j) => j.tenant), ...(ctx.running ?? []).map((j) => j.tenant), ...Object.keys(ctx.usage)];
    deficit = fairShareDeficits(tenants, ctx.usage, (t) => tenantConfig(ctx.config, t).weight);
  }
  return [...pending].sort(
    (a, b) =>
      b.priority - a.priority ||
      Number(b.recovery === true) - Number(a.recovery === true) ||
      (deficit ? (deficit.get(b.tenant) ?? 0) - (deficit.get(a.tenant) ?? 0) : 0) ||
      a.submitTime - b.submitTime ||
      (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  );
}
