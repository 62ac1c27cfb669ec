// The exclusion-list scenario shared by exclusions.bench.ts and scheduler.bench.ts: one
// planCycle over a long queue in which every job excludes different nodes (recovery adds the
// nodes blamed for each job), against the same queue without lists. Exclusion lists used to
// be part of the planner's shape key, so each job paid for its own static fit, explanation
// and searches: 20,000 such jobs took about 20 s per cycle here, the queue without lists
// about 0.6 s.
import { performance } from 'node:perf_hooks';
import { PRIORITY_CLASSES, planCycle, type JobRequest, type NodeView, type RunningJob, type SchedulingConfigInput } from '../src/placement/index.js';
import { buildCluster, generateJobs, loadDurations, rng, schedulingConfig, type ClusterSpec } from './workload.js';

export interface ExclusionScenario {
  nodes: number;
  pending: number;
  /** Share of nodes with every GPU busy (the rest are partly busy). */
  busy: number;
  reps: number;
  seed: number;
}

export interface ExclusionFigures {
  runningJobs: number;
  distinctLists: number;
  /** Median ms per cycle, and what the cycle decided. */
  plain: { ms: number; placed: number };
  lists: { ms: number; placed: number };
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
  const plain: JobRequest[] = generateJobs(s.pending, spec, loadDurations(), rng(s.seed + 1)).map(({ durationSec: _, ...j }) => ({
    ...j,
    priority: Math.min(j.priority, PRIORITY_CLASSES.high),
    submitTime: NOW - 1000,
  }));
  return { nodes, running, plain, lists: withLists(plain, nodes, random), config, now: NOW };
}

export function exclusionCycle(s: ExclusionScenario): ExclusionFigures {
  const { nodes, running, plain, lists, config } = exclusionWorld(s);
  const samples = { plain: [] as number[], lists: [] as number[] };
  const placed = { plain: 0, lists: 0 };
  // Alternate the two queues so both see the same machine; the first round warms the JIT.
  for (let rep = 0; rep <= s.reps; rep++) {
    for (const [name, queue] of [['plain', plain], ['lists', lists]] as const) {
      const t0 = performance.now();
      const plan = planCycle(nodes, queue, { running, now: NOW, config });
      if (rep > 0) samples[name].push(performance.now() - t0);
      placed[name] = plan.placements.length;
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return {
    runningJobs: running.length,
    distinctLists: new Set(lists.map((j) => j.excludeNodes.join())).size,
    plain: { ms: median(samples.plain), placed: placed.plain },
    lists: { ms: median(samples.lists), placed: placed.lists },
  };
}
