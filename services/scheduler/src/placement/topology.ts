// Gang and topology selection: all N nodes or none, in the smallest domain that holds them
// (one NVLink domain, else one leaf switch, else one spine, else spread over the cluster),
// choosing the tightest such domain (best fit). A job that requires a domain
// (`same-switch`, ...) fails rather than spreading.
//
// The selection works on a Scenario (free GPU counts per node) so the same code answers
// "where now?", "where if these victims were preempted?" and "where at time T?".
import type { ClusterState } from './cluster-state.js';
import { fitsFree } from './filters/free-gpus.js';
import { fitsReservation } from './filters/reservation.js';
import { compareDomains, compareNodes, fitScore, type GroupLevel } from './scores/best-fit.js';
import type { StaticFit } from './static-fit.js';
import type { DomainLevel, JobRequest, TopologyNeed } from './types.js';

/** Slack of a node outside the reservation: anything fits. */
export const NOT_RESERVED = 1 << 30;

/** The head job's reservation as seen by later jobs (EASY backfill). */
export interface ReservationGuard {
  jobId: string;
  startTime: number;
  /** Per node: GPUs still spare at startTime; NOT_RESERVED for nodes it does not need. */
  slack: Int32Array;
}

export interface Scenario {
  /** Free GPUs per node in this scenario. */
  free: ArrayLike<number>;
  guard?: ReservationGuard;
  /** The job ends before the guard's reservation starts, so it cannot delay it. */
  endsBefore?: boolean;
}

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

export type GangOutcome = { ok: true; nodes: number[]; level: DomainLevel; domain: string; explanation: string } | GangFailure;

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

const LEVELS_FOR: Record<TopologyNeed, DomainLevel[]> = {
  any: ['nvlink', 'leaf', 'spine', 'cluster'],
  'same-nvlink-domain': ['nvlink'],
  'same-switch': ['nvlink', 'leaf'],
  'same-spine': ['nvlink', 'leaf', 'spine'],
};

export const LEVEL_LABEL: Record<DomainLevel, string> = {
  nvlink: 'NVLink domain',
  leaf: 'leaf switch',
  spine: 'spine',
  cluster: 'cluster',
};

function plural(level: DomainLevel, count: number): string {
  const label = LEVEL_LABEL[level];
  if (count === 1) return label;
  return label.endsWith('h') ? `${label}es` : `${label}s`;
}

const CHILD: Record<DomainLevel, GroupLevel | 'node'> = { cluster: 'spine', spine: 'leaf', leaf: 'nvlink', nvlink: 'node' };

function domainOf(state: ClusterState, level: GroupLevel, i: number): number {
  return level === 'nvlink' ? state.nvl[i]! : level === 'leaf' ? state.leaf[i]! : state.spine[i]!;
}

function domainName(state: ClusterState, level: DomainLevel, d: number): string {
  if (level === 'cluster') return 'cluster';
  const names = level === 'nvlink' ? state.nvlNames : level === 'leaf' ? state.leafNames : state.spineNames;
  return `${LEVEL_LABEL[level]} ${names[d]}`;
}

function domainCount(state: ClusterState, level: GroupLevel): number {
  return level === 'nvlink' ? state.nvlNames.length : level === 'leaf' ? state.leafNames.length : state.spineNames.length;
}

function nodeFits(scenario: Scenario, i: number, g: number): boolean {
  if (!fitsFree(scenario.free[i]!, g)) return false;
  const guard = scenario.guard;
  return guard === undefined || fitsReservation(guard.slack[i]!, g, scenario.endsBefore ?? false);
}

export function selectNodes(state: ClusterState, job: JobRequest, fit: StaticFit, scenario: Scenario): GangOutcome {
  const g = job.gpusPerNode;
  const n = job.nodes;
  if (scenario.free === state.freeCount) {
    // On the live state the (model, free) histogram bounds eligibility without a scan: most
    // of a long queue is rejected here when the cluster is full.
    const bound = state.nodesWithFree(fit.models, g);
    if (bound < n) return failure(job, { reason: 'no-capacity', eligible: bound, bounded: true });
    if (n === 1 && state.maxNvlSize <= 1) return selectSingleNode(state, job, fit, scenario);
  }
  const eligible: number[] = [];
  for (const i of fit.candidates) if (nodeFits(scenario, i, g)) eligible.push(i);
  if (eligible.length < n) return failure(job, { reason: 'no-capacity', eligible: eligible.length });
  let largest = { level: 'nvlink' as GroupLevel, count: 0 };
  for (const level of LEVELS_FOR[job.topology]) {
    if (level === 'cluster') {
      const nodes = pick(state, scenario.free, eligible, 'cluster', n);
      return { ok: true, nodes, level, domain: 'cluster', explanation: spreadExplanation(state, nodes, largest) };
    }
    if (level === 'nvlink' && state.maxNvlSize < n) continue;
    const counts = new Int32Array(domainCount(state, level));
    for (const i of eligible) counts[domainOf(state, level, i)]! += 1;
    const need = LEVELS_FOR[job.topology].at(-1)!;
    let best = -1;
    let holding = 0;
    for (let d = 0; d < counts.length; d++) {
      const c = counts[d]!;
      if (!satisfies(state, level, d, need)) continue;
      if (c > largest.count || (c === largest.count && level !== largest.level)) largest = { level, count: c };
      if (c < n) continue;
      holding += 1;
      if (best === -1 || compareDomains(state, level, d, c, best, counts[best]!) < 0) best = d;
    }
    if (best === -1) continue;
    const members = eligible.filter((i) => domainOf(state, level, i) === best);
    const nodes = pick(state, scenario.free, members, level, n);
    const name = domainName(state, level, best);
    const score = fitScore(n, members.length);
    return {
      ok: true,
      nodes,
      level,
      domain: name,
      explanation: `${name}: best fit ${score.toFixed(2)} (${n} of ${members.length} eligible nodes; tightest of ${holding} ${plural(level, holding)} that hold the gang)`,
    };
  }
  const levels = LEVELS_FOR[job.topology];
  return failure(job, { reason: 'topology', eligible: eligible.length, need: levels[levels.length - 1]!, largest });
}

/** Whether domain `d` at `level` lies inside one domain of the required level. */
function satisfies(state: ClusterState, level: GroupLevel, d: number, need: DomainLevel): boolean {
  if (need === 'cluster' || need === level) return true;
  if (level === 'nvlink') return need === 'leaf' ? state.nvlInOneLeaf[d] === 1 : state.nvlInOneSpine[d] === 1;
  return level === 'leaf' && need === 'spine' ? state.leafInOneSpine[d] === 1 : true;
}

function spreadExplanation(state: ClusterState, nodes: number[], largest: { level: GroupLevel; count: number }): string {
  const spines = new Set(nodes.map((i) => state.spine[i]!)).size;
  const leaves = new Set(nodes.map((i) => state.leaf[i]!)).size;
  return `cluster: spread over ${spines} spine(s) and ${leaves} leaf switch(es); no single domain holds ${nodes.length} eligible nodes (largest ${LEVEL_LABEL[largest.level]}: ${largest.count})`;
}

/**
 * Chooses `n` nodes among `members` (all inside one domain at `level`): if one child domain
 * holds them all, the tightest such child; otherwise whole children, largest first (fewest
 * domains spanned), and the remainder in the tightest child that holds it.
 */
function pick(state: ClusterState, free: ArrayLike<number>, members: number[], level: DomainLevel, n: number): number[] {
  let child = CHILD[level];
  if (child === 'nvlink' && state.maxNvlSize <= 1) child = 'node';
  if (child === 'node') {
    if (members.length === n) return members;
    return [...members].sort((a, b) => compareNodes(state, free, a, b)).slice(0, n);
  }
  const groups = new Map<number, number[]>();
  for (const i of members) {
    const d = domainOf(state, child, i);
    let list = groups.get(d);
    if (!list) groups.set(d, (list = []));
    list.push(i);
  }
  const childLevel = child;
  if (groups.size === 1) return pick(state, free, members, childLevel, n);
  const out: number[] = [];
  let remaining = n;
  const left = [...groups.entries()];
  while (remaining > 0) {
    let fitIdx = -1;
    for (let k = 0; k < left.length; k++) {
      const [d, list] = left[k]!;
      if (list.length < remaining) continue;
      if (fitIdx === -1) fitIdx = k;
      else {
        const [bd, blist] = left[fitIdx]!;
        if (compareDomains(state, childLevel, d, list.length, bd, blist.length) < 0) fitIdx = k;
      }
    }
    if (fitIdx !== -1) {
      out.push(...pick(state, free, left[fitIdx]![1], childLevel, remaining));
      break;
    }
    // No child holds the rest: take the largest whole (ties: the most used one).
    let bigIdx = 0;
    for (let k = 1; k < left.length; k++) {
      const [d, list] = left[k]!;
      const [bd, blist] = left[bigIdx]!;
      if (list.length > blist.length || (list.length === blist.length && compareDomains(state, childLevel, d, 0, bd, 0) < 0)) bigIdx = k;
    }
    const [, list] = left.splice(bigIdx, 1)[0]!;
    out.push(...pick(state, free, list, childLevel, list.length));
    remaining -= list.length;
  }
  return out;
}

/**
 * Single-node jobs on the live state, via the (leaf, model, free) buckets: the tightest free
 * count first, then the most-used leaf switch and spine. Equivalent to the general path for
 * one node (tightest node, most-used domains) without touching every node.
 */
function selectSingleNode(state: ClusterState, job: JobRequest, fit: StaticFit, scenario: Scenario): GangOutcome {
  const g = job.gpusPerNode;
  const models = fit.models ?? state.models.map((_, id) => id);
  const leaves: number[] = [];
  for (let k = g; k <= state.maxGpus; k++) {
    leaves.length = 0;
    for (let l = 0; l < state.leafCount; l++) {
      for (const m of models) {
        if (state.bucket(l, m, k).length > 0) {
          leaves.push(l);
          break;
        }
      }
    }
    if (leaves.length === 0) continue;
    leaves.sort((a, b) => compareDomains(state, 'leaf', a, 0, b, 0));
    for (const l of leaves) {
      let best = -1;
      for (const m of models) {
        for (const i of state.bucket(l, m, k)) {
          if (!fit.mask[i] || !nodeFits(scenario, i, g)) continue;
          if (best === -1 || compareNodes(state, state.freeCount, i, best) < 0) best = i;
        }
      }
      if (best !== -1) {
        return {
          ok: true,
          nodes: [best],
          level: 'nvlink',
          domain: domainName(state, 'nvlink', state.nvl[best]!),
          explanation: `best fit: node ${state.nodes[best]!.name} had ${k} free GPU(s), the tightest that holds ${g}; leaf switch ${state.leafNames[l]} had ${state.leafFree[l]} free GPUs, the most used with such a node`,
        };
      }
    }
  }
  let eligible = 0;
  for (const i of fit.candidates) if (nodeFits(scenario, i, g)) eligible += 1;
  return failure(job, { reason: 'no-capacity', eligible });
}
