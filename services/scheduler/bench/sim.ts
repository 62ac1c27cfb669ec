// Discrete-event simulation over simulated time. Jobs arrive, the scheduler runs a cycle
// (at most every cycleSec of simulated time, and only when something changed), placements
// start jobs, jobs end after their duration, preempted jobs release their GPUs after a grace
// period and go back to the queue having lost the work since their last checkpoint (each job
// has its own checkpoint interval; some never checkpoint).
// The simulator checks every plan it applies: a double-booked GPU aborts the run.
import { performance } from 'node:perf_hooks';
import { accrueUsage, allocationsOf, usageAt, type JobRequest, type NodeView, type Plan, type RunningJob, type UsageRecord } from '../src/placement/index.js';
import type { SimJob } from './workload.js';

export interface SchedulerUnderTest {
  name: string;
  plan(nodes: NodeView[], pending: JobRequest[], ctx: { running: RunningJob[]; now: number; usage: Record<string, number>; clock: () => number }): Plan;
}

export interface SimOptions {
  cycleSec: number;
  /** Cycle interval when nothing changed but jobs wait (backfill windows open over time). */
  idleCycleSec: number;
  graceSec: number;
  halfLifeSec: number;
  /** A preemption of a job past this share of its time limit counts as "near completion". */
  nearCompletionFraction: number;
  nodesPerLeaf: number;
}

export const SIZE_BUCKETS = ['<1 node', '1 node', '2-8 nodes', '16-32 nodes', '64-128 nodes', '256 nodes'] as const;
export type SizeBucket = (typeof SIZE_BUCKETS)[number];

export function bucketOf(nodes: number, gpusPerNode: number, gpuCount = 8): SizeBucket {
  if (nodes === 1) return gpusPerNode < gpuCount ? '<1 node' : '1 node';
  if (nodes <= 8) return '2-8 nodes';
  if (nodes <= 32) return '16-32 nodes';
  if (nodes <= 128) return '64-128 nodes';
  return '256 nodes';
}

export interface SimResult {
  name: string;
  cycles: number;
  cycleMs: number;
  decisions: number;
  placements: number;
  latencies: Map<SizeBucket, number[]>;
  /** Busy GPU share while jobs were still arriving (steady state), and until the last job ended. */
  utilisationArrivals: number;
  utilisationMakespan: number;
  makespanSec: number;
  /** Waits of the jobs that started, seconds. */
  waits: Map<SizeBucket, number[]>;
  /** Waits of every job, those never started counted until the simulation ended (censored). */
  censoredWaits: Map<SizeBucket, number[]>;
  neverStarted: Map<SizeBucket, number>;
  gangsLeafEligible: number;
  gangsInOneLeaf: number;
  preemptions: number;
  /** Distinct jobs preempted, and the most times one job was. */
  preemptedJobs: number;
  maxPreemptionsPerJob: number;
  /** Preemptions of jobs past nearCompletionFraction of their time limit. */
  preemptedNearCompletion: number;
  /** GPU-hours held by jobs, work lost since the last checkpoint, held during preemption grace. */
  busyGpuHours: number;
  lostGpuHours: number;
  graceGpuHours: number;
  /** Work that counts: busy - lost - grace, GPU-hours; and as a share of capacity to the last job end. */
  goodputGpuHours: number;
  goodput: number;
  /** Goodput while jobs were still arriving: busy - lost - grace of preemptions in that span, over capacity. */
  goodputArrivals: number;
  unfinished: number;
}

interface Live {
  job: SimJob;
  ranks: { rank: number; node: string; gpus: number[] }[];
  start: number;
  /** Seconds of work left when this attempt started. */
  remaining: number;
  end: number;
  terminatingUntil?: number;
  preemptedAt?: number;
}

class MinHeap<T> {
  private items: { key: number; value: T }[] = [];
  get size(): number {
    return this.items.length;
  }
  peek(): number {
    return this.items[0]?.key ?? Infinity;
  }
  push(key: number, value: T): void {
    const a = this.items;
    a.push({ key, value });
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]!.key <= a[i]!.key) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }
  pop(): T {
    const a = this.items;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l]!.key < a[m]!.key) m = l;
        if (r < a.length && a[r]!.key < a[m]!.key) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top.value;
  }
}

export function simulate(nodes: readonly NodeView[], jobs: readonly SimJob[], scheduler: SchedulerUnderTest, o: SimOptions): SimResult {
  const totalGpus = nodes.reduce((n, v) => n + v.gpuCount, 0);
  const free = nodes.map((n) => new Set(n.freeGpus));
  const index = new Map(nodes.map((n, i) => [n.name, i]));
  const leafOf = nodes.map((n) => n.topology.leafSwitch);
  const arrivals = [...jobs].sort((a, b) => a.submitTime - b.submitTime);
  const lastArrival = arrivals[arrivals.length - 1]?.submitTime ?? 0;
  const pending = new Map<string, { job: SimJob; remaining: number; preemptedAt?: number }>();
  const live = new Map<string, Live>();
  const ends = new MinHeap<{ id: string; start: number }>();
  const releases = new MinHeap<string>();
  const firstStart = new Map<string, number>();
  const done = new Set<string>();
  let usage: Record<string, UsageRecord> = {};
  const r: SimResult = {
    name: scheduler.name,
    cycles: 0,
    cycleMs: 0,
    decisions: 0,
    placements: 0,
    latencies: new Map(SIZE_BUCKETS.map((b) => [b, []])),
    utilisationArrivals: 0,
    utilisationMakespan: 0,
    makespanSec: 0,
    waits: new Map(SIZE_BUCKETS.map((b) => [b, []])),
    censoredWaits: new Map(SIZE_BUCKETS.map((b) => [b, []])),
    neverStarted: new Map(SIZE_BUCKETS.map((b) => [b, 0])),
    gangsLeafEligible: 0,
    gangsInOneLeaf: 0,
    preemptions: 0,
    preemptedJobs: 0,
    maxPreemptionsPerJob: 0,
    preemptedNearCompletion: 0,
    busyGpuHours: 0,
    lostGpuHours: 0,
    graceGpuHours: 0,
    goodputGpuHours: 0,
    goodput: 0,
    goodputArrivals: 0,
    unfinished: 0,
  };
  const timesPreempted = new Map<string, number>();
  /** GPU-seconds lost or in grace from preemptions while jobs were arriving. */
  let wasteArrivals = 0;

  let busy = 0;
  let busyIntegral = 0;
  let busyIntegralArrivals = 0;
  let lastT = arrivals[0]?.submitTime ?? 0;
  const t0 = lastT;
  const advance = (t: number) => {
    const dt = (t - lastT) / 1000;
    busyIntegral += busy * dt;
    if (lastT < lastArrival) busyIntegralArrivals += busy * ((Math.min(t, lastArrival) - lastT) / 1000);
    lastT = t;
  };
  const release = (l: Live) => {
    for (const rk of l.ranks) {
      const f = free[index.get(rk.node)!]!;
      for (const g of rk.gpus) f.add(g);
      busy -= rk.gpus.length;
    }
    live.delete(l.job.id);
  };

  let next = 0;
  let t = lastT;
  let lastCycle = -Infinity;
  let dirty = false;
  for (;;) {
    advance(t);
    let changed = false;
    while (ends.size > 0 && ends.peek() <= t) {
      const { id, start } = ends.pop();
      const l = live.get(id);
      if (!l || l.start !== start || l.terminatingUntil !== undefined) continue; // a stale end of a preempted attempt
      release(l);
      done.add(id);
      changed = true;
    }
    while (releases.size > 0 && releases.peek() <= t) {
      const l = live.get(releases.pop())!;
      const ran = (l.preemptedAt! - l.start) / 1000;
      const kept = checkpointed(l.job, ran);
      const gpus = l.ranks.reduce((n, rk) => n + rk.gpus.length, 0);
      r.lostGpuHours += ((ran - kept) * gpus) / 3600;
      r.graceGpuHours += ((t - l.preemptedAt!) / 1000 / 3600) * gpus;
      if (l.preemptedAt! < lastArrival) wasteArrivals += (ran - kept + (Math.min(t, lastArrival) - l.preemptedAt!) / 1000) * gpus;
      release(l);
      pending.set(l.job.id, { job: l.job, remaining: Math.max(1, l.remaining - kept), preemptedAt: l.preemptedAt! });
      changed = true;
    }
    while (next < arrivals.length && arrivals[next]!.submitTime <= t) {
      const j = arrivals[next++]!;
      pending.set(j.id, { job: j, remaining: j.durationSec });
      changed = true;
    }
    dirty ||= changed;
    // Events within one interval share a cycle; with nothing new, a periodic cycle still runs
    // because backfill windows open as time passes.
    const due = dirty ? lastCycle + o.cycleSec * 1000 : lastCycle + o.idleCycleSec * 1000;
    if (pending.size > 0 && t >= due) {
      lastCycle = t;
      dirty = false;
      usage = accrueUsage(usage, allocationsOf([...live.values()].map((l) => ({ tenant: l.job.tenant, ranks: l.ranks }))), t, o.halfLifeSec);
      cycle(t);
    }
    const wake = pending.size > 0 ? (dirty ? lastCycle + o.cycleSec * 1000 : lastCycle + o.idleCycleSec * 1000) : Infinity;
    const nextT = Math.min(next < arrivals.length ? arrivals[next]!.submitTime : Infinity, ends.peek(), releases.peek(), wake);
    if (nextT === Infinity) break;
    if (nextT === wake && live.size === 0 && releases.size === 0 && next >= arrivals.length && !dirty && r.cycles > 0 && lastCycle === t) {
      // Nothing running, nothing arriving, and the last cycle placed nothing new: stuck jobs.
      break;
    }
    t = Math.max(t + 1, nextT);
  }
  advance(lastT);
  r.makespanSec = (lastT - t0) / 1000;
  r.utilisationMakespan = busyIntegral / (totalGpus * Math.max(1, r.makespanSec));
  r.utilisationArrivals = busyIntegralArrivals / (totalGpus * Math.max(1, (lastArrival - t0) / 1000));
  r.goodputArrivals = (busyIntegralArrivals - wasteArrivals) / (totalGpus * Math.max(1, (lastArrival - t0) / 1000));
  r.unfinished = jobs.length - done.size;
  r.busyGpuHours = busyIntegral / 3600;
  r.goodputGpuHours = r.busyGpuHours - r.lostGpuHours - r.graceGpuHours;
  r.goodput = r.goodputGpuHours / ((totalGpus * Math.max(1, r.makespanSec)) / 3600);
  for (const j of jobs) {
    const b = bucketOf(j.nodes, j.gpusPerNode);
    const start = firstStart.get(j.id);
    if (start === undefined) r.neverStarted.set(b, r.neverStarted.get(b)! + 1);
    if (j.submitTime <= lastT) r.censoredWaits.get(b)!.push(((start ?? lastT) - j.submitTime) / 1000);
  }
  r.preemptedJobs = timesPreempted.size;
  r.maxPreemptionsPerJob = Math.max(0, ...timesPreempted.values());
  return r;

  /** Seconds of an attempt's `ran` seconds that its last checkpoint kept. */
  function checkpointed(job: SimJob, ran: number): number {
    return job.checkpointEverySec > 0 ? Math.floor(ran / job.checkpointEverySec) * job.checkpointEverySec : 0;
  }

  function cycle(now: number): void {
    const snapshot: NodeView[] = nodes.map((n, i) => ({ ...n, freeGpus: [...free[i]!].sort((a, b) => a - b) }));
    const queue: JobRequest[] = [...pending.values()].map((p) => p.job);
    const running: RunningJob[] = [...live.values()].map((l) => ({
      id: l.job.id,
      tenant: l.job.tenant,
      priority: l.job.priority,
      ranks: l.ranks,
      startTime: l.start,
      timeLimitSec: l.job.timeLimitSec,
      lastCheckpointTime: l.start + checkpointed(l.job, (now - l.start) / 1000) * 1000,
      ...(l.preemptedAt !== undefined ? { preemptedAt: l.preemptedAt } : {}),
      ...(l.terminatingUntil !== undefined ? { terminating: true } : {}),
    }));
    const started = performance.now();
    const plan = scheduler.plan(snapshot, queue, { running, now, usage: usageAt(usage, now, o.halfLifeSec), clock: () => performance.now() });
    r.cycleMs += performance.now() - started;
    r.cycles += 1;
    for (const timing of plan.timings ?? []) {
      r.decisions += 1;
      r.latencies.get(bucketOf(timing.nodes, timing.gpusPerNode))!.push(timing.ms);
    }
    for (const p of plan.placements) {
      const entry = pending.get(p.jobId);
      if (!entry) throw new Error(`${scheduler.name}: placed unknown or running job ${p.jobId}`);
      const j = entry.job;
      if (p.ranks.length !== j.nodes || p.ranks.some((rk) => rk.gpus.length !== j.gpusPerNode)) throw new Error(`${scheduler.name}: ${j.id} placed with the wrong shape`);
      if (j.nodes > 1 && j.nodes <= o.nodesPerLeaf) {
        // Could one leaf switch have held this gang, given what was placed before it?
        const perLeaf = new Map<string, number>();
        nodes.forEach((n, i) => {
          if (n.state === 'READY' && free[i]!.size >= j.gpusPerNode && (j.gpuTypes.length === 0 || j.gpuTypes.includes(n.gpuModel))) {
            perLeaf.set(leafOf[i]!, (perLeaf.get(leafOf[i]!) ?? 0) + 1);
          }
        });
        if ([...perLeaf.values()].some((c) => c >= j.nodes)) {
          r.gangsLeafEligible += 1;
          if (new Set(p.ranks.map((rk) => leafOf[index.get(rk.node)!])).size === 1) r.gangsInOneLeaf += 1;
        }
      }
      for (const rk of p.ranks) {
        const f = free[index.get(rk.node)!]!;
        for (const g of rk.gpus) {
          if (!f.has(g)) throw new Error(`${scheduler.name}: GPU ${g} on ${rk.node} double-booked by ${j.id}`);
          f.delete(g);
        }
        busy += rk.gpus.length;
      }
      pending.delete(j.id);
      if (!firstStart.has(j.id)) {
        firstStart.set(j.id, now);
        r.waits.get(bucketOf(j.nodes, j.gpusPerNode))!.push((now - j.submitTime) / 1000);
      }
      const l: Live = { job: j, ranks: p.ranks, start: now, remaining: entry.remaining, end: now + entry.remaining * 1000 };
      if (entry.preemptedAt !== undefined) l.preemptedAt = entry.preemptedAt;
      live.set(j.id, l);
      ends.push(l.end, { id: j.id, start: now });
      r.placements += 1;
    }
    for (const pre of plan.preemptions ?? []) {
      const l = live.get(pre.jobId);
      if (!l || l.terminatingUntil !== undefined) throw new Error(`${scheduler.name}: preempted ${pre.jobId}, which is not running`);
      l.terminatingUntil = now + o.graceSec * 1000;
      l.preemptedAt = now;
      timesPreempted.set(l.job.id, (timesPreempted.get(l.job.id) ?? 0) + 1);
      if (l.job.timeLimitSec > 0 && now - l.start >= o.nearCompletionFraction * l.job.timeLimitSec * 1000) r.preemptedNearCompletion += 1;
      releases.push(l.terminatingUntil, l.job.id);
      r.preemptions += 1;
    }
  }
}
