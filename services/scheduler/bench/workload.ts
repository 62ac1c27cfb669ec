// Synthetic cluster and job stream for the scheduler benchmark.
//
// Durations are resampled from a real trace when it is readable: Alibaba's 2023 GPU cluster
// trace (openb_pod_list_default, first 500 pods; deletion_time - scheduled_time). That trace
// has no multi-node jobs, so the size mix is synthetic, shaped like an LLM training cluster:
// mostly sub-node and single-node jobs, a tail of gangs up to 256 nodes.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../node-agent/src/device/sim/rng.js';
import { PRIORITY_CLASSES, type JobRequest, type NodeView, type SchedulingConfigInput, type TopologyNeed } from '../src/placement/index.js';

/** A seeded uniform [0, 1) stream: the simulator's mulberry32, so a seed means the same everywhere. */
export function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

export interface ClusterSpec {
  nodes: number;
  gpusPerNode: number;
  nodesPerLeaf: number;
  leavesPerSpine: number;
  nvlinkSize: number;
}

export const GPU_TYPES = ['H100', 'B200'] as const;

/** The last quarter of spines have B200s, the rest H100s; a few nodes are not READY. */
export function buildCluster(spec: ClusterSpec, random: () => number): NodeView[] {
  const nodes: NodeView[] = [];
  const perSpine = spec.nodesPerLeaf * spec.leavesPerSpine;
  const spines = Math.ceil(spec.nodes / perSpine);
  const b200From = Math.max(1, Math.floor(spines * 0.75));
  for (let i = 0; i < spec.nodes; i++) {
    const leaf = Math.floor(i / spec.nodesPerLeaf);
    const spine = Math.floor(i / perSpine);
    const r = random();
    nodes.push({
      name: `gpu-${String(i).padStart(5, '0')}`,
      state: r < 0.005 ? 'QUARANTINED' : r < 0.008 ? 'DRAINING' : 'READY',
      gpuModel: spine >= b200From ? 'B200' : 'H100',
      gpuCount: spec.gpusPerNode,
      freeGpus: Array.from({ length: spec.gpusPerNode }, (_, g) => g),
      labels: { rack: `r${Math.floor(i / 8)}` },
      topology: {
        nvlinkDomain: `nvl-${Math.floor(i / spec.nvlinkSize)}`,
        leafSwitch: `leaf-${leaf}`,
        spine: `spine-${spine}`,
        rack: `rack-${Math.floor(i / 8)}`,
      },
    });
  }
  return nodes;
}

export const TENANTS = ['ml-research', 'inference', 'exploration'] as const;

export function schedulingConfig(totalGpus: number): SchedulingConfigInput {
  return {
    tenants: {
      'ml-research': { weight: 2, nominalGpus: Math.floor(totalGpus * 0.5), cohort: 'shared' },
      inference: { weight: 1, nominalGpus: Math.floor(totalGpus * 0.25), cohort: 'shared', borrowingLimitGpus: Math.floor(totalGpus * 0.1) },
      exploration: { weight: 1, nominalGpus: Math.floor(totalGpus * 0.25), cohort: 'shared', borrowingLimitGpus: Math.floor(totalGpus * 0.25) },
    },
    fairShare: { halfLifeSec: 24 * 3600 },
    preemption: { enabled: true, windowSec: 3600, nearCompletionFraction: 0.5 },
  };
}

export interface SimJob extends JobRequest {
  /** Seconds of work at full speed. */
  durationSec: number;
  /** How often it commits a checkpoint, in seconds of work; 0 = never (a preemption loses all its work). */
  checkpointEverySec: number;
}

/** The checkpoint intervals generateJobs draws (a synthetic mix: the traces have none). */
export const CHECKPOINT_MIX = 'gangs every 15, 30 or 60 min; single-node and smaller jobs: 60% every 60 min, 40% never';

export interface DurationSource {
  samples: number[];
  description: string;
}

/** Run durations from the trace excerpt in bench/data (see its PROVENANCE.md); BENCH_TRACE overrides. */
export function loadDurations(): DurationSource {
  const path = process.env.BENCH_TRACE ?? fileURLToPath(new URL('./data/alibaba-gpu-v2023/openb_pod_list_default.head501.csv', import.meta.url));
  if (!existsSync(path)) throw new Error(`duration trace ${path} is missing (services/scheduler/bench/data holds the excerpt the benchmark uses)`);
  const [header, ...rows] = readFileSync(path, 'utf8').trim().split('\n');
  const cols = header!.split(',');
  const del = cols.indexOf('deletion_time');
  const sch = cols.indexOf('scheduled_time');
  const gpu = cols.indexOf('num_gpu');
  if (del < 0 || sch < 0 || gpu < 0) throw new Error(`duration trace ${path} lacks deletion_time, scheduled_time or num_gpu columns`);
  const samples = rows
    .map((r) => r.split(','))
    .filter((c) => c[del] !== '' && c[sch] !== '' && Number(c[gpu]) > 0)
    .map((c) => Number(c[del]) - Number(c[sch]))
    .filter((d) => Number.isFinite(d) && d > 0);
  if (samples.length < 50) throw new Error(`duration trace ${path} has only ${samples.length} usable rows`);
  return { samples, description: `${samples.length} durations from ${path.endsWith('head501.csv') ? 'the Alibaba GPU trace v2023 (openb pods, inference and training pods; bench/data)' : path}` };
}

export function generateJobs(count: number, spec: ClusterSpec, durations: DurationSource, random: () => number, load = 1.1): SimJob[] {
  const pickInt = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const pow2 = (lo: number, hi: number) => 2 ** pickInt(Math.log2(lo), Math.log2(hi));
  const sizes: { w: number; make: () => [number, number] }[] = [
    { w: 0.42, make: () => [1, 1] },
    { w: 0.06, make: () => [1, 2] },
    { w: 0.1, make: () => [1, 4] },
    { w: 0.2, make: () => [1, 8] },
    { w: 0.13, make: () => [pow2(2, 8), 8] },
    { w: 0.06, make: () => [pow2(16, 32), 8] },
    { w: 0.025, make: () => [pow2(64, 128), 8] },
    { w: 0.005, make: () => [256, 8] },
  ];
  const priorities: [number, number][] = [
    [0.01, PRIORITY_CLASSES.critical],
    [0.1, PRIORITY_CLASSES.high],
    [0.6, PRIORITY_CLASSES.normal],
    [0.19, PRIORITY_CLASSES.low],
    [0.1, PRIORITY_CLASSES.preemptible],
  ];
  const weighted = <T>(table: [number, T][]): T => {
    let r = random();
    for (const [w, v] of table) {
      if ((r -= w) < 0) return v;
    }
    return table[table.length - 1]![1];
  };
  const jobs: SimJob[] = [];
  let work = 0;
  for (let k = 0; k < count; k++) {
    const [nodes, gpusPerNode] = weighted(sizes.map((s) => [s.w, s]))!.make();
    const base = durations.samples[Math.floor(random() * durations.samples.length)]!;
    // Bigger jobs run longer (training vs. notebooks); clamp to [1 min, 2 days].
    const durationSec = Math.round(Math.min(2 * 86400, Math.max(60, base * (1 + Math.log2(nodes)))));
    const noLimit = nodes === 1 && random() < 0.05;
    const timeLimitSec = noLimit ? 0 : Math.ceil((durationSec * (1.2 + random() * 1.8)) / 60) * 60;
    const tenant = nodes >= 16 ? weighted<string>([[0.7, 'ml-research'], [0.3, 'exploration']]) : TENANTS[pickInt(0, 2)]!;
    const topology: TopologyNeed =
      nodes > 1 && nodes <= spec.nodesPerLeaf && random() < 0.3 ? 'same-switch' : nodes > spec.nodesPerLeaf && random() < 0.2 ? 'same-spine' : 'any';
    const t = random();
    jobs.push({
      id: `j${String(k).padStart(6, '0')}`,
      tenant,
      nodes,
      gpusPerNode,
      gpuTypes: t < 0.6 ? [] : t < 0.9 ? ['H100'] : ['B200'],
      priority: weighted(priorities),
      submitTime: 0,
      timeLimitSec,
      topology,
      nodeSelector: {},
      excludeNodes: [],
      durationSec,
      checkpointEverySec: 0,
    });
    work += nodes * gpusPerNode * durationSec;
  }
  // Poisson arrivals over a span that offers `load` x the cluster's capacity.
  const span = work / (load * spec.nodes * spec.gpusPerNode);
  const times = jobs.map(() => random() * span).sort((a, b) => a - b);
  jobs.forEach((j, k) => (j.submitTime = Math.round(times[k]! * 1000)));
  // Drawn last, so the sizes, durations and arrivals above do not depend on them.
  for (const j of jobs) {
    const r = random();
    j.checkpointEverySec = j.nodes > 1 ? [900, 1800, 3600][Math.floor(r * 3)]! : r < 0.6 ? 3600 : 0;
  }
  return jobs;
}
