// Scheduling policy: tenants (fair-share weight, nominal GPU quota, cohort and borrowing
// limit), fair-share decay, preemption and backfill. The shape is plain JSON so the service
// can load it from a YAML or JSON file; parseSchedulingConfig validates such a document and
// reports every problem with its path, e.g.
//   tenants.ml-research.nominalGpus: expected an integer >= 0, got -5
// A hand-written validator (../config-validator.ts, shared with the health config) keeps this
// pure core free of dependencies.
import { PRIORITY_CLASSES, isPriorityClass } from './priority.js';
import { Validator, describe } from '../config-validator.js';

export interface TenantConfig {
  /** Fair-share weight (> 0): the tenant's target share is weight / sum of weights. */
  weight: number;
  /** Guaranteed GPUs. Absent = no quota (the tenant is limited only by the cluster). */
  nominalGpus?: number;
  /** Tenants in the same cohort lend each other their idle nominal quota. */
  cohort?: string;
  /** Most GPUs the tenant may borrow above nominal. Absent = unlimited; 0 = never borrows. */
  borrowingLimitGpus?: number;
}

export type ReclaimPolicy = 'any' | 'lower-priority' | 'never';

/** Failure classes a retry policy may name (JobSpec.retry.retry_on uses the proto enum). */
export const RETRYABLE_CLASSES = ['node-fault', 'infrastructure', 'application', 'gpu-contained', 'hang'] as const;
export type RetryableClass = (typeof RETRYABLE_CLASSES)[number];

/** A pool of idle nodes held back for recovery: `count` nodes of a GPU model, optionally per leaf switch. */
export interface SparePool {
  /** GPU model the pool is for (a node's model must contain it); absent = any model. */
  gpuType?: string;
  /** Hold `count` spares in every leaf switch (true) or across the cluster (false). */
  perLeafSwitch?: boolean;
  count: number;
}

export interface SchedulingConfig {
  tenants: Record<string, TenantConfig>;
  /** Applied to tenants not listed in `tenants`. */
  defaultTenant: TenantConfig;
  fairShare: {
    /** Past usage halves in weight every halfLifeSec seconds. */
    halfLifeSec: number;
  };
  preemption: {
    enabled: boolean;
    /** A job preempted less than this long ago is not preempted again (no loops). */
    windowSec: number;
    /** Whether a tenant within its nominal quota may take back GPUs lent to its cohort. */
    reclaimWithinCohort: ReclaimPolicy;
    /**
     * With quotas, a lower-priority job of *another* tenant that is within its own nominal
     * quota is protected, unless the preemptor's priority is at least this (default critical).
     */
    crossTenantMinPriority: number;
    /** Upper bound on victims per preemptor, to bound the blast radius of one decision. */
    maxVictims: number;
    /**
     * A running job that has used at least this fraction of its time limit is near completion
     * and not preempted: its GPUs come back soon anyway, and stopping it now would throw away
     * the most work for the least gain. 0 = off; jobs without a time limit are never covered.
     */
    nearCompletionFraction: number;
  };
  backfill: {
    enabled: boolean;
  };
  /** Defaults for JobSpec.retry, and how failures are attributed. */
  recovery: {
    maxRecoveries: number;
    backoffInitialMs: number;
    backoffMaxMs: number;
    /** Random extra delay as a fraction of the backoff (0..1). */
    backoffJitter: number;
    retryOn: RetryableClass[];
    /** After the first failure of an attempt, how long to collect other exits and XIDs before blaming. */
    settleMs: number;
    /** How long a node blamed for a node fault is scored down for every job. */
    blamePenaltySec: number;
  };
  /** Hot spares: idle nodes only recovery attempts (and preemptible jobs, if allowed) may use. */
  spares: {
    pools: SparePool[];
    /** Whether jobs of the `preemptible` class may run on spares (they are preempted for recovery). */
    allowPreemptible: boolean;
  };
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends unknown[] ? T[K] : T[K] extends Record<string, unknown> ? DeepPartial<T[K]> : T[K] };

/** What planCycle accepts: a parsed config or any subset of one (defaults fill the rest). */
export type SchedulingConfigInput = DeepPartial<Omit<SchedulingConfig, 'tenants'>> & { tenants?: Record<string, TenantConfig> };

export const DEFAULT_CONFIG: SchedulingConfig = {
  tenants: {},
  defaultTenant: { weight: 1 },
  fairShare: { halfLifeSec: 7 * 24 * 3600 },
  preemption: {
    enabled: true,
    windowSec: 30 * 60,
    reclaimWithinCohort: 'any',
    crossTenantMinPriority: PRIORITY_CLASSES.critical,
    maxVictims: 512,
    nearCompletionFraction: 0,
  },
  backfill: { enabled: true },
  recovery: {
    maxRecoveries: 3,
    backoffInitialMs: 1_000,
    backoffMaxMs: 60_000,
    backoffJitter: 0.2,
    retryOn: ['node-fault', 'infrastructure', 'gpu-contained', 'hang'],
    settleMs: 2_000,
    blamePenaltySec: 3_600,
  },
  spares: { pools: [], allowPreemptible: false },
};

export function resolveConfig(input: SchedulingConfigInput | undefined): SchedulingConfig {
  const d = DEFAULT_CONFIG;
  return {
    tenants: input?.tenants ?? d.tenants,
    defaultTenant: { ...d.defaultTenant, ...stripUndefined(input?.defaultTenant) },
    fairShare: { ...d.fairShare, ...stripUndefined(input?.fairShare) },
    preemption: { ...d.preemption, ...stripUndefined(input?.preemption) },
    backfill: { ...d.backfill, ...stripUndefined(input?.backfill) },
    recovery: { ...d.recovery, ...stripUndefined(input?.recovery) } as SchedulingConfig['recovery'],
    spares: { ...d.spares, ...stripUndefined(input?.spares) } as SchedulingConfig['spares'],
  };
}

export function tenantConfig(config: SchedulingConfig, tenant: string): TenantConfig {
  return config.tenants[tenant] ?? config.defaultTenant;
}

export class SchedulingConfigError extends Error {
  override readonly name = 'SchedulingConfigError';
  constructor(readonly issues: string[]) {
    super(`invalid scheduling config:\n  ${issues.join('\n  ')}`);
  }
}

/** Validates a parsed YAML/JSON document and returns the config with defaults applied. */
export function parseSchedulingConfig(doc: unknown): SchedulingConfig {
  const v = new Validator();
  const issues = v.issues;
  const root = v.object(doc, '', ['tenants', 'defaultTenant', 'fairShare', 'preemption', 'backfill', 'recovery', 'spares']);
  const input: SchedulingConfigInput = {};
  if (root) {
    if (root.tenants !== undefined) {
      const tenants = v.object(root.tenants, 'tenants');
      if (tenants) {
        input.tenants = {};
        for (const [name, t] of Object.entries(tenants)) {
          if (name === '') issues.push('tenants: tenant names must not be empty');
          const parsed = parseTenant(v, t, `tenants.${name}`);
          if (parsed) input.tenants[name] = parsed;
        }
      }
    }
    if (root.defaultTenant !== undefined) {
      const parsed = parseTenant(v, root.defaultTenant, 'defaultTenant');
      if (parsed) input.defaultTenant = parsed;
    }
    if (root.fairShare !== undefined) {
      const fs = v.object(root.fairShare, 'fairShare', ['halfLifeSec']);
      if (fs) input.fairShare = { halfLifeSec: v.number(fs.halfLifeSec, 'fairShare.halfLifeSec', { min: 1 }) };
    }
    if (root.preemption !== undefined) {
      const p = v.object(root.preemption, 'preemption', ['enabled', 'windowSec', 'reclaimWithinCohort', 'crossTenantMinPriority', 'maxVictims', 'nearCompletionFraction']);
      if (p) {
        input.preemption = {
          enabled: v.boolean(p.enabled, 'preemption.enabled'),
          windowSec: v.number(p.windowSec, 'preemption.windowSec', { min: 0 }),
          reclaimWithinCohort: v.oneOf(p.reclaimWithinCohort, 'preemption.reclaimWithinCohort', ['any', 'lower-priority', 'never'] as const),
          crossTenantMinPriority: parsePriority(v, p.crossTenantMinPriority, 'preemption.crossTenantMinPriority'),
          maxVictims: v.number(p.maxVictims, 'preemption.maxVictims', { min: 1, integer: true }),
          nearCompletionFraction: v.number(p.nearCompletionFraction, 'preemption.nearCompletionFraction', { min: 0, max: 1 }),
        };
      }
    }
    if (root.backfill !== undefined) {
      const b = v.object(root.backfill, 'backfill', ['enabled']);
      if (b) input.backfill = { enabled: v.boolean(b.enabled, 'backfill.enabled') };
    }
    if (root.recovery !== undefined) input.recovery = parseRecovery(v, root.recovery);
    if (root.spares !== undefined) input.spares = parseSpares(v, root.spares);
    // Every tenant in a cohort must have a nominal quota: the cohort lends exactly the sum
    // of its members' nominal quotas, so a member without one would lend nothing and borrow
    // without bound.
    for (const [name, t] of Object.entries(input.tenants ?? {})) {
      if (t.cohort !== undefined && t.nominalGpus === undefined) {
        issues.push(`tenants.${name}: a tenant in cohort "${t.cohort}" needs nominalGpus`);
      }
    }
  }
  if (issues.length > 0) throw new SchedulingConfigError(issues);
  return resolveConfig(input);
}

function parseTenant(v: Validator, raw: unknown, path: string): TenantConfig | undefined {
  const t = v.object(raw, path, ['weight', 'nominalGpus', 'cohort', 'borrowingLimitGpus']);
  if (!t) return undefined;
  const out: TenantConfig = { weight: v.number(t.weight, `${path}.weight`, { above: 0 }) ?? 1 };
  const nominal = v.number(t.nominalGpus, `${path}.nominalGpus`, { min: 0, integer: true });
  if (nominal !== undefined) out.nominalGpus = nominal;
  const cohort = v.string(t.cohort, `${path}.cohort`);
  if (cohort !== undefined) out.cohort = cohort;
  const limit = v.number(t.borrowingLimitGpus, `${path}.borrowingLimitGpus`, { min: 0, integer: true });
  if (limit !== undefined) out.borrowingLimitGpus = limit;
  return out;
}

function parseRecovery(v: Validator, raw: unknown): SchedulingConfigInput['recovery'] {
  const r = v.object(raw, 'recovery', ['maxRecoveries', 'backoffInitialMs', 'backoffMaxMs', 'backoffJitter', 'retryOn', 'settleMs', 'blamePenaltySec']);
  if (!r) return undefined;
  let retryOn: RetryableClass[] | undefined;
  if (r.retryOn !== undefined) {
    if (!Array.isArray(r.retryOn)) v.issues.push(`recovery.retryOn: expected a list of ${RETRYABLE_CLASSES.join(', ')}, got ${describe(r.retryOn)}`);
    else retryOn = r.retryOn.map((c, i) => v.oneOf(c, `recovery.retryOn[${i}]`, RETRYABLE_CLASSES)).filter((c): c is RetryableClass => c !== undefined);
  }
  const out = {
    maxRecoveries: v.number(r.maxRecoveries, 'recovery.maxRecoveries', { min: 0, integer: true }),
    backoffInitialMs: v.number(r.backoffInitialMs, 'recovery.backoffInitialMs', { min: 0, integer: true }),
    backoffMaxMs: v.number(r.backoffMaxMs, 'recovery.backoffMaxMs', { min: 0, integer: true }),
    backoffJitter: v.number(r.backoffJitter, 'recovery.backoffJitter', { min: 0 }),
    retryOn,
    settleMs: v.number(r.settleMs, 'recovery.settleMs', { min: 0, integer: true }),
    blamePenaltySec: v.number(r.blamePenaltySec, 'recovery.blamePenaltySec', { min: 0 }),
  };
  if (out.backoffJitter !== undefined && out.backoffJitter > 1) v.issues.push(`recovery.backoffJitter: expected a number between 0 and 1, got ${out.backoffJitter}`);
  return out;
}

function parseSpares(v: Validator, raw: unknown): SchedulingConfigInput['spares'] {
  const s = v.object(raw, 'spares', ['pools', 'allowPreemptible']);
  if (!s) return undefined;
  let pools: SparePool[] | undefined;
  if (s.pools !== undefined) {
    if (!Array.isArray(s.pools)) v.issues.push(`spares.pools: expected a list, got ${describe(s.pools)}`);
    else {
      pools = [];
      s.pools.forEach((p, i) => {
        const o = v.object(p, `spares.pools[${i}]`, ['gpuType', 'perLeafSwitch', 'count']);
        if (!o) return;
        const count = v.number(o.count, `spares.pools[${i}].count`, { min: 0, integer: true, required: true });
        const pool: SparePool = { count: count ?? 0 };
        const gpuType = v.string(o.gpuType, `spares.pools[${i}].gpuType`);
        if (gpuType !== undefined) pool.gpuType = gpuType;
        const perLeaf = v.boolean(o.perLeafSwitch, `spares.pools[${i}].perLeafSwitch`);
        if (perLeaf !== undefined) pool.perLeafSwitch = perLeaf;
        pools!.push(pool);
      });
    }
  }
  return { pools, allowPreemptible: v.boolean(s.allowPreemptible, 'spares.allowPreemptible') };
}

function parsePriority(v: Validator, raw: unknown, path: string): number | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw === 'string') {
    if (isPriorityClass(raw)) return PRIORITY_CLASSES[raw];
    v.issues.push(`${path}: expected a priority class (${Object.keys(PRIORITY_CLASSES).join(', ')}) or a number, got "${raw}"`);
    return undefined;
  }
  return v.number(raw, path, {});
}

function stripUndefined<T>(value: T): T {
  if (Array.isArray(value) || value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = stripUndefined(v);
  return out as T;
}
