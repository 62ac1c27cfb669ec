// Fair share: a tenant's recent GPU usage, exponentially decayed so last week counts more
// than last month, compared with its weight. Pure functions over timestamps: the service
// keeps a UsageRecord per tenant (in Redis) and calls accrueUsage each cycle.

export interface UsageRecord {
  /** Decayed GPU-seconds as of `at`. */
  gpuSeconds: number;
  /** Milliseconds since epoch. */
  at: number;
}

/** Decay factor for `elapsedSec` with the given half-life. */
export function decayFactor(elapsedSec: number, halfLifeSec: number): number {
  return elapsedSec <= 0 ? 1 : Math.pow(2, -elapsedSec / halfLifeSec);
}

/** A usage value recorded at `from` (ms), seen from `to` (ms). */
export function decayUsage(gpuSeconds: number, fromMs: number, toMs: number, halfLifeSec: number): number {
  return gpuSeconds * decayFactor((toMs - fromMs) / 1000, halfLifeSec);
}

/**
 * Adds `gpus` held constantly over [record.at, now] to a record, decaying as it goes:
 * the integral of gpus * 2^(-(now - t)/h) dt = gpus * h/ln2 * (1 - 2^(-elapsed/h)).
 * Exact for a constant allocation, so calling it every cycle with the current allocation
 * gives the same answer however often it is called.
 */
export function accrue(record: UsageRecord | undefined, gpus: number, nowMs: number, halfLifeSec: number): UsageRecord {
  if (!record) return { gpuSeconds: 0, at: nowMs };
  const elapsed = (nowMs - record.at) / 1000;
  if (elapsed <= 0) return record;
  const f = decayFactor(elapsed, halfLifeSec);
  const added = gpus * (halfLifeSec / Math.LN2) * (1 - f);
  return { gpuSeconds: record.gpuSeconds * f + added, at: nowMs };
}

/** accrue() for every tenant: `allocations` is GPUs held per tenant since the records' time. */
export function accrueUsage(
  records: Readonly<Record<string, UsageRecord>>,
  allocations: Readonly<Record<string, number>>,
  nowMs: number,
  halfLifeSec: number,
): Record<string, UsageRecord> {
  const out: Record<string, UsageRecord> = {};
  for (const tenant of new Set([...Object.keys(records), ...Object.keys(allocations)])) {
    out[tenant] = accrue(records[tenant] ?? { gpuSeconds: 0, at: nowMs }, allocations[tenant] ?? 0, nowMs, halfLifeSec);
  }
  return out;
}

/** GPUs held per tenant by running jobs (the `allocations` argument of accrueUsage). */
export function allocationsOf(running: readonly { tenant: string; ranks: readonly { gpus: readonly number[] }[] }[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const job of running) {
    let gpus = 0;
    for (const r of job.ranks) gpus += r.gpus.length;
    out[job.tenant] = (out[job.tenant] ?? 0) + gpus;
  }
  return out;
}

/** Decayed GPU-seconds per tenant at `nowMs`, ready for CycleOptions.usage. */
export function usageAt(records: Readonly<Record<string, UsageRecord>>, nowMs: number, halfLifeSec: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [tenant, r] of Object.entries(records)) out[tenant] = decayUsage(r.gpuSeconds, r.at, nowMs, halfLifeSec);
  return out;
}

/**
 * Fair-share deficit per tenant: target share (weight / total weight) minus actual share of
 * decayed usage. Positive = under-served (goes first). Computed over the given tenants only,
 * so a tenant with no pending work does not distort the others.
 */
export function fairShareDeficits(
  tenants: Iterable<string>,
  usage: Readonly<Record<string, number>>,
  weightOf: (tenant: string) => number,
): Map<string, number> {
  const list = [...new Set(tenants)];
  let totalWeight = 0;
  let totalUsage = 0;
  for (const t of list) {
    totalWeight += weightOf(t);
    totalUsage += Math.max(0, usage[t] ?? 0);
  }
  const out = new Map<string, number>();
  for (const t of list) {
    const target = totalWeight > 0 ? weightOf(t) / totalWeight : 0;
    const actual = totalUsage > 0 ? Math.max(0, usage[t] ?? 0) / totalUsage : 0;
    out.set(t, target - actual);
  }
  return out;
}
