// `pnpm bench:scale`: issue 14's scale targets, each measured by the benchmark that owns it,
// one after the other (never two at once: they would measure each other), then one summary
// line per part: FAIL when it printed a FAIL or exited non-zero (not every benchmark sets its
// exit status on a FAIL), and its PASS/FAIL lines, with the WIN/LOSS comparisons against the
// Slurm-grade baseline. About 7 minutes on a 2-core machine.
//   pnpm bench:scale                  every part
//   pnpm bench:scale planner list     only the named parts (planner, placements, list, agents, slurm)
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Part { name: string; what: string; script: string; env?: Record<string, string> }
const PARTS: Part[] = [
  { name: 'planner', what: 'a planner cycle over 16,384 nodes x 8 GPUs with 100,000 pending jobs (p99 < 1 s)', script: 'services/scheduler/bench/exclusions.bench.ts', env: { BENCH_SCALE: '1' } },
  { name: 'placements', what: 'Redis-committed placements, multi-node gangs in the mix (>= 5,000/s)', script: 'services/scheduler/bench/redis-commit.bench.ts' },
  { name: 'list', what: '`gantry job list` with 100,000 jobs (a page < 200 ms)', script: 'test/bench/job-list.bench.ts' },
  { name: 'agents', what: '10,000 agents, real heartbeats with ranks every 2 s, telemetry every 10 s (all within one interval)', script: 'services/node-agent/bench/agent.bench.ts', env: { BENCH_FAN_IN_ONLY: '1', BENCH_AGENTS: '10000', BENCH_PLACE_WAIT_MS: '300000' } },
  { name: 'slurm', what: 'the job stream through Gantry, the Slurm-grade baseline and the FIFO floor', script: 'services/scheduler/bench/scheduler.bench.ts' },
];

const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !PARTS.some((p) => p.name === w));
if (unknown.length > 0) {
  console.error(`bench:scale: no part named ${unknown.join(', ')} (parts: ${PARTS.map((p) => p.name).join(', ')})`);
  process.exit(2);
}

function run(part: Part): Promise<{ code: number; verdicts: string[]; seconds: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', part.script], { cwd: ROOT, env: { ...process.env, ...part.env }, stdio: ['ignore', 'pipe', 'inherit'] });
    const verdicts: string[] = [];
    let pending = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      process.stdout.write(chunk);
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      verdicts.push(...lines.filter((l) => /\b(PASS|FAIL|WIN|LOSS)\b/.test(l)).map((l) => l.trim()));
    });
    child.on('close', (code) => resolve({ code: code ?? 1, verdicts, seconds: (performance.now() - t0) / 1000 }));
  });
}

const results: { part: Part; code: number; verdicts: string[]; seconds: number }[] = [];
for (const part of PARTS.filter((p) => wanted.length === 0 || wanted.includes(p.name))) {
  console.log(`\n#### bench:scale ${part.name}: ${part.what}`);
  results.push({ part, ...(await run(part)) });
}
console.log('\n#### bench:scale summary');
const failed = (r: (typeof results)[number]) => r.code !== 0 || r.verdicts.some((v) => /\bFAIL\b/.test(v));
for (const r of results) {
  console.log(`${r.part.name.padEnd(10)} ${failed(r) ? 'FAIL' : 'PASS'} (exit ${r.code}, ${r.seconds.toFixed(0)} s): ${r.part.what}`);
  for (const v of r.verdicts) console.log(`    ${v.length > 220 ? `${v.slice(0, 217)}...` : v}`);
}
process.exitCode = results.some(failed) ? 1 : 0;
