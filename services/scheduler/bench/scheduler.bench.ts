// Scheduler benchmark: `pnpm bench:scheduler` (node --import tsx services/scheduler/bench/scheduler.bench.ts).
//
// 1. Micro-benchmarks of planCycle on a 4,096 x 8-GPU cluster: single-node placements per
//    second (one cycle placing a queue of single-node jobs), the latency of a whole cycle
//    deciding one 256-node gang (also with preemption of a full cluster), and a cycle over
//    20,000 pending jobs with 20,000 distinct exclusion lists (exclusions.ts).
// 2. A discrete-event simulation of a job stream through the same planCycle the service
//    calls, and through a naive baseline (FIFO, first fit, no topology/backfill/preemption).
// Prints a table for both and PASS/FAIL for the targets. Shrink with env vars:
//   BENCH_JOBS (20000) BENCH_NODES (4096) BENCH_SEED (1) BENCH_NVLINK (1 node per NVLink domain)
//   BENCH_LOAD (1.1 x capacity offered) BENCH_CYCLE_SEC (60) BENCH_GANG_REPS (200) BENCH_SINGLE_JOBS (2000)
import { performance } from 'node:perf_hooks';
import { PRIORITY_CLASSES, planCycle, type JobRequest, type NodeView, type RunningJob } from '../src/placement/index.js';
import { baselineCycle } from './baseline.js';
import { env } from './env.js';
import { exclusionCycle } from './exclusions.js';
import { SIZE_BUCKETS, simulate, type SchedulerUnderTest, type SimResult } from './sim.js';
import { buildCluster, generateJobs, loadDurations, rng, schedulingConfig, type ClusterSpec } from './workload.js';

const JOBS = env('BENCH_JOBS', 20_000);
const SEED = env('BENCH_SEED', 1);
const spec: ClusterSpec = { nodes: env('BENCH_NODES', 4096), gpusPerNode: 8, nodesPerLeaf: 32, leavesPerSpine: 16, nvlinkSize: env('BENCH_NVLINK', 1) };
const LOAD = env('BENCH_LOAD', 1.1);
const CYCLE_SEC = env('BENCH_CYCLE_SEC', 60);
const GANG_REPS = env('BENCH_GANG_REPS', 200);
const SINGLE_JOBS = env('BENCH_SINGLE_JOBS', 2000);
const totalGpus = spec.nodes * spec.gpusPerNode;
const config = schedulingConfig(totalGpus);

function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

const fmt = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')).join('\n');
}

/** Random partial occupancy: each node gets 0-8 GPUs used, as running jobs. */
function occupied(random: () => number, busyShare: number, priority: number = PRIORITY_CLASSES.normal): { nodes: NodeView[]; running: RunningJob[] } {
  const nodes = buildCluster(spec, rng(SEED));
  const running: RunningJob[] = [];
  nodes.forEach((n, i) => {
    if (random() > busyShare) return;
    const used = 1 + Math.floor(random() * n.gpuCount);
    const gpus = n.freeGpus.slice(0, used);
    n.freeGpus = n.freeGpus.slice(used);
    running.push({ id: `r${i}`, tenant: 'inference', priority, ranks: [{ rank: 0, node: n.name, gpus }], startTime: 0, timeLimitSec: 3600 + Math.floor(random() * 7200) });
  });
  return { nodes, running };
}

function baseJob(id: string, over: Partial<JobRequest>): JobRequest {
  return { id, tenant: 'ml-research', nodes: 1, gpusPerNode: 8, gpuTypes: [], priority: PRIORITY_CLASSES.normal, submitTime: 0, timeLimitSec: 3600, topology: 'any', nodeSelector: {}, excludeNodes: [], ...over };
}

function singleNodeThroughput(): { perSec: number; placed: number; ms: number } {
  const random = rng(SEED + 11);
  const runs: { perSec: number; placed: number; ms: number }[] = [];
  for (let rep = 0; rep < 6; rep++) {
    const { nodes, running } = occupied(random, 0.5);
    const jobs = Array.from({ length: SINGLE_JOBS }, (_, k) => {
      const r = random();
      const t = random();
      return baseJob(`s${k}`, {
        gpusPerNode: r < 0.5 ? 1 : r < 0.65 ? 2 : r < 0.8 ? 4 : 8,
        gpuTypes: t < 0.6 ? [] : t < 0.9 ? ['H100'] : ['B200'],
        tenant: ['ml-research', 'inference', 'exploration'][k % 3]!,
        submitTime: k,
      });
    });
    const t0 = performance.now();
    const plan = planCycle(nodes, jobs, { running, now: 10_000, config });
    const ms = performance.now() - t0;
    if (rep > 0) runs.push({ perSec: (plan.placements.length / ms) * 1000, placed: plan.placements.length, ms });
  }
  return runs.sort((a, b) => a.perSec - b.perSec)[Math.floor(runs.length / 2)]!;
}

function gangLatency(preempt: boolean): { p50: number; p99: number; max: number; cpuP50: number; cpuP99: number; placedShare: number; reps: number } {
  const random = rng(SEED + (preempt ? 23 : 17));
  const times: number[] = [];
  // Process CPU time too (V8's helper threads included): steadier than wall time when other work shares the machine.
  const cpu: number[] = [];
  let placed = 0;
  const reps = preempt ? Math.max(5, Math.floor(GANG_REPS / 4)) : GANG_REPS;
  for (let rep = 0; rep < reps + 3; rep++) {
    // Without preemption: a cluster 35% busy (a 256-node gang fits somewhere). With: every
    // node busy with preemptible work, and the gang is critical.
    const { nodes, running } = preempt ? occupied(random, 1, PRIORITY_CLASSES.preemptible) : occupied(random, 0.35);
    const gang = baseJob('gang', { nodes: 256, priority: preempt ? PRIORITY_CLASSES.critical : PRIORITY_CLASSES.high, topology: rep % 2 === 0 ? 'any' : 'same-spine' });
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const plan = planCycle(nodes, [gang], { running, now: 10_000, config: { ...config, tenants: {} } });
    const ms = performance.now() - t0;
    const c = process.cpuUsage(c0);
    if (rep < 3) continue; // warm-up
    times.push(ms);
    cpu.push((c.user + c.system) / 1000);
    if (plan.placements.length === 1 || plan.nominations.length === 1) placed += 1;
  }
  return { p50: quantile(times, 0.5), p99: quantile(times, 0.99), max: Math.max(...times), cpuP50: quantile(cpu, 0.5), cpuP99: quantile(cpu, 0.99), placedShare: placed / reps, reps };
}

const gantry: SchedulerUnderTest = {
  name: 'gantry',
  plan: (nodes, pending, ctx) => planCycle(nodes, pending, { running: ctx.running, now: ctx.now, usage: ctx.usage, config, clock: ctx.clock }),
};
const baseline: SchedulerUnderTest = { name: 'baseline', plan: (nodes, pending, ctx) => baselineCycle(nodes, pending, ctx.clock) };

async function main(): Promise<void> {
  const started = performance.now();
  const durations = loadDurations();
  console.log(`cluster: ${int.format(spec.nodes)} nodes x ${spec.gpusPerNode} GPUs (${int.format(totalGpus)}), ${spec.nodesPerLeaf} nodes/leaf switch, ${spec.leavesPerSpine} leaves/spine, NVLink domain ${spec.nvlinkSize} node(s), H100 + B200`);
  console.log(`jobs: ${int.format(JOBS)}, offered load ${LOAD} x capacity, durations: ${durations.description}; seed ${SEED}; node ${process.version}, one thread`);

  const single = singleNodeThroughput();
  const gang = gangLatency(false);
  const gangPre = gangLatency(true);
  const lists = await exclusionCycle({ nodes: spec.nodes, pending: 20_000, busy: 0.9, reps: 5, seed: SEED });
  console.log('\nmicro-benchmarks (whole planCycle calls, including building the cluster index):');
  console.log(table([
    ['case', 'result'],
    [`single-node queue of ${int.format(SINGLE_JOBS)} jobs, cluster 50% busy`, `${int.format(single.perSec)} placements/s (${single.placed} placed in ${fmt(single.ms, 1)} ms)`],
    [`256-node gang, cluster 35% busy (${gang.reps} snapshots)`, `p50 ${fmt(gang.p50)} ms, p99 ${fmt(gang.p99)} ms, max ${fmt(gang.max)} ms (CPU p50 ${fmt(gang.cpuP50)}, p99 ${fmt(gang.cpuP99)} ms); placed ${fmt(gang.placedShare * 100, 0)}%`],
    [`256-node critical gang, full cluster, preemption (${gangPre.reps})`, `p50 ${fmt(gangPre.p50)} ms, p99 ${fmt(gangPre.p99)} ms, max ${fmt(gangPre.max)} ms (CPU p50 ${fmt(gangPre.cpuP50)}, p99 ${fmt(gangPre.cpuP99)} ms); nominated ${fmt(gangPre.placedShare * 100, 0)}%`],
    [`20,000 pending, ${int.format(lists.distinctLists)} distinct exclusion lists, busy cluster`, `median ${fmt(lists.lists.wall.median, 1)} ms per cycle (same queue without lists ${fmt(lists.plain.wall.median, 1)} ms)`],
  ]));

  const nodes = buildCluster(spec, rng(SEED));
  const jobs = generateJobs(JOBS, spec, durations, rng(SEED + 1), LOAD);
  const simOptions = { cycleSec: CYCLE_SEC, idleCycleSec: 300, graceSec: 30, checkpointEverySec: 1800, halfLifeSec: 24 * 3600, nodesPerLeaf: spec.nodesPerLeaf };
  const results: SimResult[] = [];
  for (const s of [gantry, baseline]) {
    const t0 = performance.now();
    results.push(simulate(nodes, jobs, s, simOptions));
    console.log(`simulated ${s.name} in ${fmt((performance.now() - t0) / 1000, 1)} s wall`);
  }
  const [g, b] = results as [SimResult, SimResult];

  console.log('\nsimulation (same job stream, same cluster):');
  const rows: string[][] = [['metric', g.name, b.name]];
  const both = (label: string, f: (r: SimResult) => string) => rows.push([label, f(g), f(b)]);
  both('scheduling cycles', (r) => int.format(r.cycles));
  both('job decisions (evaluations)', (r) => int.format(r.decisions));
  both('decisions/s (all, in planCycle time)', (r) => int.format((r.decisions / r.cycleMs) * 1000));
  both('placements/s (in planCycle time)', (r) => int.format((r.placements / r.cycleMs) * 1000));
  both('mean planCycle ms', (r) => fmt(r.cycleMs / Math.max(1, r.cycles)));
  for (const bucket of SIZE_BUCKETS) {
    both(`decision ms p50/p99/max ${bucket}`, (r) => {
      const l = r.latencies.get(bucket)!;
      return l.length === 0 ? '-' : `${fmt(quantile(l, 0.5), 3)}/${fmt(quantile(l, 0.99), 3)}/${fmt(l.reduce((a, x) => Math.max(a, x), 0), 2)}`;
    });
  }
  both('GPU utilisation while jobs arrive', (r) => `${fmt(r.utilisationArrivals * 100, 1)}%`);
  both('GPU utilisation to last job end', (r) => `${fmt(r.utilisationMakespan * 100, 1)}%`);
  both('makespan (simulated hours)', (r) => fmt(r.makespanSec / 3600, 1));
  for (const bucket of SIZE_BUCKETS) {
    both(`mean wait (min) ${bucket}`, (r) => {
      const w = r.waits.get(bucket)!;
      return w.length === 0 ? '-' : fmt(w.reduce((a, x) => a + x, 0) / w.length / 60, 1);
    });
  }
  both('gangs in one leaf when one could hold them', (r) => `${r.gangsInOneLeaf}/${r.gangsLeafEligible} (${fmt((r.gangsInOneLeaf / Math.max(1, r.gangsLeafEligible)) * 100, 1)}%)`);
  both('preemptions (GPU-hours of work lost)', (r) => `${int.format(r.preemptions)} (${fmt(r.lostGpuHours, 0)})`);
  both('jobs never finished', (r) => int.format(r.unfinished));
  console.log(table(rows));

  const leafShare = g.gangsInOneLeaf / Math.max(1, g.gangsLeafEligible);
  const singleDes = ['<1 node', '1 node'] as const;
  const desSingleMs = singleDes.flatMap((k) => g.latencies.get(k)!);
  const desSinglePerSec = (desSingleMs.length / desSingleMs.reduce((a, x) => a + x, 0)) * 1000;
  const gangDes = g.latencies.get('256 nodes')!;
  const checks: [string, boolean, string][] = [
    ['>= 2,000 single-node placements/s (one core, whole cycle)', single.perSec >= 2000, `${int.format(single.perSec)}/s; in the simulation ${int.format(desSinglePerSec)} single-node decisions/s`],
    ['256-node gang decision p99 < 50 ms (whole cycle)', gang.p99 < 50, `p99 ${fmt(gang.p99)} ms; in the simulation p99 ${fmt(quantile(gangDes, 0.99))} ms over ${gangDes.length} decisions`],
    ['256-node gang with preemption p99 < 50 ms', gangPre.p99 < 50, `p99 ${fmt(gangPre.p99)} ms (CPU time p99 ${fmt(gangPre.cpuP99)} ms, p50 ${fmt(gangPre.cpuP50)} ms)`],
    ['20,000 distinct exclusion lists < 200 ms per cycle', lists.lists.wall.median < 200, `median ${fmt(lists.lists.wall.median, 1)} ms (without lists ${fmt(lists.plain.wall.median, 1)} ms; pnpm bench:exclusions for more cycles)`],
    ['utilisation >= baseline', g.utilisationArrivals >= b.utilisationArrivals, `${fmt(g.utilisationArrivals * 100, 1)}% vs ${fmt(b.utilisationArrivals * 100, 1)}%`],
    ['>= 95% of gangs that fit one leaf switch land in one', leafShare >= 0.95, `${fmt(leafShare * 100, 1)}% (baseline ${fmt((b.gangsInOneLeaf / Math.max(1, b.gangsLeafEligible)) * 100, 1)}%)`],
  ];
  console.log('\ntargets:');
  for (const [label, ok, detail] of checks) console.log(`${ok ? 'PASS' : 'FAIL'}  ${label}: ${detail}`);
  console.log(`\ntotal wall time ${fmt((performance.now() - started) / 1000, 1)} s`);
  if (checks.some(([, ok]) => !ok)) process.exitCode = 1;
}

await main();
