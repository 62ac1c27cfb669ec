// Topology domains and how a gang's nodes are taken inside one, shared by whole-gang
// selection (topology.ts) and kept-rank selection (kept.ts). The weighted score plugins
// (Preference) rank nodes first; best fit orders whatever they leave equal.
import type { ClusterState } from './cluster-state.js';
import { Plugins, type Preference } from './framework/registry.js';
import { NOT_RESERVED, type CapacityFilterPlugin, type FilterContext, type FilterStatus, type Scenario } from './framework/types.js';
import { compareDomains, compareNodes, type GroupLevel } from './plugins/best-fit/index.js';
import type { DomainLevel, JobRequest, TopologyNeed } from './types.js';

/** The levels a gang may use for its topology need, smallest domain first. */
export const LEVELS_FOR: Record<TopologyNeed, DomainLevel[]> = {
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

export function plural(level: DomainLevel, count: number): string {
  const label = LEVEL_LABEL[level];
  if (count === 1) return label;
  return label.endsWith('h') ? `${label}es` : `${label}s`;
}

const CHILD: Record<DomainLevel, GroupLevel | 'node'> = { cluster: 'spine', spine: 'leaf', leaf: 'nvlink', nvlink: 'node' };

export function domainOf(state: ClusterState, level: GroupLevel, i: number): number {
  return level === 'nvlink' ? state.nvl[i]! : level === 'leaf' ? state.leaf[i]! : state.spine[i]!;
}

export function domainName(state: ClusterState, level: DomainLevel, d: number): string {
  if (level === 'cluster') return 'cluster';
  const names = level === 'nvlink' ? state.nvlNames : level === 'leaf' ? state.leafNames : state.spineNames;
  return `${LEVEL_LABEL[level]} ${names[d]}`;
}

export function domainCount(state: ClusterState, level: GroupLevel): number {
  return level === 'nvlink' ? state.nvlNames.length : level === 'leaf' ? state.leafNames.length : state.spineNames.length;
}

/** Whether domain `d` at `level` lies inside one domain of the required level. */
export function satisfies(state: ClusterState, level: GroupLevel, d: number, need: DomainLevel): boolean {
  if (need === 'cluster' || need === level) return true;
  if (level === 'nvlink') return need === 'leaf' ? state.nvlInOneLeaf[d] === 1 : state.nvlInOneSpine[d] === 1;
  return level === 'leaf' && need === 'spine' ? state.leafInOneSpine[d] === 1 : true;
}

export const DEFAULT_CAPACITY = Plugins.of().capacity;

/** Whether node i takes `g` GPUs in the scenario by every capacity filter (the default ones when none are given). */
export function nodeFits(capacity: readonly CapacityFilterPlugin[] = DEFAULT_CAPACITY, scenario: Scenario, i: number, g: number): boolean {
  for (const f of capacity) if (!f.admits(scenario, i, g)) return false;
  return true;
}

/**
 * Contexts reused from call to call (explanations ask about every candidate of every shape):
 * a filter reads its context during the call only. One without a reservation, one with.
 */
const plainContext: FilterContext = { free: 0 };
const reservedContext: FilterContext & { reservation: NonNullable<FilterContext['reservation']> } = { free: 0, reservation: { jobId: '', slack: 0, endsBefore: false } };

/** The first capacity filter that rejects node i in the scenario, as its reason (undefined when none does). */
export function capacityReason(state: ClusterState, job: JobRequest, i: number, scenario: Scenario, capacity: readonly CapacityFilterPlugin[] = DEFAULT_CAPACITY): FilterStatus {
  const slack = scenario.guard?.slack[i];
  let ctx: FilterContext;
  if (scenario.guard && slack !== undefined && slack !== NOT_RESERVED) {
    ctx = reservedContext;
    reservedContext.reservation.jobId = scenario.guard.jobId;
    reservedContext.reservation.slack = slack;
    reservedContext.reservation.endsBefore = scenario.endsBefore ?? false;
  } else ctx = plainContext;
  ctx.free = scenario.free[i]!;
  for (const f of capacity) {
    const reason = f.filter(state.nodes[i]!, job, ctx);
    if (reason !== undefined) return reason;
  }
  return undefined;
}

/** Sum of the `n` highest of `scores` (which it sorts). */
export function topSum(scores: number[], n: number): number {
  scores.sort((a, b) => b - a);
  let sum = 0;
  for (let k = 0; k < n && k < scores.length; k++) sum += scores[k]!;
  return sum;
}

/**
 * Chooses `n` of `members` (all inside one domain at `level`). Nodes the job's score plugins
 * rank above the n-th best are taken first; best fit (pick) chooses among the nodes tied with
 * it. Without active score plugins this is best fit alone.
 */
export function choose(state: ClusterState, free: ArrayLike<number>, members: number[], level: DomainLevel, n: number, prefer: Preference | undefined): number[] {
  if (!prefer) return pick(state, free, members, level, n);
  const scores = members.map((i) => prefer.score(i));
  if (scores.every((s) => s === prefer.max)) return pick(state, free, members, level, n);
  const threshold = [...scores].sort((a, b) => b - a)[n - 1]!;
  const must: number[] = [];
  const ties: number[] = [];
  members.forEach((i, k) => {
    if (scores[k]! > threshold) must.push(i);
    else if (scores[k] === threshold) ties.push(i);
  });
  must.sort((a, b) => prefer.score(b) - prefer.score(a) || compareNodes(state, free, a, b));
  return [...must, ...pick(state, free, ties, level, n - must.length)];
}

/**
 * Best fit inside a domain: if one child domain holds all `n`, the tightest such child;
 * otherwise whole children, largest first (fewest domains spanned), and the remainder in
 * the tightest child that holds it; single nodes tightest first.
 */
export function pick(state: ClusterState, free: ArrayLike<number>, members: number[], level: DomainLevel, n: number): number[] {
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
