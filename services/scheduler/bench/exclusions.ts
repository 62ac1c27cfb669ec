// The exclusion-list scenario shared by exclusions.bench.ts and scheduler.bench.ts: one
// planCycle over a long queue in which every job excludes different nodes (recovery adds the
// nodes blamed for each job), against the same queue without lists. Exclusion lists used to
// be part of the planner's shape key, so each job paid for its own static fit, explanation
// and searches: 20,000 such jobs took about 20 s per cycle here, the queue without lists
// about 0.6 s.
import { performance, PerformanceObserver } from 'node:perf_hooks';
import { PRIORITY_CLASSES, planCycle, type JobRequest, type NodeView, type RunningJob, type SchedulingConfigInput } from '../src/placement/index.js';
import { buildCluster, generateJobs, loadDurations, rng, schedulingConfig, type ClusterSpec } from './workload.js';

export interface ExclusionScenario {
  nodes: number;
  pending: number;
  /** Share of nodes with every GPU busy (the rest are partly busy). */
  busy: number;
  /** Measured cycles of each queue (after the warm-up rounds). */
  reps: number;
  seed: number;
  /** Rounds of both queues run first and not measured (the JIT settles); 3 when absent. */
  warmup?: number;
}

/** Median and p99 (nearest rank) of a sample. */
export interface Spread {
  median: number;
  p99: number;
}

export interface QueueFigures {
  /** Milliseconds per cycle: wall clock, CPU time of the process, and GC pauses within. */
  wall: Spread;
  cpu: Spread;
  gc: Spread;
  /** Jobs the cycle placed. */
  placed: number;
}

export interface ExclusionFigures {
  runningJobs: number;
  distinctLists: number;
  cycles: number;
  plain: QueueFigures;
  lists: QueueFigures;
  /** What the lists cost, paired by round (lists minus plain in the same round): less exposed to drift in machine load. */
  extra: { wall: Spread; cpu: Spread };
}

export function spread(xs: readonly number[]): Spread {
  const s = [...xs].sort((a, b) => a - b);
  const rank = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
  return { median: s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2, p99: rank(0.99) };
}

const NOW = 10 * 3600_000;

/**
 * A busy cluster in steady state: high-priority running jobs, spread over the tenants in
 * proportion to their quotas, hold every GPU of `busy` of the nodes and some of the rest.
 * The queue (at most high) mostly waits, so the figure is the planner's own cost.
 */
function world(spec: ClusterSpec, s: Omit<ExclusionScenario, 'reps'>, random: () => number): { nodes: NodeView[]; running: RunningJob[] } {
  const nodes = buildCluster(spec, rng(s.seed));
  const running: RunningJob[] = [];
  nodes.forEach((n, i) => {
    const used = random() < s.busy ? n.gpuCount : 1 + Math.floor(random() * (n.gpuCount - 1));
    const gpus = n.freeGpus.slice(0, used);
    n.freeGpus = n.freeGpus.slice(used);
    running.push({
      id: `r${i}`,
      tenant: ['ml-research', 'ml-research', 'inference', 'exploration'][i % 4]!,
      priority: PRIORITY_CLASSES.high,
      ranks: [{ rank: 0, node: n.name, gpus }],
      startTime: NOW - Math.floor(random() * 3600_000),
      timeLimitSec: 3600 + Math.floor(random() * 7200),
    });
  });
  return { nodes, running };
}

/** Distinct lists: the k-th job names node k mod N, up to two random others and a node that has left. */
function withLists(jobs: readonly JobRequest[], nodes: readonly NodeView[], random: () => number): JobRequest[] {
  return jobs.map((j, k) => {
    const names = new Set([nodes[k % nodes.length]!.name]);
    const extra = Math.floor(random() * 3);
    for (let e = 0; e < extra; e++) names.add(nodes[Math.floor(random() * nodes.length)]!.name);
    return { ...j, excludeNodes: [...names, `retired-${k}`] };
  });
}

/** The scenario's inputs: one snapshot, and the queue without and with lists. */
export interface ExclusionWorld {
  nodes: NodeView[];
  running: RunningJob[];
  plain: JobRequest[];
  lists: JobRequest[];
  config: SchedulingConfigInput;
  now: number;
}

export function exclusionWorld(s: Omit<ExclusionScenario, 'reps'>): ExclusionWorld {
  const spec: ClusterSpec = { nodes: s.nodes, gpusPerNode: 8, nodesPerLeaf: 32, leavesPerSpine: 16, nvlinkSize: 1 };
  const config = schedulingConfig(spec.nodes * spec.gpusPerNode);
  const random = rng(s.seed + 31);
  const { nodes, running } = world(spec, s, random);
  const plain: JobRequest[] = generateJobs(s.pending, spec, loadDurations(), rng(s.seed + 1)).map(({ durationSec: _d, checkpointEverySec: _c, ...j }) => ({
    ...j,
    priority: Math.min(j.priority, PRIORITY_CLASSES.high),
    submitTime: NOW - 1000,
  }));
  return { nodes, running, plain, lists: withLists(plain, nodes, random), config, now: NOW };
}

/**
 * Plans one cycle of each queue, alternately (both see the same machine), `reps` times after
 * the warm-up rounds. Async only to let GC pauses be reported between cycles.
 */
export async function exclusionCycle(s: ExclusionScenario): Promise<ExclusionFigures> {
  const { nodes, running, plain, lists, config } = exclusionWorld(s);
  const gc = new PerformanceObserver(() => {});
  gc.observe({ entryTypes: ['gc'] });
  const samples = { plain: { wall: [] as number[], cpu: [] as number[], gc: [] as number[] }, lists: { wall: [] as number[], cpu: [] as number[], gc: [] as number[] } };
  const placed = { plain: 0, lists: 0 };
  const warmup = s.warmup ?? 3;
  for (let rep = 0; rep < warmup + s.reps; rep++) {
    for (const [name, queue] of [['plain', plain], ['lists', lists]] as const) {
      gc.takeRecords();
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const plan = planCycle(nodes, queue, { running, now: NOW, config });
      const wall = performance.now() - t0;
      const cpu = process.cpuUsage(c0);
      // GC entries are queued after the pause: one turn of the event loop delivers them.
      await new Promise((resolve) => setImmediate(resolve));
      const paused = gc.takeRecords().reduce((ms, e) => ms + e.duration, 0);
      if (rep >= warmup) {
        samples[name].wall.push(wall);
        samples[name].cpu.push((cpu.user + cpu.system) / 1000);
        samples[name].gc.push(paused);
      }
      placed[name] = plan.placements.length;
    }
  }
  gc.disconnect();
  const figures = (name: 'plain' | 'lists'): QueueFigures => ({ wall: spread(samples[name].wall), cpu: spread(samples[name].cpu), gc: spread(samples[name].gc), placed: placed[name] });
  const paired = (k: 'wall' | 'cpu') => spread(samples.lists[k].map((x, r) => x - samples.plain[k][r]!));
  return {
    runningJobs: running.length,
    distinctLists: new Set(lists.map((j) => j.excludeNodes.join())).size,
    cycles: s.reps,
    plain: figures('plain'),
    lists: figures('lists'),
    extra: { wall: paired('wall'), cpu: paired('cpu') },
  };
}
