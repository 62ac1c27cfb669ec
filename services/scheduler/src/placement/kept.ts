// Kept ranks (recovery). A recovery attempt may keep some node ranks on the nodes they ran on
// (all of them for a restart in place, the healthy ones when faulty nodes are replaced). The
// kept ranks stay if each node still passes the job's filters and has gpusPerNode free GPUs;
// the missing ranks take new nodes inside a domain that also holds the kept ones and meets
// the job's topology need. Rank numbers do not move: kept ranks keep theirs and new nodes
// take the missing numbers in ascending order. When this is impossible the job is placed as
// a whole gang instead (topology.ts), and Placement.kept says which happened.
import type { ClusterState } from './cluster-state.js';
import { capacityReason, choose, domainName, domainOf, LEVEL_LABEL, LEVELS_FOR, nodeFits, satisfies, topSum } from './domains.js';
import type { FilterStatus, Scenario } from './framework/types.js';
import type { JobFit } from './static-fit.js';
import type { GangChoice } from './topology.js';
import type { DomainLevel, JobRequest } from './types.js';

export interface KeepPlan {
  /** Per rank: the index of the node it keeps, or -1 for a rank that needs a new node. */
  readonly nodeOf: Int32Array;
  /** Per rank: the GPU indices a kept rank had (a preference only). */
  readonly gpus: readonly (readonly number[] | undefined)[];
  /** Why the ranks cannot stay in any scenario (a kept node is gone, or a static filter rejects it). */
  readonly blocked?: string;
}

export type KeptOutcome = GangChoice | { ok: false; why: string };

/**
 * The job's kept ranks against the snapshot, once per cycle; undefined when it keeps none.
 * `staticReason` is the first static filter (exclusions included) that rejects a node.
 */
export function resolveKeep(state: ClusterState, job: JobRequest, staticReason: (i: number) => FilterStatus): KeepPlan | undefined {
  if (!job.keep || job.keep.length === 0) return undefined;
  const nodeOf = new Int32Array(Math.max(0, job.nodes)).fill(-1);
  const gpus: (readonly number[] | undefined)[] = Array.from({ length: nodeOf.length }, () => undefined);
  const seen = new Set<number>();
  let blocked: string | undefined;
  for (const r of job.keep) {
    const i = state.byName.get(r.node);
    if (!Number.isInteger(r.rank) || r.rank < 0 || r.rank >= nodeOf.length || nodeOf[r.rank] !== -1) {
      blocked ??= `rank ${r.rank} is not a distinct rank of a ${job.nodes}-node job`;
    } else if (i === undefined) {
      blocked ??= `rank ${r.rank} cannot stay on ${r.node} (not in the cluster)`;
    } else if (seen.has(i)) {
      blocked ??= `two ranks keep node ${r.node}`;
    } else {
      seen.add(i);
      const reason = staticReason(i);
      if (reason !== undefined) blocked ??= `rank ${r.rank} cannot stay on ${r.node} (${reason})`;
      nodeOf[r.rank] = i;
      gpus[r.rank] = r.gpus;
    }
  }
  return { nodeOf, gpus, ...(blocked !== undefined ? { blocked } : {}) };
}

/** "0-2, 5": rank numbers for explanations. */
export function formatRanks(ranks: readonly number[]): string {
  const parts: string[] = [];
  for (let k = 0; k < ranks.length; ) {
    let e = k;
    while (e + 1 < ranks.length && ranks[e + 1] === ranks[e]! + 1) e++;
    parts.push(e === k ? String(ranks[k]) : `${ranks[k]}-${ranks[e]}`);
    k = e + 1;
  }
  return parts.join(', ');
}

/** The kept ranks on their nodes and the missing ones on the best replacements, or why not. */
export function selectKept(state: ClusterState, job: JobRequest, fit: JobFit, scenario: Scenario, keep: KeepPlan): KeptOutcome {
  const fail = (why: string): KeptOutcome => ({ ok: false, why: `could not keep ranks on their nodes: ${why}` });
  if (keep.blocked !== undefined) return fail(keep.blocked);
  const g = job.gpusPerNode;
  const kept: number[] = [];
  const keptRanks: number[] = [];
  const missing: number[] = [];
  for (let r = 0; r < keep.nodeOf.length; r++) {
    const i = keep.nodeOf[r]!;
    if (i === -1) {
      missing.push(r);
      continue;
    }
    if (!nodeFits(fit.capacity, scenario, i, g)) return fail(`rank ${r} cannot stay on ${state.nodes[i]!.name} (${capacityReason(state, job, i, scenario, fit.capacity) ?? 'capacity'})`);
    kept.push(i);
    keptRanks.push(r);
  }
  // The domains, smallest first, that hold every kept node and meet the job's topology need.
  const levels = LEVELS_FOR[job.topology];
  const need = levels[levels.length - 1]!;
  const options: { level: DomainLevel; d: number }[] = [];
  for (const level of levels) {
    if (level === 'cluster') options.push({ level, d: 0 });
    else {
      const d = domainOf(state, level, kept[0]!);
      if (kept.every((i) => domainOf(state, level, i) === d) && satisfies(state, level, d, need)) options.push({ level, d });
    }
  }
  if (options.length === 0) return fail(`the kept nodes are not in one ${LEVEL_LABEL[need]}`);
  const name = (o: { level: DomainLevel; d: number }) => domainName(state, o.level, o.d);
  if (missing.length === 0) {
    return { ok: true, nodes: kept, level: options[0]!.level, domain: name(options[0]!), explanation: `restarted in place: all ${kept.length} ranks kept on their nodes (${name(options[0]!)})`, kept: true, gpus: [...keep.gpus] };
  }
  const m = missing.length;
  const taken = new Set(kept);
  const replacements: number[] = [];
  for (const i of fit.candidates) if (!taken.has(i) && nodeFits(fit.capacity, scenario, i, g)) replacements.push(i);
  // The smallest domain whose m best replacements score as well as the best anywhere allowed:
  // locality decides only among equally preferred choices (spares, healthy nodes first).
  const prefer = fit.prefer;
  let chosen: { level: DomainLevel; d: number; members: number[]; worth: number } | undefined;
  let widest = 0;
  for (const o of options) {
    const members = o.level === 'cluster' ? replacements : replacements.filter((i) => domainOf(state, o.level as Exclude<DomainLevel, 'cluster'>, i) === o.d);
    widest = members.length;
    if (members.length < m) continue;
    const worth = prefer ? topSum(members.map((i) => prefer.score(i)), m) : 0;
    if (!chosen || worth > chosen.worth) chosen = { ...o, members, worth };
  }
  if (!chosen) return fail(`needs ${m} more node(s) with ${g} free GPUs in ${name(options[options.length - 1]!)}, ${widest} eligible`);
  const fresh = choose(state, scenario.free, chosen.members, chosen.level, m, prefer);
  const nodes = Array.from(keep.nodeOf);
  missing.forEach((r, k) => (nodes[r] = fresh[k]!));
  const freshNames = fresh.map((i) => state.nodes[i]!.name).join(', ');
  return {
    ok: true,
    nodes,
    level: chosen.level,
    domain: name(chosen),
    explanation: `kept rank(s) ${formatRanks(keptRanks)} on their nodes; rank(s) ${formatRanks(missing)} on ${freshNames} (${name(chosen)})`,
    kept: true,
    gpus: [...keep.gpus],
  };
}
