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
  // The comparison reads each job's keys from arrays filled once (a long queue compares each
  // job some 15 times), then the same order as comparing the jobs' fields directly.
  const n = pending.length;
  const priority = new Float64Array(n);
  const recovery = new Uint8Array(n);
  const share = new Float64Array(n);
  const submit = new Float64Array(n);
  const order: number[] = [];
  for (let k = 0; k < n; k++) {
    const j = pending[k]!;
    priority[k] = j.priority;
    recovery[k] = j.recovery === true ? 1 : 0;
    share[k] = deficit ? (deficit.get(j.tenant) ?? 0) : 0;
    submit[k] = j.submitTime;
    order.push(k);
  }
  order.sort((a, b) => {
    const x = pending[a]!;
    const y = pending[b]!;
    return priority[b]! - priority[a]! || recovery[b]! - recovery[a]! || share[b]! - share[a]! || submit[a]! - submit[b]! || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0);
  });
  const out: JobRequest[] = [];
  for (let k = 0; k < n; k++) out.push(pending[order[k]!]!);
  return out;
}
