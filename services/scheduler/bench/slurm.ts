// A Slurm-grade baseline for the scheduler benchmark: what a site running Slurm with
//   PriorityType=priority/multifactor, SchedulerType=sched/backfill, TopologyPlugin=topology/tree,
//   SelectType=select/cons_tres, PreemptType=preempt/none
// would do with the same jobs, written as a small planner with the Plan shape planCycle has.
//
// Priority (priority/multifactor, https://slurm.schedmd.com/priority_multifactor.html):
//   priority = W_age * age + W_fairshare * fairshare + W_jobsize * jobsize + W_qos * qos
// each factor in [0, 1]:
//   age       = min(time pending, PriorityMaxAge) / PriorityMaxAge
//   fairshare = 2^(-U/S), the classic algorithm (PriorityFlags=NO_FAIR_TREE): U the tenant's
//               decayed usage over everyone's, S its shares over all shares (tenant weights)
//   jobsize   = GPUs asked / GPUs in the cluster (PriorityFavorSmall=NO: big jobs first)
//   qos       = the job's priority class / the highest class (a QOS per class)
// Ties: submit time, then id.
//
// Scheduling (sched/backfill, EASY flavour): jobs in priority order start when they fit. The
// first that does not fit gets a reservation at the earliest time enough nodes free up,
// computed from running jobs' time limits (start + limit; Slurm never knows real durations).
// Later jobs may start now ("backfill") if they end, by their own time limit, before that
// reservation, or if they only use GPUs the reservation does not need. At most
// bf_max_job_test jobs are looked at per cycle, as in Slurm. A job without a time limit is
// taken to run forever.
//
// Placement (topology/tree, best effort; cons_tres): a gang goes to the lowest switch level
// that can hold it, best fit (the leaf switch, else the spine, with the fewest eligible nodes
// that still suffice), filling leaves with the most eligible nodes first (fewest switches).
// A `same-switch` job is Slurm's --switches=1: it waits up to max_switch_wait for one leaf,
// then runs anywhere. Slurm has no "same spine" request: such jobs get the tree's best effort.
// Sub-node jobs go to the fitting node with the fewest free GPUs (packing), lowest GPU
// indices first. No preemption and no quotas (Slurm's defaults; GrpTRES limits are not modelled).
import type { DecisionTiming, JobRequest, NodeView, Plan, RunningJob } from '../src/placement/index.js';
import { PRIORITY_CLASSES } from '../src/placement/index.js';

export interface SlurmSettings {
  weightAge: number;
  weightFairshare: number;
  weightJobSize: number;
  weightQos: number;
  /** PriorityMaxAge, seconds. */
  maxAgeSec: number;
  /** SchedulerParameters=bf_max_job_test. */
  maxJobTest: number;
  /** SchedulerParameters=max_switch_wait, seconds. */
  maxSwitchWaitSec: number;
  /** Shares per tenant (sacctmgr fairshare=); tenants not listed get 1. */
  shares: Record<string, number>;
}

/** Slurm's defaults where it has them (bf_max_job_test 500, max_switch_wait 300 s), and the weights of its documentation's configuration example. */
export const SLURM_DEFAULTS: Omit<SlurmSettings, 'shares'> = {
  weightAge: 1000,
  weightFairshare: 10_000,
  weightJobSize: 1000,
  weightQos: 10_000,
  maxAgeSec: 24 * 3600,
  maxJobTest: 500,
  maxSwitchWaitSec: 300,
};

export interface SlurmContext {
  running: readonly RunningJob[];
  now: number;
  /** Decayed GPU-seconds per tenant (PriorityDecayHalfLife). */
  usage: Readonly<Record<string, number>>;
  clock?: () => number;
}

const MAX_QOS = Math.max(...Object.values(PRIORITY_CLASSES));

/** The multifactor priority of each pending job. */
export function multifactorPriority(jobs: readonly JobRequest[], totalGpus: number, ctx: Pick<SlurmContext, 'now' | 'usage'>, s: SlurmSettings): Map<string, number> {
  const tenants = new Set([...jobs.map((j) => j.tenant), ...Object.keys(s.shares)]);
  const shareOf = (t: string) => s.shares[t] ?? 1;
  const totalShares = [...tenants].reduce((n, t) => n + shareOf(t), 0);
  const totalUsage = Object.values(ctx.usage).reduce((n, u) => n + u, 0);
  const fairshare = new Map<string, number>();
  for (const t of tenants) {
    const u = totalUsage > 0 ? (ctx.usage[t] ?? 0) / totalUsage : 0;
    fairshare.set(t, 2 ** (-u / (shareOf(t) / totalShares)));
  }
  const out = new Map<string, number>();
  for (const j of jobs) {
    const age = Math.min(1, Math.max(0, (ctx.now - j.submitTime) / 1000 / s.maxAgeSec));
    const size = Math.min(1, (j.nodes * j.gpusPerNode) / totalGpus);
    const qos = Math.max(0, j.priority) / MAX_QOS;
    out.set(j.id, s.weightAge * age + s.weightFairshare * fairshare.get(j.tenant)! + s.weightJobSize * size + s.weightQos * qos);
  }
  return out;
}

interface Reservation {
  jobId: string;
  /** ms */
  shadowTime: number;
  /** GPUs per node a job running past shadowTime may still take without delaying it. */
  slack: Float64Array;
}

export function slurmCycle(nodes: readonly NodeView[], pending: readonly JobRequest[], ctx: SlurmContext, s: SlurmSettings): Plan {
  const n = nodes.length;
  const totalGpus = nodes.reduce((a, v) => a + v.gpuCount, 0);
  const free: number[][] = nodes.map((v) => (v.state === 'READY' ? [...v.freeGpus] : []));
  const leafIds = new Map<string, number>();
  const spineIds = new Map<string, number>();
  const leaf = Int32Array.from(nodes, (v) => leafIds.get(v.topology.leafSwitch) ?? (leafIds.set(v.topology.leafSwitch, leafIds.size), leafIds.size - 1));
  const spine = Int32Array.from(nodes, (v) => spineIds.get(v.topology.spine) ?? (spineIds.set(v.topology.spine, spineIds.size), spineIds.size - 1));
  const models = [...new Set(nodes.map((v) => v.gpuModel))];
  const model = Int32Array.from(nodes, (v) => models.indexOf(v.gpuModel));
  const index = new Map(nodes.map((v, i) => [v.name, i]));
  // Nodes per model with at least g free GPUs (g = 1..8): rules out most jobs of a full cluster in O(1).
  const maxGpus = Math.max(0, ...nodes.map((v) => v.gpuCount));
  const atLeast = models.map(() => new Int32Array(maxGpus + 1));
  for (let i = 0; i < n; i++) for (let g = 1; g <= free[i]!.length; g++) atLeast[model[i]!]![g]! += 1;
  const take = (i: number, g: number): number[] => {
    const before = free[i]!.length;
    const gpus = free[i]!.splice(0, g);
    for (let k = before - g + 1; k <= before; k++) atLeast[model[i]!]![k]! -= 1;
    return gpus;
  };

  const priority = multifactorPriority(pending, totalGpus, ctx, s);
  const queue = [...pending].sort((a, b) => priority.get(b.id)! - priority.get(a.id)! || a.submitTime - b.submitTime || (a.id < b.id ? -1 : 1));
  const plan: Plan = { placements: [], unschedulable: [], timings: [] };
  // Ends (by time limit) of what runs, including what this cycle starts: the reservation's clock.
  const ends: { end: number; ranks: { node: number; gpus: number }[] }[] = ctx.running.map((r) => ({
      end: r.timeLimitSec > 0 ? Math.max(ctx.now, r.startTime + r.timeLimitSec * 1000) : Infinity,
      ranks: r.ranks.map((rk) => ({ node: index.get(rk.node) ?? -1, gpus: rk.gpus.length })),
    }));
  let reservation: Reservation | undefined;

  const tested = Math.min(queue.length, s.maxJobTest);
  for (let q = 0; q < tested; q++) {
    const job = queue[q]!;
    const t0 = ctx.clock?.() ?? 0;
    const g = job.gpusPerNode;
    const okModel = (m: number) => job.gpuTypes.length === 0 || job.gpuTypes.includes(models[m]!);
    let upper = 0;
    for (let m = 0; m < models.length; m++) if (okModel(m) && g <= maxGpus) upper += atLeast[m]![g]!;
    const endsAt = job.timeLimitSec > 0 ? ctx.now + job.timeLimitSec * 1000 : Infinity;
    // Past the reservation's shadow time, only the GPUs it does not need are usable.
    const bounded = reservation !== undefined && endsAt > reservation.shadowTime ? reservation.slack : undefined;
    const usable = (i: number) => (okModel(model[i]!) ? Math.min(free[i]!.length, bounded ? bounded[i]! : Infinity) : 0);
    const waitedSec = (ctx.now - job.submitTime) / 1000;
    const oneLeaf = job.topology === 'same-switch' && waitedSec < s.maxSwitchWaitSec;
    const chosen = upper >= job.nodes ? selectTree(job.nodes, g, n, usable, leaf, spine, oneLeaf) : undefined;
    if (chosen) {
      const ranks = chosen.map((i, rank) => ({ rank, node: nodes[i]!.name, gpus: take(i, g) }));
      if (bounded) for (const i of chosen) bounded[i]! -= g;
      plan.placements.push({ jobId: job.id, ranks, domain: chosen.every((i) => leaf[i] === leaf[chosen[0]!]) ? 'leaf' : 'cluster' });
      ends.push({ end: endsAt, ranks: chosen.map((i) => ({ node: i, gpus: g })) });
    } else {
      if (reservation === undefined) reservation = reserve(job);
      plan.unschedulable.push({ jobId: job.id, queuePosition: q + 1, rejections: {}, message: reservation?.jobId === job.id ? 'Resources (reserved)' : 'Priority' });
    }
    const timing: DecisionTiming = { jobId: job.id, nodes: job.nodes, gpusPerNode: g, placed: chosen !== undefined, ms: (ctx.clock?.() ?? 0) - t0 };
    plan.timings!.push(timing);
  }
  return plan;

  /** The earliest time the job fits by time limits, and the GPUs later jobs must leave it; undefined if it never does. */
  function reserve(job: JobRequest): Reservation | undefined {
    const g = job.gpusPerNode;
    const okModel = (i: number) => job.gpuTypes.length === 0 || job.gpuTypes.includes(nodes[i]!.gpuModel);
    const at = free.map((f, i) => (nodes[i]!.state === 'READY' && okModel(i) ? f.length : 0));
    let eligible = at.filter((c) => c >= g).length;
    const sorted = ends.filter((e) => e.end !== Infinity).sort((a, b) => a.end - b.end);
    for (let k = 0; k < sorted.length && eligible < job.nodes; k++) {
      const e = sorted[k]!;
      for (const r of e.ranks) {
        if (r.node < 0 || nodes[r.node]!.state !== 'READY' || !okModel(r.node)) continue;
        const before = at[r.node]!;
        at[r.node] = before + r.gpus;
        if (before < g && at[r.node]! >= g) eligible += 1;
      }
      if (eligible >= job.nodes) {
        const chosen = selectTree(job.nodes, g, n, (i) => at[i]!, leaf, spine, false)!;
        const slack = new Float64Array(n).fill(Infinity);
        for (const i of chosen) slack[i] = at[i]! - g;
        return { jobId: job.id, shadowTime: e.end, slack };
      }
    }
    return undefined;
  }
}

/**
 * topology/tree's choice of `count` nodes with `g` usable GPUs each: one leaf switch (best
 * fit) if any can hold the job; else (unless `oneLeaf`) the best-fit spine, else the whole
 * tree, taking leaves with the most eligible nodes first. Single nodes: fewest usable GPUs
 * that suffice. Undefined if the job does not fit.
 */
function selectTree(count: number, g: number, n: number, usable: (i: number) => number, leaf: Int32Array, spine: Int32Array, oneLeaf: boolean): number[] | undefined {
  if (count === 1) {
    let best = -1;
    let bestFree = Infinity;
    for (let i = 0; i < n; i++) {
      const u = usable(i);
      if (u >= g && u < bestFree) {
        best = i;
        bestFree = u;
        if (u === g) break;
      }
    }
    return best < 0 ? undefined : [best];
  }
  const byLeaf = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    if (usable(i) < g) continue;
    let list = byLeaf.get(leaf[i]!);
    if (!list) byLeaf.set(leaf[i]!, (list = []));
    list.push(i);
  }
  let bestLeaf: number[] | undefined;
  for (const list of byLeaf.values()) if (list.length >= count && (!bestLeaf || list.length < bestLeaf.length)) bestLeaf = list;
  if (bestLeaf) return bestLeaf.slice(0, count);
  if (oneLeaf) return undefined;
  const bySpine = new Map<number, number[][]>();
  for (const list of byLeaf.values()) {
    const sp = spine[list[0]!]!;
    let leaves = bySpine.get(sp);
    if (!leaves) bySpine.set(sp, (leaves = []));
    leaves.push(list);
  }
  const total = (leaves: number[][]) => leaves.reduce((a, l) => a + l.length, 0);
  let bestSpine: number[][] | undefined;
  for (const leaves of bySpine.values()) {
    const t = total(leaves);
    if (t >= count && (!bestSpine || t < total(bestSpine))) bestSpine = leaves;
  }
  const leaves = bestSpine ?? [...byLeaf.values()];
  if (!bestSpine && total(leaves) < count) return undefined;
  const out: number[] = [];
  for (const list of [...leaves].sort((a, b) => b.length - a.length)) {
    for (const i of list) {
      out.push(i);
      if (out.length === count) return out;
    }
  }
  return undefined;
}
