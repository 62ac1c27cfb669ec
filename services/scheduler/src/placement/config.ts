// Scheduling policy: tenants (fair-share weight, nominal GPU quota, cohort and borrowing
// limit), fair-share decay, preemption and backfill. The shape is plain JSON so the service
// can load it from a YAML or JSON file; parseSchedulingConfig validates such a document and
// reports every problem with its path, e.g.
//   tenants.ml-research.nominalGpus: expected an integer >= 0, got -5
// A hand-written validator keeps this pure core free of dependencies.
import { PRIORITY_CLASSES, isPriorityClass } from './priority.js';

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
  };
  backfill: {
    enabled: boolean;
  };
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends Record<string, unknown> ? DeepPartial<T[K]> : T[K] };

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
  },
  backfill: { enabled: true },
};

export function resolveConfig(input: SchedulingConfigInput | undefined): SchedulingConfig {
  const d = DEFAULT_CONFIG;
  return {
    tenants: input?.tenants ?? d.tenants,
    defaultTenant: { ...d.defaultTenant, ...stripUndefined(input?.defaultTenant) },
    fairShare: { ...d.fairShare, ...stripUndefined(input?.fairShare) },
    preemption: { ...d.preemption, ...stripUndefined(input?.preemption) },
    backfill: { ...d.backfill, ...stripUndefined(input?.backfill) },
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
  const issues: string[] = [];
  const v = new Validator(issues);
  const root = v.object(doc, '', ['tenants', 'defaultTenant', 'fairShare', 'preemption', 'backfill']);
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
      if (fs) input.fairShare = { halfLifeSec: v.number(fs.halfLifeSec, 'fairShare.halfLifeSec', { min: 1, optional: true }) };
    }
    if (root.preemption !== undefined) {
      const p = v.object(root.preemption, 'preemption', ['enabled', 'windowSec', 'reclaimWithinCohort', 'crossTenantMinPriority', 'maxVictims']);
      if (p) {
        input.preemption = {
          enabled: v.boolean(p.enabled, 'preemption.enabled'),
          windowSec: v.number(p.windowSec, 'preemption.windowSec', { min: 0, optional: true }),
          reclaimWithinCohort: v.oneOf(p.reclaimWithinCohort, 'preemption.reclaimWithinCohort', ['any', 'lower-priority', 'never'] as const),
          crossTenantMinPriority: parsePriority(v, p.crossTenantMinPriority, 'preemption.crossTenantMinPriority'),
          maxVictims: v.number(p.maxVictims, 'preemption.maxVictims', { min: 1, integer: true, optional: true }),
        };
      }
    }
    if (root.backfill !== undefined) {
      const b = v.object(root.backfill, 'backfill', ['enabled']);
      if (b) input.backfill = { enabled: v.boolean(b.enabled, 'backfill.enabled') };
    }
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
  const out: TenantConfig = { weight: v.number(t.weight, `${path}.weight`, { min: Number.MIN_VALUE, optional: true }) ?? 1 };
  const nominal = v.number(t.nominalGpus, `${path}.nominalGpus`, { min: 0, integer: true, optional: true });
  if (nominal !== undefined) out.nominalGpus = nominal;
  const cohort = v.string(t.cohort, `${path}.cohort`);
  if (cohort !== undefined) out.cohort = cohort;
  const limit = v.number(t.borrowingLimitGpus, `${path}.borrowingLimitGpus`, { min: 0, integer: true, optional: true });
  if (limit !== undefined) out.borrowingLimitGpus = limit;
  return out;
}

function parsePriority(v: Validator, raw: unknown, path: string): number | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw === 'string') {
    if (isPriorityClass(raw)) return PRIORITY_CLASSES[raw];
    v.issues.push(`${path}: expected a priority class (${Object.keys(PRIORITY_CLASSES).join(', ')}) or a number, got "${raw}"`);
    return undefined;
  }
  return v.number(raw, path, { optional: true });
}

function stripUndefined<T>(value: T): T {
  if (Array.isArray(value) || value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = stripUndefined(v);
  return out as T;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `"${value}"`;
  if (typeof value === 'object') return 'an object';
  return String(value);
}

/** Collects issues instead of throwing on the first, so a config file is fixed in one pass. */
class Validator {
  constructor(readonly issues: string[]) {}

  object(value: unknown, path: string, known?: string[]): Record<string, unknown> | undefined {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      this.issues.push(`${path || '(root)'}: expected an object, got ${describe(value)}`);
      return undefined;
    }
    if (known) {
      for (const key of Object.keys(value)) {
        if (!known.includes(key)) this.issues.push(`${path ? `${path}.` : ''}${key}: unknown field (expected one of ${known.join(', ')})`);
      }
    }
    return value as Record<string, unknown>;
  }

  number(value: unknown, path: string, opts: { min?: number; integer?: boolean; optional?: boolean }): number | undefined {
    if (value === undefined && opts.optional) return undefined;
    const what = `${opts.integer ? 'an integer' : 'a number'}${opts.min !== undefined ? (opts.min === Number.MIN_VALUE ? ' > 0' : ` >= ${opts.min}`) : ''}`;
    if (typeof value !== 'number' || !Number.isFinite(value) || (opts.integer && !Number.isInteger(value)) || (opts.min !== undefined && value < opts.min)) {
      this.issues.push(`${path}: expected ${what}, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }

  boolean(value: unknown, path: string): boolean | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== 'boolean') {
      this.issues.push(`${path}: expected true or false, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }

  string(value: unknown, path: string): string | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || value === '') {
      this.issues.push(`${path}: expected a non-empty string, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }

  oneOf<T extends string>(value: unknown, path: string, allowed: readonly T[]): T | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
      this.issues.push(`${path}: expected one of ${allowed.join(', ')}, got ${describe(value)}`);
      return undefined;
    }
    return value as T;
  }
}
