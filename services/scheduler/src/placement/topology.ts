// Gang and topology selection: all N nodes or none, in the smallest domain that holds them
// (one NVLink domain, else one leaf switch, else one spine, else spread over the cluster),
// choosing the tightest such domain (best fit). A job that requires a domain
// (`same-switch`, ...) fails rather than spreading.
//
// The selection works on a Scenario (free GPU counts per node) so the same code answers
// "where now?", "where if these victims were preempted?" and "where at time T?". When the
// job's score plugins are active (blamed nodes, hot spares for a recovery attempt), domains
// and nodes are ranked by their weighted scores first and by best fit among equals.
import type { ClusterState } from './cluster-state.js';
import { choose, domainCount, domainName, domainOf, LEVEL_LABEL, LEVELS_FOR, nodeFits, plural, satisfies, topSum } from './domains.js';
import { selectKept } from './kept.js';
import { compareDomains, compareNodes, fitScore, type GroupLevel } from './plugins/best-fit/index.js';
import type { Scenario } from './framework/types.js';
import type { JobFit } from './static-fit.js';
import type { DomainLevel, JobRequest } from './types.js';

export interface GangFailure {
  ok: false;
  reason: 'no-capacity' | 'topology';
  /** Nodes that could take one rank now (an upper bound when `bounded`). */
  eligible: number;
  bounded?: boolean;
  /** For topology failures: the domain level required and the most eligible nodes in one. */
  need?: DomainLevel;
  largest?: { level: DomainLevel; count: number };
  message: string;
}

export interface GangChoice {
  ok: true;
  /** Node indices in rank order. */
  nodes: number[];
  level: DomainLevel;
  domain: string;
  explanation: string;
  /** For a job with kept ranks: whether every kept rank stays on its node. */
  kept?: boolean;
  /** Per rank, GPU indices to prefer (a kept rank's previous ones). */
  gpus?: (readonly number[] | undefined)[];
}

export type GangOutcome = GangChoice | GangFailure;

/** The user-facing message for a failure, phrased for `job` (failures are shared by shape). */
export function describeFailure(job: JobRequest, f: Omit<GangFailure, 'message' | 'ok'>): string {
  const g = job.gpusPerNode;
  const n = job.nodes;
  const eligible = `${f.bounded ? 'at most ' : ''}${f.eligible} eligible now`;
  if (f.reason === 'no-capacity' || !f.need || !f.largest) return `needs ${n} node(s) with ${g} free GPUs, ${eligible}`;
  return `needs ${n} nodes with ${g} free GPUs in one ${LEVEL_LABEL[f.need]}; ${eligible}, at most ${f.largest.count} in one ${LEVEL_LABEL[f.largest.level]}`;
}

function failure(job: JobRequest, f: Omit<GangFailure, 'message' | 'ok'>): GangFailure {
  return { ok: false, ...f, message: describeFailure(job, f) };
}

/**
 * Chooses the job's nodes in the scenario: for a job with kept ranks, first on its kept
 * nodes plus replacements (kept.ts), else, or when that is impossible, a whole gang.
 */
export function selectNodes(state: ClusterState, job: JobRequest, fit: JobFit, scenario: Scenario, hint?: EligibleHint): GangOutcome {
  if (scenario.free === state.freeCount) {
    // On the live state the (model, free) histogram bounds eligibility without a scan: most
    // of a long queue is rejected here when the cluster is full.
    const bound = state.nodesWithFree(fit.models, job.gpusPerNode);
    if (bound < job.nodes) return failure(job, { reason: 'no-capacity', eligible: bound, bounded: true });
  }
  if (!fit.keep) return selectGang(state, job, fit, scenario, hint);
  const kept = selectKept(state, job, fit, scenario, fit.keep);
  if (kept.ok) return kept;
  const whole = selectGang(state, job, fit, scenario, hint);
  return whole.ok ? { ...whole, kept: false, explanation: `${kept.why}; placed anew: ${whole.explanation}` } : whole;
}

/**
 * The selection without the job's own exclusions (its shape's), to tell whether a failure
 * belongs to the shape: `own` when no excluded node could take a rank in the scenario anyway.
 */
export function shapeOutcome(state: ClusterState, job: JobRequest, fit: JobFit, scenario: Scenario, own: GangFailure): GangOutcome {
  if (!fit.shape || !fit.excluded?.some((i) => nodeFits(fit.capacity, scenario, i, job.gpusPerNode))) return own;
  return selectNodes(state, job, { ...fit.shape, ...(fit.capacity ? { capacity: fit.capacity } : {}) }, scenario);
}

/** Past the last node index (ends a walk over an ascending list). */
const NO_NODE = 0x7fffffff;

/**
 * What a preemption search knows of its scenario: `free` differs from the live free counts
 * only at the `changed` nodes, and there only upward (victims' GPUs added), with the same
 * reservation guard. Capacity filters only admit more as free GPUs grow (the property the
 * cycle's failure memo rests on too), so the nodes that take a rank are `base` (those that
 * did in the live state, from eligibleNodes) plus those of `changed` that do now: a merge of
 * a few nodes instead of a capacity check of every candidate per selection.
 */
export interface EligibleHint {
  base: readonly number[];
  changed: readonly number[];
}

/** The job's candidates (its shape's, less its own exclusions) that take a rank in the scenario, ascending. */
export function eligibleNodes(job: JobRequest, fit: JobFit, scenario: Scenario): number[] {
  const g = job.gpusPerNode;
  const base = fit.shape ?? fit;
  const skip = fit.excluded?.length ? fit.excluded : undefined;
  const eligible: number[] = [];
  const candidates = base.candidates;
  const capacity = fit.capacity;
  if (!skip) {
    for (let c = 0; c < candidates.length; c++) if (nodeFits(capacity, scenario, candidates[c]!, g)) eligible.push(candidates[c]!);
  } else {
    // Both lists ascending: walk the exclusions alongside the candidates (no search per node).
    let e = 0;
    let next = skip[0]!;
    for (let c = 0; c < candidates.length; c++) {
      const i = candidates[c]!;
      while (next < i) next = ++e < skip.length ? skip[e]! : NO_NODE;
      if (next === i || !nodeFits(capacity, scenario, i, g)) continue;
      eligible.push(i);
    }
  }
  return eligible;
}

/** eligibleNodes for a scenario the hint describes: the same list, from the changed nodes alone. */
function hintedEligible(job: JobRequest, fit: JobFit, scenario: Scenario, hint: EligibleHint, passes: (i: number) => boolean): number[] {
  const g = job.gpusPerNode;
  const extra: number[] = [];
  for (const i of hint.changed) if (passes(i) && nodeFits(fit.capacity, scenario, i, g)) extra.push(i);
  if (extra.length === 0) return hint.base.slice();
  extra.sort((a, b) => a - b);
  const out: number[] = [];
  const base = hint.base;
  let b = 0;
  let last = -1;
  for (let e = 0; e <= extra.length; e++) {
    const x = e < extra.length ? extra[e]! : NO_NODE;
    while (b < base.length && base[b]! <= x) {
      if (base[b]! !== last) out.push((last = base[b]!));
      b++;
    }
    if (x !== NO_NODE && x !== last) out.push((last = x));
  }
  return out;
}

/** All N nodes in the smallest domain that holds them, the best such domain. */
function selectGang(state: ClusterState, job: JobRequest, fit: JobFit, scenario: Scenario, hint?: EligibleHint): GangOutcome {
  const g = job.gpusPerNode;
  const n = job.nodes;
  // A job's exclusions are skipped over its shape's candidates rather than copied out of them.
  const base = fit.shape ?? fit;
  const skip = fit.excluded?.length ? fit.excluded : undefined;
  const passes = (i: number) => base.mask[i] === 1 && !skip?.includes(i);
  // Scores that only lower a few nodes matter only if one of them could take a rank here:
  // otherwise every eligible node scores the maximum and best fit alone decides.
  const lowered = fit.prefer?.lowered;
  const prefer = lowered && !someFits(lowered, passes, fit, scenario, g) ? undefined : fit.prefer;
  if (scenario.free === state.freeCount && n === 1 && state.maxNvlSize <= 1 && (!prefer || prefer.lowered)) {
    const single = selectSingleNode(state, job, fit, scenario, passes, prefer?.lowered);
    if (single) return single;
  }
  const eligible = hint ? hintedEligible(job, fit, scenario, hint, passes) : eligibleNodes(job, fit, scenario);
  if (eligible.length < n) return failure(job, { reason: 'no-capacity', eligible: eligible.length });
  // With active score plugins, a domain is worth the scores of the n best nodes it offers.
  const scores = prefer ? eligible.map((i) => prefer.score(i)) : undefined;
  let largest = { level: 'nvlink' as GroupLevel, count: 0 };
  for (const level of LEVELS_FOR[job.topology]) {
    if (level === 'cluster') {
      const nodes = choose(state, scenario.free, eligible, 'cluster', n, prefer);
      return { ok: true, nodes, level, domain: 'cluster', explanation: spreadExplanation(state, nodes, largest) };
    }
    if (level === 'nvlink' && state.maxNvlSize < n) continue;
    const counts = new Int32Array(domainCount(state, level));
    for (const i of eligible) counts[domainOf(state, level, i)]! += 1;
    const worth = scores ? domainWorth(state, level, eligible, scores, counts, n) : undefined;
    const need = LEVELS_FOR[job.topology].at(-1)!;
    let best = -1;
    let tightest = -1;
    let holding = 0;
    for (let d = 0; d < counts.length; d++) {
      const c = counts[d]!;
      if (!satisfies(state, level, d, need)) continue;
      if (c > largest.count || (c === largest.count && level !== largest.level)) largest = { level, count: c };
      if (c < n) continue;
      holding += 1;
      if (tightest === -1 || compareDomains(state, level, d, c, tightest, counts[tightest]!) < 0) tightest = d;
      if (worth && (best === -1 || worth(d) > worth(best) || (worth(d) === worth(best) && compareDomains(state, level, d, c, best, counts[best]!) < 0))) best = d;
    }
    if (tightest === -1) continue;
    if (!worth) best = tightest;
    const members = eligible.filter((i) => domainOf(state, level, i) === best);
    const nodes = choose(state, scenario.free, members, level, n, prefer);
    const name = domainName(state, level, best);
    const score = fitScore(n, members.length);
    const why =
      best === tightest
        ? `tightest of ${holding} ${plural(level, holding)} that hold the gang`
        : `${holding} ${plural(level, holding)} hold the gang; node scores preferred it to the tighter ${domainName(state, level, tightest)}`;
    return { ok: true, nodes, level, domain: name, explanation: `${name}: best fit ${score.toFixed(2)} (${n} of ${members.length} eligible nodes; ${why})` };
  }
  const levels = LEVELS_FOR[job.topology];
  return failure(job, { reason: 'topology', eligible: eligible.length, need: levels[levels.length - 1]!, largest });
}

/** Whether one of the nodes passes the job's static filters and takes a rank in the scenario. */
function someFits(nodes: ReadonlySet<number>, passes: (i: number) => boolean, fit: JobFit, scenario: Scenario, g: number): boolean {
  for (const i of nodes) if (passes(i) && nodeFits(fit.capacity, scenario, i, g)) return true;
  return false;
}

/** Per domain at `level`, the summed scores of the `n` best eligible nodes in it (memoised). */
function domainWorth(state: ClusterState, level: GroupLevel, eligible: number[], scores: number[], counts: Int32Array, n: number): (d: number) => number {
  const byDomain = new Map<number, number[]>();
  eligible.forEach((i, k) => {
    const d = domainOf(state, level, i);
    if (counts[d]! < n) return;
    let list = byDomain.get(d);
    if (!list) byDomain.set(d, (list = []));
    list.push(scores[k]!);
  });
  const memo = new Map<number, number>();
  return (d) => {
    let w = memo.get(d);
    if (w === undefined) memo.set(d, (w = topSum(byDomain.get(d) ?? [], n)));
    return w;
  };
}

function spreadExplanation(state: ClusterState, nodes: number[], largest: { level: GroupLevel; count: number }): string {
  const spines = new Set(nodes.map((i) => state.spine[i]!)).size;
  const leaves = new Set(nodes.map((i) => state.leaf[i]!)).size;
  return `cluster: spread over ${spines} spine(s) and ${leaves} leaf switch(es); no single domain holds ${nodes.length} eligible nodes (largest ${LEVEL_LABEL[largest.level]}: ${largest.count})`;
}

/** Leaves picked one by one before selectSingleNode sorts the rest. */
const PICKED_LEAVES = 4;

/**
 * Single-node jobs on the live state, via the (leaf, model, free) buckets: the tightest free
 * count first, then the most-used leaf switch and spine. Equivalent to the general path for
 * one node (tightest node, most-used domains) without touching every node. `passes` is the
 * job's static fit; nodes in `skip` (scored below the maximum) are passed over; when only they remain, the answer is
 * undefined and the general path, which weighs the scores, decides.
 */
function selectSingleNode(
  state: ClusterState,
  job: JobRequest,
  fit: JobFit,
  scenario: Scenario,
  passes: (i: number) => boolean,
  skip: ReadonlySet<number> | undefined,
): GangOutcome | undefined {
  const g = job.gpusPerNode;
  const models = fit.models ?? state.models.map((_, id) => id);
  const capacity = fit.capacity;
  const sizes = state.bucketSizes;
  const leafCount = state.leafCount;
  /** The tightest node of leaf l with k free GPUs that the job may take, or -1. */
  const bestIn = (l: number, k: number): number => {
    let best = -1;
    for (const m of models) {
      for (const i of state.bucket(l, m, k)) {
        if (!passes(i) || skip?.has(i) || !nodeFits(capacity, scenario, i, g)) continue;
        if (best === -1 || compareNodes(state, state.freeCount, i, best) < 0) best = i;
      }
    }
    return best;
  };
  const chosen = (best: number, l: number, k: number): GangChoice => ({
    ok: true,
    nodes: [best],
    level: 'nvlink',
    domain: domainName(state, 'nvlink', state.nvl[best]!),
    explanation: `best fit: node ${state.nodes[best]!.name} had ${k} free GPU(s), the tightest that holds ${g}; leaf switch ${state.leafNames[l]} had ${state.leafFree[l]} free GPUs, the most used with such a node`,
  });
  const leaves: number[] = [];
  const runs = new Int32Array(models.length);
  for (let k = g; k <= state.maxGpus; k++) {
    // The best-fit leaf among those with such a node, in one pass over the bucket sizes
    // (compareDomains is a total order, so this is the leaf the ordering below starts with):
    // it usually has a node the job may take.
    if (state.nodesAt(models, k) === 0) continue;
    let first = -1;
    for (let c = 0; c < models.length; c++) runs[c] = state.leafRun(models[c]!, k);
    for (let l = 0; l < leafCount; l++) {
      let has = false;
      for (let c = 0; c < models.length && !has; c++) has = sizes[runs[c]! + l]! > 0;
      if (has && (first === -1 || compareDomains(state, 'leaf', l, 0, first, 0) < 0)) first = l;
    }
    if (first === -1) continue;
    const quick = bestIn(first, k);
    if (quick !== -1) return chosen(quick, first, k);
    let count = 0;
    for (let l = 0; l < leafCount; l++) {
      for (const m of models) {
        if (state.bucket(l, m, k).length > 0) {
          if (count < leaves.length) leaves[count] = l;
          else leaves.push(l);
          count += 1;
          break;
        }
      }
    }
    // The leaves in best-fit order. The first usually has a node, so the first few are picked
    // by a scan for the next best each; should those all fail, the rest are sorted once.
    for (let taken = 0; taken < count; taken++) {
      if (taken < PICKED_LEAVES) {
        let next = taken;
        for (let c = taken + 1; c < count; c++) if (compareDomains(state, 'leaf', leaves[c]!, 0, leaves[next]!, 0) < 0) next = c;
        const pick = leaves[next]!;
        leaves[next] = leaves[taken]!;
        leaves[taken] = pick;
      } else if (taken === PICKED_LEAVES) {
        const rest = leaves.slice(taken, count).sort((a, b) => compareDomains(state, 'leaf', a, 0, b, 0));
        for (let c = 0; c < rest.length; c++) leaves[taken + c] = rest[c]!;
      }
      const l = leaves[taken]!;
      const best = bestIn(l, k);
      if (best !== -1) return chosen(best, l, k);
    }
  }
  if (skip) return undefined;
  // The shape's candidates that take a rank, less the job's own exclusions among them.
  const base = fit.shape ?? fit;
  let eligible = 0;
  for (const i of base.candidates) if (nodeFits(capacity, scenario, i, g)) eligible += 1;
  if (fit.excluded) for (const i of fit.excluded) if (base.mask[i] === 1 && nodeFits(capacity, scenario, i, g)) eligible -= 1;
  return failure(job, { reason: 'no-capacity', eligible });
}
