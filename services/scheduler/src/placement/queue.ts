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
    // The distinct tenants in order of first mention (pending, running, usage), without
    // copying every job's tenant into one long array first.
    const tenants = new Set<string>();
    for (const j of pending) tenants.add(j.tenant);
    for (const j of ctx.running ?? []) tenants.add(j.tenant);
    for (const t of Object.keys(ctx.usage)) tenants.add(t);
    deficit = fairShareDeficits(tenants, ctx.usage, (t) => tenantConfig(ctx.config, t).weight);
  }
  // The comparison reads each job's keys from arrays filled once (a long queue compares each
  // job some 15 times): the same order as comparing the jobs' fields directly. It answers
  // with the sign only (all a sort reads), so no fractional difference is boxed per call.
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
    // `if (d)` passes over 0 and NaN, as `||` did.
    let d = priority[b]! - priority[a]!;
    if (d) return d > 0 ? 1 : -1;
    d = recovery[b]! - recovery[a]!;
    if (d) return d;
    d = share[b]! - share[a]!;
    if (d) return d > 0 ? 1 : -1;
    d = submit[a]! - submit[b]!;
    if (d) return d > 0 ? 1 : -1;
    const x = pending[a]!.id;
    const y = pending[b]!.id;
    return x < y ? -1 : x > y ? 1 : 0;
  });
  return order.map((k) => pending[k]!);
}
