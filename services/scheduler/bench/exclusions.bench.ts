// Exclusion lists benchmark (see exclusions.ts): one planCycle over 20,000 pending jobs that
// each exclude different nodes, on 4,096 busy nodes, against the same queue without lists.
//   node --import tsx services/scheduler/bench/exclusions.bench.ts
// Env: BENCH_NODES (4096) BENCH_PENDING (20000) BENCH_BUSY (0.9 of nodes full) BENCH_REPS (5) BENCH_SEED (1)
import { env } from './env.js';
import { exclusionCycle } from './exclusions.js';

const TARGET_MS = 200;
const s = { nodes: env('BENCH_NODES', 4096), pending: env('BENCH_PENDING', 20_000), busy: env('BENCH_BUSY', 0.9), reps: env('BENCH_REPS', 5), seed: env('BENCH_SEED', 1) };
const f = exclusionCycle(s);
const int = new Intl.NumberFormat('en-US');
console.log(`cluster: ${int.format(s.nodes)} nodes x 8 GPUs, ${int.format(f.runningJobs)} running jobs; ${int.format(s.pending)} pending jobs; median of ${s.reps} cycles`);
console.log(`queue without exclusion lists:           ${f.plain.ms.toFixed(1)} ms per cycle (${f.plain.placed} placed)`);
console.log(`same queue, ${int.format(f.distinctLists)} distinct lists:    ${f.lists.ms.toFixed(1)} ms per cycle (${f.lists.placed} placed)`);
const ok = f.lists.ms < TARGET_MS;
console.log(`${ok ? 'PASS' : 'FAIL'}  ${int.format(f.distinctLists)} distinct exclusion lists on ${int.format(s.nodes)} nodes < ${TARGET_MS} ms per cycle: ${f.lists.ms.toFixed(1)} ms`);
if (!ok) process.exitCode = 1;
