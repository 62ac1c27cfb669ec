// Preemption: a job that cannot fit may take GPUs from running jobs it outranks, or reclaim
// quota its tenant lent to the cohort. Victims are chosen to lose the least work: lowest
// priority first, then the least time since their last committed checkpoint (or start),
// then the fewest GPUs; and only as many as the gang needs (respecting its topology).
// A job preempted within the configured window is left alone, so two jobs cannot keep
// preempting each other; with `nearCompletionFraction`, so is a job that has used that share
// of its time limit.
import type { ClusterState } from './cluster-state.js';
import type { SchedulingConfig } from './config.js';
import type { ReservationGuard } from './framework/types.js';
import { isPreemptibleClass } from './plugins/hot-spare/index.js';
import { priorityClassName } from './priority.js';
import { gpusOf, type QuotaLedger } from './quota.js';
import type { JobFit } from './static-fit.js';
import { eligibleNodes, selectNodes, type EligibleHint, type GangOutcome } from './topology.js';
import type { JobRequest, RunningJob } from './types.js';

const MAX_SELECTIONS = 64;

export interface PreemptionPolicy {
  now: number;
  config: SchedulingConfig;
  /** Nodes held as hot spares this cycle: a recovery attempt may preempt preemptible work there. */
  spareNodes?: ReadonlySet<string>;
}

/** Seconds of work a job loses if stopped now. */
export function lostWorkSec(job: RunningJob, now: number): number {
  return Math.max(0, (now - (job.lastCheckpointTime ?? job.startTime)) / 1000);
}

/** Whether the job has used at least `fraction` of its time limit (never when either is 0). */
export function nearCompletion(job: RunningJob, now: number, fraction: number): boolean {
  return fraction > 0 && job.timeLimitSec > 0 && now - job.startTime >= fraction * job.timeLimitSec * 1000;
}

/** Cheapest victim first: terminating ones (free to wait for), then the victim order above. */
export function compareVictims(a: RunningJob, b: RunningJob, now: number): number {
  return (
    Number(a.terminating ?? false) === Number(b.terminating ?? false)
      ? a.priority - b.priority || lostWorkSec(a, now) - lostWorkSec(b, now) || gpusOf(a) - gpusOf(b) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
      : a.terminating
        ? -1
        : 1
  );
}

/**
 * Running jobs sorted by compareVictims: the same order, with each job's lost work and GPUs
 * worked out once instead of in every comparison (a cycle sorts thousands).
 */
export function victimOrder(running: readonly RunningJob[], now: number): RunningJob[] {
  const n = running.length;
  const terminating = new Uint8Array(n);
  const priority = new Float64Array(n);
  const lost = new Float64Array(n);
  const gpus = new Float64Array(n);
  const order: number[] = [];
  for (let k = 0; k < n; k++) {
    const j = running[k]!;
    terminating[k] = j.terminating ? 1 : 0;
    priority[k] = j.priority;
    lost[k] = lostWorkSec(j, now);
    gpus[k] = gpusOf(j);
    order.push(k);
  }
  // Signs only (all a sort reads): no fractional difference is boxed per comparison.
  order.sort((a, b) => {
    if (terminating[a] !== terminating[b]) return terminating[a] ? -1 : 1;
    let d = priority[a]! - priority[b]!;
    if (d) return d > 0 ? 1 : -1;
    d = lost[a]! - lost[b]!;
    if (d) return d > 0 ? 1 : -1;
    d = gpus[a]! - gpus[b]!;
    if (d) return d > 0 ? 1 : -1;
    const x = running[a]!.id;
    const y = running[b]!.id;
    return x < y ? -1 : x > y ? 1 : 0;
  });
  return order.map((k) => running[k]!);
}

/**
 * Why `victim` may be preempted for `preemptor` given the quota state, or undefined if it
 * may not. `preemptorBorrows`: the preemptor would run above its own nominal quota.
 */
export function preemptionReason(
  preemptor: JobRequest,
  victim: RunningJob,
  ledger: QuotaLedger,
  preemptorBorrows: boolean,
  policy: PreemptionPolicy,
): string | undefined {
  if (victim.terminating) return 'already terminating';
  const p = policy.config.preemption;
  if (victim.preemptedAt !== undefined && policy.now - victim.preemptedAt < p.windowSec * 1000) return undefined;
  if (nearCompletion(victim, policy.now, p.nearCompletionFraction)) return undefined;
  const lower = victim.priority < preemptor.priority;
  // Preemptible work may borrow hot spares only until a recovery attempt needs them, whatever
  // the quotas say: that is the condition under which `spares.allowPreemptible` lends them.
  const spare = lower && preemptor.recovery === true && isPreemptibleClass(victim.priority) ? victim.ranks.find((r) => policy.spareNodes?.has(r.node)) : undefined;
  if (spare) return `preemptible work on hot spare ${spare.node}, needed for recovery`;
  if (lower) {
    const why = `lower priority (${priorityClassName(victim.priority)} < ${priorityClassName(preemptor.priority)})`;
    // Quotas are guarantees: another tenant's job inside its nominal quota is protected from
    // ordinary priority, and only the top classes may cut through it.
    if (victim.tenant === preemptor.tenant || ledger.nominal(victim.tenant) === Infinity) return why;
    if (ledger.isBorrowing(victim.tenant)) return `${why}, tenant ${victim.tenant} is borrowing`;
    if (preemptor.priority >= p.crossTenantMinPriority) return why;
  }
  const reclaim = p.reclaimWithinCohort;
  const cohort = ledger.cohortOf(preemptor.tenant);
  if (
    reclaim !== 'never' &&
    (reclaim === 'any' || lower) &&
    !preemptorBorrows &&
    cohort !== undefined &&
    victim.tenant !== preemptor.tenant &&
    ledger.cohortOf(victim.tenant) === cohort &&
    ledger.isBorrowing(victim.tenant)
  ) {
    return `reclaiming quota lent to tenant ${victim.tenant} in cohort ${cohort}`;
  }
  return undefined;
}

export interface VictimSearch {
  state: ClusterState;
  job: JobRequest;
  fit: JobFit;
  /** Running jobs not yet claimed this cycle (terminating ones included), in victim order. */
  pool: VictimPool;
  /** Only terminating jobs may be waited for (preemption is off). */
  terminatingOnly?: boolean;
  ledger: QuotaLedger;
  /** The job is admitted by quota without preempting anyone. */
  admitted: boolean;
  /** The job would run above its tenant's nominal quota (so it cannot reclaim). */
  borrows: boolean;
  guard?: ReservationGuard;
  endsBefore: boolean;
  policy: PreemptionPolicy;
}

/** Node indices of a running job's ranks in `state` (-1 for nodes not in the snapshot). */
export function rankNodeIndices(state: ClusterState, job: RunningJob): number[] {
  return job.ranks.map((r) => state.byName.get(r.node) ?? -1);
}

/**
 * A cycle's running jobs in victim order (compareVictims), with what every victim search
 * reads of each kept in arrays: their nodes, whether they are terminating, their priority
 * and tenant. A search picks its candidates with one pass over these instead of visiting
 * thousands of job objects (and a map of their nodes) per preemptor. The order does not
 * depend on the preemptor, so it is sorted once per cycle; claimed jobs are marked, not removed.
 */
export class VictimPool {
  readonly jobs: readonly RunningJob[];
  /** Each job's node indices, worked out when a search first asks (a cycle may search none). */
  private readonly nodes: (readonly number[] | undefined)[];
  readonly terminating: Uint8Array;
  readonly priority: Float64Array;
  /** Dense tenant ids (into `tenants`). */
  readonly tenant: Int32Array;
  readonly tenants: string[] = [];
  private readonly claimed: Uint8Array;
  private readonly index = new Map<string, number>();
  private left: number;
  private terminatingLeft = 0;

  constructor(private readonly state: ClusterState, running: readonly RunningJob[], now: number) {
    this.jobs = victimOrder(running, now);
    const n = this.jobs.length;
    this.terminating = new Uint8Array(n);
    this.priority = new Float64Array(n);
    this.tenant = new Int32Array(n);
    this.claimed = new Uint8Array(n);
    this.left = n;
    const tenantIds = new Map<string, number>();
    this.nodes = new Array<readonly number[] | undefined>(n);
    for (let k = 0; k < n; k++) {
      const j = this.jobs[k]!;
      this.index.set(j.id, k);
      this.terminating[k] = j.terminating ? 1 : 0;
      this.terminatingLeft += this.terminating[k]!;
      this.priority[k] = j.priority;
      let t = tenantIds.get(j.tenant);
      if (t === undefined) {
        tenantIds.set(j.tenant, (t = this.tenants.length));
        this.tenants.push(j.tenant);
      }
      this.tenant[k] = t;
    }
  }

  /** Node indices of job k's ranks (-1 for nodes not in the snapshot). */
  nodesOf(k: number): readonly number[] {
    let idx = this.nodes[k];
    if (!idx) this.nodes[k] = idx = rankNodeIndices(this.state, this.jobs[k]!);
    return idx;
  }

  /** Jobs not yet claimed (only terminating ones, with `terminatingOnly`). */
  size(terminatingOnly = false): number {
    return terminatingOnly ? this.terminatingLeft : this.left;
  }

  /** Whether job k (a pool index) is still claimable. */
  open(k: number): boolean {
    return this.claimed[k] === 0;
  }

  /** Takes a job out of every later search (a preemptor chose it). */
  claim(id: string): void {
    const k = this.index.get(id);
    if (k === undefined || this.claimed[k]) return;
    this.claimed[k] = 1;
    this.left -= 1;
    this.terminatingLeft -= this.terminating[k]!;
  }
}

/** A search in progress: the job's eligible nodes in the live state. */
interface Search extends VictimSearch {
  live: readonly number[];
}

export interface VictimChoice {
  victims: { job: RunningJob; reason: string }[];
  outcome: Extract<GangOutcome, { ok: true }>;
}

/**
 * The cheapest set of victims that lets the job fit, or undefined. A job that must sit in
 * one domain (`same-switch`, ...) is tried domain by domain with only the victims there, and
 * the cheapest domain wins: taking the globally cheapest victims first would scatter them
 * over every switch before any one switch had room.
 */
export function findVictims(search: VictimSearch): VictimChoice | undefined {
  // The live state's eligible nodes, once: every selection below only adds victims' GPUs to it.
  const live = eligibleNodes(search.job, search.fit, { free: search.state.freeCount, guard: search.guard, endsBefore: search.endsBefore });
  const s: Search = { ...search, live };
  const { state, job, fit, pool } = s;
  const candidates = mayBeVictims(s);
  const quotaVictim = (k: number) => !s.admitted && pool.jobs[k]!.tenant === job.tenant;
  const level = job.topology === 'same-switch' ? state.leaf : job.topology === 'same-spine' ? state.spine : job.topology === 'same-nvlink-domain' ? state.nvl : undefined;
  if (level === undefined) {
    const useful: number[] = [];
    for (const k of candidates) if (quotaVictim(k) || touchesMask(pool.nodesOf(k), fit.mask)) useful.push(k);
    return greedy(s, useful, state.freeCountsCopy());
  }
  const { perDomain, domains, candidatesIn } = splitByDomain(fit.candidates, level, state);
  // The victims touching each domain that holds enough statically eligible nodes.
  const byDomain: (number[] | undefined)[] = new Array<number[] | undefined>(perDomain.length);
  const shared: number[] = [];
  for (const k of candidates) {
    if (quotaVictim(k)) shared.push(k);
    for (const i of pool.nodesOf(k)) {
      if (i < 0 || fit.mask[i] !== 1) continue;
      const d = level[i]!;
      if (perDomain[d]! < job.nodes) continue;
      let list = byDomain[d];
      if (!list) byDomain[d] = list = [];
      // Victims are visited one at a time: one already listed here is the list's last.
      if (list[list.length - 1] !== k) list.push(k);
    }
  }
  let best: VictimChoice | undefined;
  let bestCost: number[] = [];
  const free = state.freeCountsCopy();
  for (const d of domains) {
    const count = perDomain[d]!;
    if (count < job.nodes) continue;
    const local = byDomain[d] ?? [];
    // Pool indices follow the victim order, so the union in ascending index is cheapest first.
    const victims = shared.length === 0 ? local : [...new Set([...local, ...shared])].sort((a, b) => a - b);
    const choice = greedy(s, victims, free, { level, domain: d, candidates: candidatesIn[d]! });
    if (!choice) continue;
    const cost = victimCost(choice, s.policy.now);
    if (!best || lexLess(cost, bestCost)) {
      best = choice;
      bestCost = cost;
    }
  }
  return best;
}

/** A job's candidates grouped by the domains of one level. */
interface DomainSplit {
  /** Candidates per domain. */
  perDomain: Int32Array;
  /** The domains with candidates, in the order the candidates first name them. */
  domains: number[];
  /** Each domain's candidates, ascending. */
  candidatesIn: (number[] | undefined)[];
}

/**
 * Splits are the same for every search of one candidate list at one level (a shape's fit is
 * shared by its jobs, and a cycle searches a shape many times): kept per list, which lives
 * for one cycle.
 */
const splits = new WeakMap<Int32Array, Map<Int32Array, DomainSplit>>();

function splitByDomain(candidates: Int32Array, level: Int32Array, state: ClusterState): DomainSplit {
  let byLevel = splits.get(candidates);
  if (!byLevel) splits.set(candidates, (byLevel = new Map()));
  let split = byLevel.get(level);
  if (split) return split;
  const perDomain = new Int32Array(level === state.leaf ? state.leafNames.length : level === state.spine ? state.spineNames.length : state.nvlNames.length);
  const domains: number[] = [];
  const candidatesIn: (number[] | undefined)[] = new Array<number[] | undefined>(perDomain.length);
  for (const i of candidates) {
    const d = level[i]!;
    if (perDomain[d]!++ === 0) {
      domains.push(d);
      candidatesIn[d] = [];
    }
    candidatesIn[d]!.push(i);
  }
  byLevel.set(level, (split = { perDomain, domains, candidatesIn }));
  return split;
}

/**
 * The pool's open jobs (indices, in victim order) in a cheap superset of those
 * preemptionReason can accept for this preemptor: terminating, lower priority, or a tenant
 * it could reclaim from now (usage only falls while victims are chosen, so a tenant not
 * borrowing now never becomes reclaimable). On a busy cluster most running jobs are none of
 * these, and the search then looks at a few instead of thousands.
 */
function mayBeVictims(s: VictimSearch): number[] {
  const { job, ledger, pool } = s;
  const p = s.policy.config.preemption;
  const cohort = ledger.cohortOf(job.tenant);
  const reclaims = !s.terminatingOnly && s.admitted && !s.borrows && p.reclaimWithinCohort === 'any' && cohort !== undefined;
  const reclaimable = new Uint8Array(pool.tenants.length);
  if (reclaims) {
    pool.tenants.forEach((t, id) => {
      reclaimable[id] = t !== job.tenant && ledger.cohortOf(t) === cohort && ledger.isBorrowing(t) ? 1 : 0;
    });
  }
  const out: number[] = [];
  const { terminating, priority, tenant } = pool;
  const n = pool.jobs.length;
  for (let k = 0; k < n; k++) {
    if (!pool.open(k)) continue;
    if (terminating[k] === 1 || (!s.terminatingOnly && (priority[k]! < job.priority || reclaimable[tenant[k]!] === 1))) out.push(k);
  }
  return out;
}

/** Whether one of the nodes is in the mask (a job's statically eligible nodes). */
function touchesMask(nodes: readonly number[], mask: Uint8Array): boolean {
  for (const i of nodes) if (i >= 0 && mask[i] === 1) return true;
  return false;
}

/** How bad a victim set is: its highest priority, then the work it loses, then its size. */
export function victimCost(choice: VictimChoice, now: number): number[] {
  let maxPriority = -Infinity;
  let lost = 0;
  let count = 0;
  for (const { job } of choice.victims) {
    if (job.terminating) continue;
    maxPriority = Math.max(maxPriority, job.priority);
    lost += lostWorkSec(job, now) * gpusOf(job);
    count += 1;
  }
  return [maxPriority, lost, count];
}

function lexLess(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]!;
  return false;
}

/** Where one greedy search counts: a domain's level, its index, and its statically eligible nodes. */
interface Within {
  level: Int32Array;
  domain: number;
  candidates: readonly number[];
}

/**
 * Adds victims cheapest first until the job fits, then trims to those it needs. `within`
 * restricts the counting to one domain (the job must fit inside it, so nodes elsewhere
 * cannot help). `free` is the cluster's free GPU counts, borrowed: the search adds the
 * victims' GPUs to it and puts every entry it changed back before returning, so one copy
 * serves every domain of a preemptor (a copy per domain cost O(domains x nodes) per job).
 */
function greedy(s: Search, useful: readonly number[], free: Uint8Array, within?: Within): VictimChoice | undefined {
  const touched: number[] = [];
  try {
    return greedySearch(s, useful, free, touched, within);
  } finally {
    for (const i of touched) free[i] = s.state.freeCount[i]!;
  }
}

function greedySearch(s: Search, useful: readonly number[], free: Uint8Array, touched: number[], within?: Within): VictimChoice | undefined {
  const { state, job, fit } = s;
  const g = job.gpusPerNode;
  const gpus = job.nodes * g;
  const ledger = s.ledger.clone();

  const scenario = { free, guard: s.guard, endsBefore: s.endsBefore };
  const hint: EligibleHint = { base: s.live, changed: touched };
  const quotaOk = (l: QuotaLedger) => s.admitted || l.admit(job.tenant, gpus).ok;
  // Eligible nodes (inside the domain when there is one: a job that must sit in one domain is
  // searched domain by domain), so the expensive selection is only tried once the job could fit.
  let eligible = 0;
  const n = job.nodes;
  const couldFit = () => eligible >= n;
  const inside = (i: number) => within === undefined || within.level[i] === within.domain;
  const fits = (i: number) => free[i]! >= g && (s.guard === undefined || s.endsBefore || s.guard.slack[i]! >= g);
  for (const i of within?.candidates ?? fit.candidates) if (fits(i)) eligible += 1;

  const chosen: { job: RunningJob; reason: string }[] = [];
  let outcome: GangOutcome | undefined;
  let newVictims = 0;
  // Each full selection is a scan of the candidates; bound them so one hopeless preemptor
  // (e.g. a topology no set of victims satisfies) cannot stall the cycle.
  let selections = 0;
  let eligibleAtLastTry = -1;
  for (const u of useful) {
    const v = s.pool.jobs[u]!;
    if (!v.terminating && newVictims >= s.policy.config.preemption.maxVictims) break;
    // When over quota, only the tenant's own lower-priority work can make room.
    const reason = s.admitted
      ? preemptionReason(job, v, ledger, s.borrows, s.policy)
      : v.tenant === job.tenant && (v.terminating || v.priority < job.priority)
        ? preemptionReason(job, v, ledger, true, s.policy)
        : undefined;
    if (reason === undefined) continue;
    chosen.push({ job: v, reason });
    if (!v.terminating) {
      newVictims += 1;
      ledger.release(v.tenant, gpusOf(v));
    }
    const idx = s.pool.nodesOf(u);
    for (let k = 0; k < idx.length; k++) {
      const i = idx[k]!;
      if (i < 0) continue;
      const counted = fit.mask[i] === 1 && inside(i);
      const before = counted && fits(i);
      touched.push(i);
      free[i] = free[i]! + v.ranks[k]!.gpus.length;
      if (!before && counted && fits(i)) eligible += 1;
    }
    if (!couldFit() || eligible === eligibleAtLastTry || !quotaOk(ledger)) continue;
    if (++selections > MAX_SELECTIONS) break;
    eligibleAtLastTry = eligible;
    outcome = selectNodes(state, job, fit, scenario, hint);
    if (outcome.ok) break;
  }
  if (!outcome?.ok) return undefined;
  return trim(s, chosen, outcome, free, touched);
}

/**
 * Keeps only the victims the chosen nodes need (cheapest first), then re-selects on that
 * smaller set; repeats while it shrinks. Falls back to the previous set if re-selection fails.
 * `free` is the search's scratch copy of the free counts, which differs from the live ones
 * only at `touched` (where every chosen victim runs): each round resets those and adds the
 * kept victims' GPUs, instead of copying the whole cluster (greedy restores it after).
 */
function trim(s: Search, chosen: VictimChoice['victims'], first: VictimChoice['outcome'], free: Uint8Array, touched: readonly number[]): VictimChoice {
  const { state, job } = s;
  const g = job.gpusPerNode;
  let best: VictimChoice = { victims: chosen, outcome: first };
  for (let round = 0; round < 3; round++) {
    const need = new Map<number, number>();
    for (const i of best.outcome.nodes) {
      const missing = g - state.freeCount[i]!;
      if (missing > 0) need.set(i, missing);
    }
    const kept: VictimChoice['victims'] = [];
    const quota = s.ledger.clone();
    for (const c of best.victims) {
      const helpsNode = c.job.ranks.some((r) => (need.get(state.byName.get(r.node) ?? -1) ?? 0) > 0);
      const helpsQuota = !s.admitted && c.job.tenant === job.tenant && !quota.admit(job.tenant, job.nodes * g).ok;
      if (!helpsNode && !helpsQuota) continue;
      kept.push(c);
      if (!c.job.terminating) quota.release(c.job.tenant, gpusOf(c.job));
      for (const r of c.job.ranks) {
        const i = state.byName.get(r.node);
        if (i !== undefined && need.has(i)) need.set(i, need.get(i)! - r.gpus.length);
      }
    }
    if (kept.length === best.victims.length) break;
    for (const i of touched) free[i] = state.freeCount[i]!;
    const changed: number[] = [];
    for (const c of kept) {
      for (const r of c.job.ranks) {
        const i = state.byName.get(r.node);
        if (i !== undefined) {
          free[i] = free[i]! + r.gpus.length;
          changed.push(i);
        }
      }
    }
    const outcome = selectNodes(state, job, s.fit, { free, guard: s.guard, endsBefore: s.endsBefore }, { base: s.live, changed });
    if (!outcome.ok) break;
    best = { victims: kept, outcome };
  }
  return best;
}
