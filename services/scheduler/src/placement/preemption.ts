// Preemption: a job that cannot fit may take GPUs from running jobs it outranks, or reclaim
// quota its tenant lent to the cohort. Victims are chosen to lose the least work: lowest
// priority first, then the least time since their last committed checkpoint (or start),
// then the fewest GPUs; and only as many as the gang needs (respecting its topology).
// A job preempted within the configured window is left alone, so two jobs cannot keep
// preempting each other.
import type { ClusterState } from './cluster-state.js';
import type { SchedulingConfig } from './config.js';
import { priorityClassName } from './priority.js';
import { gpusOf, type QuotaLedger } from './quota.js';
import type { StaticFit } from './static-fit.js';
import { selectNodes, type GangOutcome, type ReservationGuard } from './topology.js';
import type { JobRequest, RunningJob } from './types.js';

const MAX_SELECTIONS = 64;

export interface PreemptionPolicy {
  now: number;
  config: SchedulingConfig;
}

/** Seconds of work a job loses if stopped now. */
export function lostWorkSec(job: RunningJob, now: number): number {
  return Math.max(0, (now - (job.lastCheckpointTime ?? job.startTime)) / 1000);
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
  const lower = victim.priority < preemptor.priority;
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
  fit: StaticFit;
  /**
   * Running jobs not yet claimed this cycle (terminating ones included), already sorted by
   * compareVictims: the order does not depend on the preemptor, so a cycle sorts once.
   */
  candidates: readonly RunningJob[];
  ledger: QuotaLedger;
  /** The job is admitted by quota without preempting anyone. */
  admitted: boolean;
  /** The job would run above its tenant's nominal quota (so it cannot reclaim). */
  borrows: boolean;
  guard?: ReservationGuard;
  endsBefore: boolean;
  policy: PreemptionPolicy;
  /** Node index of each rank of a running job (-1 = not in the snapshot); computed per cycle. */
  rankNodes: (job: RunningJob) => Int32Array;
}

/** Node indices of a running job's ranks in `state` (-1 for nodes not in the snapshot). */
export function rankNodeIndices(state: ClusterState, job: RunningJob): Int32Array {
  return Int32Array.from(job.ranks, (r) => state.byName.get(r.node) ?? -1);
}

export interface VictimChoice {
  victims: { job: RunningJob; reason: string }[];
  outcome: Extract<GangOutcome, { ok: true }>;
}

/** The cheapest set of victims that lets the job fit, or undefined. */
export function findVictims(s: VictimSearch): VictimChoice | undefined {
  const { state, job, fit } = s;
  const g = job.gpusPerNode;
  const gpus = job.nodes * g;
  const ledger = s.ledger.clone();
  // A victim helps if it frees GPUs on a node the job could use, or (when the job is over
  // quota) frees its own tenant's quota.
  const useful = s.candidates.filter((v) => {
    if (!s.admitted && v.tenant === job.tenant) return true;
    for (const i of s.rankNodes(v)) if (i >= 0 && fit.mask[i] === 1) return true;
    return false;
  });

  const free = state.freeCountsCopy();
  const scenario = { free, guard: s.guard, endsBefore: s.endsBefore };
  const quotaOk = (l: QuotaLedger) => s.admitted || l.admit(job.tenant, gpus).ok;
  // Eligible nodes overall and per domain: selection is only attempted once the job's
  // topology need could be met, so the expensive call is made rarely.
  let eligible = 0;
  const perDomain = {
    nvl: new Int32Array(state.nvlNames.length),
    leaf: new Int32Array(state.leafNames.length),
    spine: new Int32Array(state.spineNames.length),
  };
  let best = { nvl: 0, leaf: 0, spine: 0 };
  const count = (i: number) => {
    eligible += 1;
    best = {
      nvl: Math.max(best.nvl, ++perDomain.nvl[state.nvl[i]!]!),
      leaf: Math.max(best.leaf, ++perDomain.leaf[state.leaf[i]!]!),
      spine: Math.max(best.spine, ++perDomain.spine[state.spine[i]!]!),
    };
  };
  const n = job.nodes;
  const couldFit = () =>
    job.topology === 'same-nvlink-domain' ? best.nvl >= n : job.topology === 'same-switch' ? best.leaf >= n : job.topology === 'same-spine' ? best.spine >= n : eligible >= n;
  const fits = (i: number) => free[i]! >= g && (s.guard === undefined || s.endsBefore || s.guard.slack[i]! >= g);
  for (const i of fit.candidates) if (fits(i)) count(i);

  const chosen: { job: RunningJob; reason: string }[] = [];
  let outcome: GangOutcome | undefined;
  let newVictims = 0;
  // Each full selection is a scan of the candidates; bound them so one hopeless preemptor
  // (e.g. a topology no set of victims satisfies) cannot stall the cycle.
  let selections = 0;
  let eligibleAtLastTry = -1;
  for (const v of useful) {
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
    const idx = s.rankNodes(v);
    for (let k = 0; k < idx.length; k++) {
      const i = idx[k]!;
      if (i < 0) continue;
      const before = fit.mask[i] === 1 && fits(i);
      free[i] = free[i]! + v.ranks[k]!.gpus.length;
      if (!before && fit.mask[i] === 1 && fits(i)) count(i);
    }
    if (!couldFit() || eligible === eligibleAtLastTry || !quotaOk(ledger)) continue;
    if (++selections > MAX_SELECTIONS) break;
    eligibleAtLastTry = eligible;
    outcome = selectNodes(state, job, fit, scenario);
    if (outcome.ok) break;
  }
  if (!outcome?.ok) return undefined;
  return trim(s, chosen, outcome);
}

/**
 * Keeps only the victims the chosen nodes need (cheapest first), then re-selects on that
 * smaller set; repeats while it shrinks. Falls back to the previous set if re-selection fails.
 */
function trim(s: VictimSearch, chosen: VictimChoice['victims'], first: VictimChoice['outcome']): VictimChoice {
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
    const free = state.freeCountsCopy();
    for (const c of kept) {
      for (const r of c.job.ranks) {
        const i = state.byName.get(r.node);
        if (i !== undefined) free[i] = free[i]! + r.gpus.length;
      }
    }
    const outcome = selectNodes(state, job, s.fit, { free, guard: s.guard, endsBefore: s.endsBefore });
    if (!outcome.ok) break;
    best = { victims: kept, outcome };
  }
  return best;
}
