// Tenant quotas with cohort borrowing (the Kueue model). Each tenant has a nominal GPU quota;
// tenants in a cohort lend each other whatever part of their nominal quota they do not use,
// up to the borrower's borrowing limit. Borrowed GPUs are reclaimable: when the lender needs
// its nominal quota back, preemption takes them (see preemption.ts).
import { tenantConfig, type SchedulingConfig } from './config.js';
import type { RunningJob } from './types.js';

export type Admission =
  | { ok: true; /** GPUs of this job above the tenant's nominal quota. */ borrowed: number }
  | { ok: false; message: string };

/** Members of each cohort among the listed tenants, per config (a queue asks per job). */
const cohortMembers = new WeakMap<SchedulingConfig, Map<string, string[]>>();

function membersOf(config: SchedulingConfig, cohort: string): string[] {
  let byCohort = cohortMembers.get(config);
  if (!byCohort) cohortMembers.set(config, (byCohort = new Map()));
  let members = byCohort.get(cohort);
  if (!members) byCohort.set(cohort, (members = Object.keys(config.tenants).filter((t) => config.tenants[t]!.cohort === cohort)));
  return members;
}

const WITHIN_QUOTA: Admission = Object.freeze({ ok: true as const, borrowed: 0 });

export class QuotaLedger {
  private readonly used: Map<string, number>;
  /** describe() per tenant until usage next changes: every pending job of a tenant shows it. */
  private readonly described = new Map<string, string>();
  /**
   * Refusals per tenant and GPU count until usage next changes: a long queue asks the same
   * question thousands of times, and each pending job keeps its refusal's message.
   */
  private readonly refused = new Map<string, Map<number, Admission>>();
  /** cohortBorrowing per cohort until usage next changes. */
  private readonly borrowing = new Map<string, boolean>();

  constructor(
    private readonly config: SchedulingConfig,
    used?: Iterable<[string, number]>,
  ) {
    this.used = new Map(used);
  }

  /** Usage from running jobs; terminating ones are on their way out and no longer count. */
  static fromRunning(config: SchedulingConfig, running: readonly RunningJob[]): QuotaLedger {
    const ledger = new QuotaLedger(config);
    for (const job of running) if (!job.terminating) ledger.charge(job.tenant, gpusOf(job));
    return ledger;
  }

  clone(): QuotaLedger {
    return new QuotaLedger(this.config, this.used);
  }

  usedBy(tenant: string): number {
    return this.used.get(tenant) ?? 0;
  }

  nominal(tenant: string): number {
    return tenantConfig(this.config, tenant).nominalGpus ?? Infinity;
  }

  /** Above its nominal quota, i.e. running on GPUs lent by its cohort. */
  isBorrowing(tenant: string): boolean {
    return this.usedBy(tenant) > this.nominal(tenant);
  }

  cohortOf(tenant: string): string | undefined {
    return tenantConfig(this.config, tenant).cohort;
  }

  /** Whether some tenant of the cohort runs above its nominal quota (so there is something to reclaim). */
  cohortBorrowing(cohort: string | undefined): boolean {
    if (cohort === undefined) return false;
    // Asked for most jobs of a long queue: kept until usage next changes.
    let known = this.borrowing.get(cohort);
    if (known === undefined) {
      known = false;
      for (const t of this.used.keys()) {
        if (this.cohortOf(t) === cohort && this.isBorrowing(t)) {
          known = true;
          break;
        }
      }
      this.borrowing.set(cohort, known);
    }
    return known;
  }

  charge(tenant: string, gpus: number): void {
    this.used.set(tenant, this.usedBy(tenant) + gpus);
    this.forget();
  }

  release(tenant: string, gpus: number): void {
    this.used.set(tenant, Math.max(0, this.usedBy(tenant) - gpus));
    this.forget();
  }

  /** Drops what was derived from usage (clearing an empty Map would still allocate its new table). */
  private forget(): void {
    if (this.described.size > 0) this.described.clear();
    if (this.refused.size > 0) this.refused.clear();
    if (this.borrowing.size > 0) this.borrowing.clear();
  }

  /** Whether the tenant may take `gpus` more GPUs now. Results are shared: callers only read them. */
  admit(tenant: string, gpus: number): Admission {
    const cfg = tenantConfig(this.config, tenant);
    const used = this.usedBy(tenant);
    if (cfg.nominalGpus === undefined) return WITHIN_QUOTA;
    if (used + gpus <= cfg.nominalGpus) return WITHIN_QUOTA;
    let byGpus = this.refused.get(tenant);
    const known = byGpus?.get(gpus);
    if (known) return known;
    const admission = this.admitAbove(tenant, gpus, cfg.nominalGpus, used);
    if (!admission.ok) {
      if (!byGpus) this.refused.set(tenant, (byGpus = new Map()));
      byGpus.set(gpus, admission);
    }
    return admission;
  }

  private admitAbove(tenant: string, gpus: number, nominal: number, used: number): Admission {
    const cfg = tenantConfig(this.config, tenant);
    const borrowedAfter = used + gpus - nominal;
    const borrowedBefore = Math.max(0, used - nominal);
    const newlyBorrowed = borrowedAfter - borrowedBefore;
    if (cfg.cohort === undefined || cfg.borrowingLimitGpus === 0) return { ok: false, message: this.describe(tenant) };
    if (cfg.borrowingLimitGpus !== undefined && borrowedAfter > cfg.borrowingLimitGpus) {
      return { ok: false, message: `${this.describe(tenant)}; needs ${gpus}, would borrow ${borrowedAfter} > limit ${cfg.borrowingLimitGpus}` };
    }
    const cohort = this.cohortUsage(cfg.cohort);
    if (cohort.used + gpus > cohort.nominal) {
      return { ok: false, message: `${this.describe(tenant)}; cohort ${cfg.cohort} at ${cohort.used}/${cohort.nominal} GPUs, needs ${gpus}` };
    }
    return { ok: true, borrowed: newlyBorrowed };
  }

  /** The quota state users see, e.g. "tenant ml at 512/512 GPUs nominal, borrowing disabled". */
  describe(tenant: string): string {
    let text = this.described.get(tenant);
    if (text === undefined) this.described.set(tenant, (text = this.describeNow(tenant)));
    return text;
  }

  private describeNow(tenant: string): string {
    const cfg = tenantConfig(this.config, tenant);
    const used = this.usedBy(tenant);
    if (cfg.nominalGpus === undefined) return `tenant ${tenant} at ${used} GPUs, no quota`;
    const head = `tenant ${tenant} at ${used}/${cfg.nominalGpus} GPUs nominal`;
    if (cfg.cohort === undefined) return `${head}, borrowing disabled (no cohort)`;
    if (cfg.borrowingLimitGpus === 0) return `${head}, borrowing disabled`;
    const borrowed = Math.max(0, used - cfg.nominalGpus);
    const limit = cfg.borrowingLimitGpus === undefined ? 'no limit' : `limit ${cfg.borrowingLimitGpus}`;
    const cohort = this.cohortUsage(cfg.cohort);
    return `${head}, borrowing ${borrowed} (${limit}) from cohort ${cfg.cohort} at ${cohort.used}/${cohort.nominal}`;
  }

  /** Sum of members' usage and of their nominal quotas (what the cohort can lend). */
  cohortUsage(cohort: string): { used: number; nominal: number } {
    let used = 0;
    let nominal = 0;
    for (const t of membersOf(this.config, cohort)) {
      used += this.usedBy(t);
      nominal += this.config.tenants[t]!.nominalGpus ?? 0;
    }
    // Tenants that only match defaultTenant share its cohort too, each with its own quota.
    if (this.config.defaultTenant.cohort === cohort) {
      for (const [t, u] of this.used) {
        if (Object.hasOwn(this.config.tenants, t)) continue;
        used += u;
        nominal += this.config.defaultTenant.nominalGpus ?? 0;
      }
    }
    return { used, nominal };
  }
}

export function gpusOf(job: { ranks: readonly { gpus: readonly number[] }[] }): number {
  let n = 0;
  for (const r of job.ranks) n += r.gpus.length;
  return n;
}
