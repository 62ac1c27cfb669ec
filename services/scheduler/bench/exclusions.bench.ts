// Exclusion lists benchmark (see exclusions.ts): one planCycle over 20,000 pending jobs that
// each exclude different nodes, on 4,096 busy nodes, against the same queue without lists,
// the two alternating in one run. Reports wall and CPU time per cycle (median and p99) and
// the GC pauses within, and PASS/FAIL for the target: the median cycle with lists < 200 ms.
// At issue 14's scale (16,384 nodes, 100,000 pending jobs: BENCH_SCALE=1 sets both and 20
// cycles of each queue) it checks that target instead: a cycle's p99 wall time < 1 s.
//   node --import tsx services/scheduler/bench/exclusions.bench.ts
//   BENCH_SCALE=1 node --import tsx services/scheduler/bench/exclusions.bench.ts
// Env: BENCH_NODES (4096) BENCH_PENDING (20000) BENCH_BUSY (0.9 of nodes full) BENCH_REPS (30 cycles of each queue)
//      BENCH_WARMUP (3 unmeasured rounds) BENCH_SEED (1) BENCH_SCALE (0)
import { availableParallelism, loadavg } from 'node:os';
import { env } from './env.js';
import { exclusionCycle, type QueueFigures, type Spread } from './exclusions.js';

const TARGET_MS = 200;
/** Issue 14: one planner cycle over 16,384 nodes x 8 GPUs with 100,000 pending jobs, p99 < 1 s. */
const SCALE = { nodes: 16_384, pending: 100_000, p99Ms: 1000 };
const scaleDefaults = process.env.BENCH_SCALE === '1';
const s = {
  nodes: env('BENCH_NODES', scaleDefaults ? SCALE.nodes : 4096),
  pending: env('BENCH_PENDING', scaleDefaults ? SCALE.pending : 20_000),
  busy: env('BENCH_BUSY', 0.9),
  reps: env('BENCH_REPS', scaleDefaults ? 20 : 30),
  warmup: process.env.BENCH_WARMUP === '0' ? 0 : env('BENCH_WARMUP', 3),
  seed: env('BENCH_SEED', 1),
};
const load = loadavg()[0]!;
const f = await exclusionCycle(s);
const int = new Intl.NumberFormat('en-US');
const ms = (x: Spread) => `${x.median.toFixed(1).padStart(6)} / ${x.p99.toFixed(1).padStart(6)}`;
const row = (label: string, q: QueueFigures) => `${label.padEnd(40)}${ms(q.wall)}     ${ms(q.cpu)}     ${q.gc.median.toFixed(1).padStart(5)}   ${q.placed}`;
console.log(`cluster: ${int.format(s.nodes)} nodes x 8 GPUs, ${int.format(f.runningJobs)} running jobs; ${int.format(s.pending)} pending jobs; ${f.cycles} cycles of each queue, alternating, after ${s.warmup} warm-up rounds`);
console.log(`node ${process.version}; load average ${load.toFixed(1)} on ${availableParallelism()} CPUs when the run began${load > availableParallelism() / 2 ? ' (other work competes: wall times include it, CPU times less so)' : ''}`);
console.log(`${''.padEnd(40)}wall ms median / p99   CPU ms median / p99   GC ms   placed`);
console.log(row('queue without exclusion lists', f.plain));
console.log(row(`same queue, ${int.format(f.distinctLists)} distinct lists`, f.lists));
console.log(`${'lists cost (lists - plain, same round)'.padEnd(40)}${ms(f.extra.wall)}     ${ms(f.extra.cpu)}`);
const atScale = s.nodes >= SCALE.nodes && s.pending >= SCALE.pending;
let ok: boolean;
if (atScale) {
  // The target is the queue as submitted; the same queue with a distinct list per job
  // (far more than recovery produces) is reported beside it.
  ok = f.plain.wall.p99 < SCALE.p99Ms;
  const p = (q: QueueFigures) => `p50 ${q.wall.median.toFixed(0)} ms, p99 ${q.wall.p99.toFixed(0)} ms wall (CPU p50 ${q.cpu.median.toFixed(0)} ms, p99 ${q.cpu.p99.toFixed(0)} ms)`;
  console.log(`${ok ? 'PASS' : 'FAIL'}  planner cycle over ${int.format(s.nodes)} nodes x 8 GPUs with ${int.format(s.pending)} pending jobs < ${SCALE.p99Ms} ms (p99 wall, ${f.cycles} cycles): ${p(f.plain)}`);
  console.log(`info  the same queue with ${int.format(f.distinctLists)} distinct exclusion lists: ${p(f.lists)}; ${f.lists.wall.p99 < SCALE.p99Ms ? 'within' : 'above'} ${SCALE.p99Ms} ms at p99`);
} else {
  ok = f.lists.wall.median < TARGET_MS;
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${int.format(f.distinctLists)} distinct exclusion lists on ${int.format(s.nodes)} nodes < ${TARGET_MS} ms per cycle (median wall): ${f.lists.wall.median.toFixed(1)} ms (p99 ${f.lists.wall.p99.toFixed(1)} ms)`);
  // Process CPU time counts V8's helper threads (GC, compiler) too, so it is no less than the
  // planner's own; on a busy machine it is the steadier figure. Informational: the target is wall time.
  console.log(`info  CPU time per cycle with lists: median ${f.lists.cpu.median.toFixed(1)} ms, ${f.lists.cpu.median < TARGET_MS ? 'within' : 'above'} the ${TARGET_MS} ms target on that measure too`);
}
if (!ok) process.exitCode = 1;
